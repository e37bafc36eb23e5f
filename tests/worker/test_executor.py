"""End to end: `python -m service run` (uvicorn on a free port plus the local executor subprocess) serves two
successive deletion requests; the new versions download, verify and load, and the forgotten samples' confidence
falls toward the test level while test accuracy holds. Each version's evidence is served complete (audit JSON,
the page with its plot, a certificate that `verify-certificate` accepts and rejects once altered), `python -m
service demo` walks the README's flow on the demo model the service set up, /metrics counts the jobs, and
`verify-events` accepts the event chain and names the row an attacker altered."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import make_url, select

from service.db import session_factory
from service.settings import Settings
from service.tables import Event
from tests.service import tiny
from tests.service.factories import make_tenant, tamper_with_event
from tests.worker.cluster import alive, wait_healthy
from unlearning.audit.metrics import accuracy, predict_logits, true_class_prob
from unlearning.audit.report import REPORT_SCHEMA
from unlearning.models import build_model, load_checkpoint
from unlearning.specs import to_dict
from unlearning_client import Client, RequestStatus

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 300.0  # includes training the demo model on first start (CPU, a loaded CI machine)
JOB_TIMEOUT_S = 300.0
CLI_TIMEOUT_S = 60.0
DEMO_TIMEOUT_S = 300.0  # one unlearning job on the demo's 4,000 images, with its audit
# every top-level key of an audit report (unlearning.audit.report.build_report)
REPORT_SECTIONS = (
    "schema", "context", "headline", "verdict", "reasons", "failed_checks", "inconclusive_checks", "data",
    "evidence", "per_sample", "rmia", "models", "utility", "retained_exposure", "gap_to_retrained", "thresholds",
    "checks", "history",
)  # fmt: skip
# the section headings of the audit page (unlearning.audit.page.render_html)
PAGE_SECTIONS = {
    "evidence": "Does each forgotten sample look like data the model never saw?",
    "per-sample": "The samples this version forgot, one by one",
    "history": "Cumulative evidence, version by version",
    "checks": "Checks against the stated thresholds",
    "current": "Forgotten samples, per model",
    "earlier": "Samples forgotten earlier",
    "rmia": "Membership-inference attack",
    "retrained": "Gap to a retrained reference",
    "data": "Data",
    "context": "Process and provenance",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningService:
    base: str  # http://127.0.0.1:<port>
    log: Path  # the server's and the executor's output
    env: dict[str, str]  # the server's environment: the CLI commands run with the same UNLEARN_* settings
    var: Path  # the folder of the signing key, the demo's key and demo.json


@pytest.fixture
def service_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "UNLEARN_DATABASE_URL": settings.database_url,
        "UNLEARN_DATA_ROOT": str(settings.data_root),
        "UNLEARN_GUARD_MAX_ACC_DROP": str(settings.guard_max_acc_drop),
        "UNLEARN_STORAGE_URL": settings.storage_url,
        "UNLEARN_SIGNING_KEY_FILE": str(tmp_path / "signing_key"),
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",  # two busy cores: one intra-op thread per process
    }
    env.pop("UNLEARN_SIGNING_KEY", None)
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        # as on a server deployment: one configured key (the embedded default creates its key file instead)
        env["UNLEARN_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode("ascii")
    return env


@pytest.fixture
def running_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[RunningService]:
    """The service as an operator starts it; stopped by PID (SIGTERM), which must also stop its executor."""
    port = _free_port()
    log = tmp_path / "service.log"
    env = service_env
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, timeout=STARTUP_TIMEOUT_S, log=log)
        yield RunningService(base=base, log=log, env=env, var=tmp_path)
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
    while alive(int(executor.group(1))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(int(executor.group(1))), "the executor outlived the service"
    assert process.returncode == 0, log.read_text()


def _forget(api: Client, model_id: object, ids: list[str]) -> int:
    """Send a deletion request and wait for it; the version that forgot the samples."""
    accepted = api.submit_deletion_request(model_id, ids)
    done = api.wait_for_deletion_request(accepted.id, timeout_s=JOB_TIMEOUT_S, poll_interval_s=0.3)
    assert done.status == RequestStatus.completed and done.version is not None, done
    return done.version


def _download(api: Client, model_id: object, number: int, folder: Path) -> torch.nn.Module:
    # the client checks the bytes against the ETag (their sha256) as they arrive
    downloaded = api.download_checkpoint(model_id, number, folder / f"v{number}.safetensors")
    version = api.get_version(model_id, number)
    assert version.checkpoint is not None and downloaded.sha256 == version.checkpoint.sha256
    return load_checkpoint(downloaded.path.read_bytes()).model.eval()


def _cli(service: RunningService, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`python -m service ARGS` with the server's settings, from the folder the server was started in."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO, env=service.env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _check_evidence(api: Client, service: RunningService, model_id: object, number: int) -> dict[str, Any]:
    """The version's audit report, page and certificate are complete; the certificate verifies and an altered
    copy does not. Returns the report."""
    report = api.get_audit(model_id, number).raw
    missing = [key for key in REPORT_SECTIONS if key not in report]
    assert not missing, f"version {number}'s report lacks {missing}"
    assert report["schema"] == REPORT_SCHEMA and report["context"]["version"] == number
    assert report["verdict"] in ("pass", "fail", "inconclusive") and report["checks"]
    assert report["failed_checks"] == [check["name"] for check in report["checks"] if check["result"] == "fail"]
    assert (report["verdict"] == "fail") == bool(report["failed_checks"])
    for check in report["checks"]:
        assert {"name", "value", "ci_low", "ci_high", "limit", "result"} <= check.keys()
    # every sample this version forgot has its own evidence
    forgotten = [row["id"] for row in report["per_sample"] if row["set"] == "current"]
    assert len(forgotten) == report["data"]["current"]["n"]

    page = api.get_audit_page(model_id, number)
    for anchor, heading in PAGE_SECTIONS.items():
        assert f'<h2 id="{anchor}">{heading}</h2>' in page, f"the page lacks the section {heading!r}"
    image = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert image is not None, "the page embeds no PNG"
    assert base64.b64decode(image.group(1)).startswith(PNG_SIGNATURE)

    certificate = api.get_certificate(model_id, number)
    file = service.var / f"certificate-v{number}.json"
    raw = json.dumps(certificate.model_dump(mode="json")).encode()
    file.write_bytes(raw)
    verified = _cli(service, "verify-certificate", str(file))
    assert verified.returncode == 0 and verified.stdout.startswith("valid:"), verified.stdout + verified.stderr
    # one byte of the summary: a hex digit of the checkpoint's sha256 it attests
    digest = certificate.summary["sha256"].encode()
    assert raw.count(digest) == 1
    at = raw.index(digest)
    altered = raw[:at] + (b"1" if raw[at : at + 1] == b"0" else b"0") + raw[at + 1 :]
    assert sum(a != b for a, b in zip(raw, altered, strict=True)) == 1
    file.write_bytes(altered)
    rejected = _cli(service, "verify-certificate", str(file))
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert rejected.stdout.startswith("invalid: the signature does not match the summary"), rejected.stdout
    return report


def _scrape(api: Client) -> dict[str, float]:
    """The /metrics samples as 'name{labels}' -> value, labels as the service writes them."""
    lines = api.metrics().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and line[0] != "#"}


def _check_demo_walkthrough(service: RunningService) -> None:
    """`python -m tools.demo_walkthrough` (on the client) against the demo model the service set up on its first
    start (default key file)."""
    out = service.var / "demo-out"
    demo = subprocess.run(
        [sys.executable, "-m", "tools.demo_walkthrough", "--url", service.base, "--count", "3", "--out", str(out)],
        cwd=REPO, env=service.env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "matches the ETag" in demo.stdout and "certificate: valid Ed25519 signature" in demo.stdout
    assert re.search(r"^ok: version 2, audit verdict (pass|fail|inconclusive)$", demo.stdout, re.MULTILINE), demo.stdout
    assert sorted(p.name for p in out.iterdir()) == ["audit-v2.html", "certificate-v2.json", "v2.safetensors"]


def _check_event_chain(service: RunningService, database_url: str) -> None:
    """`verify-events` accepts the chain the run wrote, then names the one row altered behind its back."""
    intact = _cli(service, "verify-events")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    counted = re.fullmatch(r"ok: (\d+) events\n", intact.stdout)
    assert counted is not None, intact.stdout
    seq = int(counted.group(1)) // 2  # a row in the middle of the chain
    with session_factory(database_url)() as session:
        event_id = session.execute(select(Event.id).where(Event.seq == seq)).scalar_one()
    tamper_with_event(database_url, seq=seq)
    broken = _cli(service, "verify-events")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"broken at event seq {seq} (id {event_id}): content does not match"), broken.stdout


def test_two_successive_requests_through_a_running_service(
    running_service: RunningService, settings: Settings, database_url: str, data_root: Path
) -> None:
    tenant = make_tenant(database_url, "acme")
    first_ids = [tiny.sample_id(i) for i in range(0, 40, 2)]
    second_ids = [tiny.sample_id(i) for i in range(1, 41, 2)]
    downloads = running_service.var / "downloads"
    downloads.mkdir()
    with Client(running_service.base, tenant.key) as api:
        tiny.write_dataset(data_root)
        dataset = api.register_dataset("d", "npz", tiny.DATASET_NAME)
        model = api.register_model("tiny", dataset.id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                                   unlearn_config=tiny.UNLEARN)  # fmt: skip

        assert _forget(api, model.id, first_ids) == 2
        second = api.submit_deletion_request(model.id, second_ids)
        done = api.wait_for_deletion_request(second.id, timeout_s=JOB_TIMEOUT_S, poll_interval_s=0.3)
        assert done.version == 3, done
        v3_lineage = api.get_version(model.id, 3).lineage
        assert v3_lineage.parent_version == 2 and v3_lineage.request_ids == [second.id]
        v2, v3 = _download(api, model.id, 2, downloads), _download(api, model.id, 3, downloads)

        v2_report = _check_evidence(api, running_service, model.id, 2)
        v3_report = _check_evidence(api, running_service, model.id, 3)
        assert v2_report["data"]["earlier"] == []
        # successive unlearning: version 3's audit re-checks the samples of the first request (forgotten by v2)
        assert v3_report["data"]["earlier"] == [{"label": "v2", "n": len(first_ids)}]
        assert [entry["label"] for entry in v3_report["models"]["version"]["earlier"]] == ["v2"]
        checks = {check["name"] for check in v3_report["checks"]}
        assert {"indistinguishable.union", "forget_auc.earlier[v2]"} <= checks
        assert [h["version"] for h in v3_report["history"]] == [2, 3]

        _check_demo_walkthrough(running_service)
        metrics = _scrape(api)
    assert metrics["unlearning_ledger_up"] == 1.0
    # two unlearning jobs of the test's model and one of the demo's
    assert metrics['unlearning_jobs{kind="unlearn",status="succeeded"}'] == 3.0
    assert metrics['unlearning_job_duration_seconds_count{kind="unlearn"}'] == 3.0
    _check_event_chain(running_service, database_url)

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
