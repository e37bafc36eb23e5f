"""End to end: `python -m service run` (uvicorn on a free port plus the local executor subprocess) serves two
successive deletion requests; the new versions download, verify and load, and the forgotten samples' confidence
falls toward the test level while test accuracy holds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from service.settings import Settings
from tests.service import tiny
from tests.service.factories import make_tenant
from unlearning.audit.metrics import accuracy, predict_logits, true_class_prob
from unlearning.models import build_model, load_checkpoint

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def running_service(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The service as an operator starts it; stopped by PID (SIGTERM), which must also stop its executor."""
    port = _free_port()
    log = tmp_path / "service.log"
    env = {
        **os.environ,
        "UNLEARN_DATABASE_URL": settings.database_url,
        "UNLEARN_DATA_ROOT": str(settings.data_root),
        "UNLEARN_STORAGE_URL": settings.storage_url,
        "UNLEARN_SIGNING_KEY_FILE": str(tmp_path / "signing_key"),
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",  # two busy cores: one intra-op thread per process
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the service did not start:\n{log.read_text()}"
            time.sleep(0.3)
        yield base, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    executor = re.search(r"executor started \(pid (\d+)\)", log.read_text())
    assert executor is not None, log.read_text()
    deadline = time.monotonic() + 10
    while _alive(int(executor.group(1))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(executor.group(1))), "the executor outlived the service"
    assert process.returncode == 0, log.read_text()


def _wait_completed(http: httpx.Client, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        body = http.get(f"/v1/deletion-requests/{request_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"request still {body['status']}"
        time.sleep(0.3)


def _download(http: httpx.Client, model_id: str, number: int) -> torch.nn.Module:
    version = http.get(f"/v1/models/{model_id}/versions/{number}").json()
    response = http.get(f"/v1/models/{model_id}/versions/{number}/checkpoint")
    assert response.status_code == 200
    digest = hashlib.sha256(response.content).hexdigest()
    assert digest == version["checkpoint"]["sha256"] and response.headers["etag"] == f'"{digest}"'
    return load_checkpoint(response.content).model.eval()


def test_two_successive_requests_through_a_running_service(
    running_service: tuple[str, Path], settings: Settings, database_url: str, data_root: Path
) -> None:
    base, _ = running_service
    tenant = make_tenant(database_url, "acme")
    first_ids = [tiny.sample_id(i) for i in range(0, 40, 2)]
    second_ids = [tiny.sample_id(i) for i in range(1, 41, 2)]
    with httpx.Client(base_url=base, headers=tenant.headers, timeout=30) as http:
        tiny.write_dataset(data_root)
        dataset = http.post("/v1/datasets", json={"name": "d", "format": "npz", "path": tiny.DATASET_NAME}).json()
        files = {
            "manifest": (None, json.dumps(tiny.manifest(dataset["id"])), "application/json"),
            "checkpoint": ("tiny.safetensors", tiny.safetensors_bytes(), "application/octet-stream"),
        }
        model = http.post("/v1/models", files=files)
        assert model.status_code == 201, model.text
        model_id = model.json()["id"]

        first = http.post(f"/v1/models/{model_id}/deletion-requests", json={"sample_ids": first_ids})
        assert first.status_code == 202, first.text
        assert _wait_completed(http, first.json()["id"])["version"] == 2
        second = http.post(f"/v1/models/{model_id}/deletion-requests", json={"sample_ids": second_ids})
        assert _wait_completed(http, second.json()["id"])["version"] == 3
        v3_lineage = http.get(f"/v1/models/{model_id}/versions/3").json()["lineage"]
        assert v3_lineage["parent_version"] == 2 and v3_lineage["request_ids"] == [second.json()["id"]]
        v2, v3 = _download(http, model_id, 2), _download(http, model_id, 3)

    original = build_model(tiny.ARCH)
    original.load_state_dict(tiny.trained_state())
    original.eval()
    data = tiny.tiny_data()
    forgotten = data.train.subset(data.train.positions(first_ids))

    def confidence(net: torch.nn.Module, samples: Any) -> float:
        return float(true_class_prob(predict_logits(net, samples.x), samples.y).mean())

    test_level = confidence(original, data.test)
    before = confidence(original, forgotten)
    assert before > test_level  # memorised: there is something to forget
    for net in (v2, v3):  # and it does not come back with the next request
        after = confidence(net, forgotten)
        assert after < before - 0.02
        assert abs(after - test_level) < abs(before - test_level)
    test_acc = accuracy(predict_logits(original, data.test.x), data.test.y)
    assert accuracy(predict_logits(v3, data.test.x), data.test.y) > test_acc - 5.0
