"""The demo set-up of the embedded default: the first start on a fresh machine, and a first start that was
interrupted and is completed by the next one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import torch
from sqlalchemy import text

import service.demo
from service.db import dispose_engines, make_engine, migrate, session_factory
from service.demo import ensure_demo
from service.settings import Settings
from service.tenants.service import authenticate
from tests.service.factories import count_rows
from tests.worker.cluster import wait_healthy

FIRST_START_TIMEOUT_S = 240.0  # migrations, training the digits demo (about 10 s on 2 busy cores), the server
DIGITS_TRAIN = 1347  # scikit-learn's 1,797 digits less the 25% held out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_first_start_in_an_empty_folder_without_fashion_mnist_serves_the_digits_demo(tmp_path: Path) -> None:
    # `python -m service run` as scripts/serve.sh runs it, with nothing but the settings' defaults: the state
    # folder does not exist yet, and the Fashion-MNIST folder is missing
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_HOME": str(tmp_path / "var"),
        "UNLEARN_DEMO_FASHION_MNIST_DIR": str(tmp_path / "no-fashion-mnist"),
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    var = tmp_path / "var"
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=FIRST_START_TIMEOUT_S, log=log)
        key = (var / "demo-api-key").read_text().strip()
        info = json.loads((var / "demo.json").read_text())
        model = httpx.get(f"http://127.0.0.1:{port}/v1/models/{info['model_id']}",
                          headers={"Authorization": f"Bearer {key}"}, timeout=10)  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert model.status_code == 200, model.text
    assert info["dataset"] == "digits"
    assert info["sample_ids"] == {"first": "0", "last": str(DIGITS_TRAIN - 1), "count": DIGITS_TRAIN}
    assert info["example_sample_ids"] == ["17", "404", "1000", "1300"]
    assert server.returncode == 0, log.read_text()[-3000:]


def test_an_interrupted_first_start_is_completed_by_the_next_without_training_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "var", demo_fashion_mnist_dir=tmp_path / "no-fashion-mnist")
    migrate(settings.database_url)
    real_train = service.demo._train

    def interrupted(*args: object) -> bytes:
        raise KeyboardInterrupt  # the operator pressed Ctrl-C during training

    monkeypatch.setattr(service.demo, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo(settings, log=lambda _: None)
    assert (count_rows(settings.database_url, "tenant"), count_rows(settings.database_url, "dataset")) == (1, 1)
    assert not (tmp_path / "var" / "demo.json").exists()

    monkeypatch.setattr(service.demo, "_train", real_train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches on two busy cores: more threads only contend (57 s instead of 12 s)
    try:
        demo = ensure_demo(settings, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    info = json.loads((tmp_path / "var" / "demo.json").read_text())
    assert (info["dataset_id"], info["model_id"]) == (demo.dataset_id, demo.model_id)
    assert count_rows(settings.database_url, "dataset") == 1 and count_rows(settings.database_url, "model") == 1

    # later starts find the demo; one that lost demo.json and the key file writes them again, with a new key
    monkeypatch.setattr(service.demo, "_train", interrupted)
    assert ensure_demo(settings, log=lambda _: None) == demo
    (tmp_path / "var" / "demo.json").unlink()
    (tmp_path / "var" / "demo-api-key").unlink()
    assert ensure_demo(settings, log=lambda _: None) == demo
    assert json.loads((tmp_path / "var" / "demo.json").read_text()) == info
    with session_factory(settings.database_url)() as session:
        principal = authenticate(session, key=(tmp_path / "var" / "demo-api-key").read_text().strip())
    assert principal.allows("admin")
    assert count_rows(settings.database_url, "tenant") == 1 and count_rows(settings.database_url, "model") == 1
    dispose_engines()


def _untrained(data: object, arch: dict, augment: dict) -> bytes:
    """The demo's checkpoint without the minute of training: the tests below only look at the ledger."""
    from unlearning.models import build_model, checkpoint_bytes
    from unlearning.specs import ArchSpec, TrainConfig

    torch.manual_seed(0)
    return checkpoint_bytes(build_model(ArchSpec(**arch)), TrainConfig(), {"demo": True})


def _tuning_jobs(database_url: str) -> list[dict[str, object]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT model_id, status FROM job WHERE kind = 'tuning'")).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def test_the_first_start_queues_one_tuning_job_for_the_demo_model_and_later_starts_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "var", demo_fashion_mnist_dir=tmp_path / "no-fashion-mnist")
    migrate(settings.database_url)
    monkeypatch.setattr(service.demo, "_train", _untrained)
    messages: list[str] = []

    demo = ensure_demo(settings, log=messages.append)

    (job,) = _tuning_jobs(settings.database_url)
    assert str(uuid.UUID(str(job["model_id"]))) == demo.model_id and job["status"] == "queued"  # not run here
    assert any("tune" in message for message in messages)
    assert ensure_demo(settings, log=lambda _: None) == demo
    assert len(_tuning_jobs(settings.database_url)) == 1  # the job exists (whatever its state): not queued again
    dispose_engines()


def test_a_demo_made_before_tuning_existed_gets_its_tuning_job_on_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "var", demo_fashion_mnist_dir=tmp_path / "no-fashion-mnist")
    migrate(settings.database_url)
    monkeypatch.setattr(service.demo, "_train", _untrained)
    real = service.demo._ensure_tuning
    monkeypatch.setattr(service.demo, "_ensure_tuning", lambda *args: None)
    ensure_demo(settings, log=lambda _: None)  # complete, demo.json written, no tuning job
    assert _tuning_jobs(settings.database_url) == []

    monkeypatch.setattr(service.demo, "_ensure_tuning", real)
    ensure_demo(settings, log=lambda _: None)

    assert len(_tuning_jobs(settings.database_url)) == 1
    dispose_engines()
