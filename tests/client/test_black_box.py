"""The black-box flow, through the Python client alone (no other HTTP), against `python -m service run` as an
operator starts it on one machine (SQLite, local storage, the embedded executor running the jobs and the
erasure sweep): register a dataset and a model, send a deletion request and poll it, download the new
checkpoint (sha256 checked), verify its certificate, find the request by its subject_request_id, read the
suppression list, then set the retention window to "at once" and get the erasure receipt and verify it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.worker.cluster import REPO, Proc, free_port, healthy, wait_for
from unlearning_client import (
    Client,
    Conflict,
    ErasureReceipt,
    Gone,
    RequestStatus,
    SampleState,
    VersionStatus,
    verify_certificate,
    verify_receipt,
)

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 180.0  # the API and the executor each import torch, on two busy cores
JOB_TIMEOUT_S = 600.0
ERASURE_TIMEOUT_S = 120.0  # the executor sweeps every second here
IDS = [f"digit-{i:04d}" for i in range(0, 24, 2)]  # tests.service.tiny.sample_id


@dataclass(frozen=True)
class Service:
    url: str
    key: str  # a tenant's admin API key, from `python -m service create-tenant`


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    # imported here, as in conftest.py: the client's other tests need neither torch nor the service
    from tests.service import tiny

    tiny.write_dataset(tmp_path / "data")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_HOME": str(tmp_path / "home"),  # the ledger, the checkpoints and the signing key
        "UNLEARN_DATA_ROOT": str(tmp_path / "data"),
        "UNLEARN_GUARD_MAX_ACC_DROP": str(tiny.GUARD_MAX_ACC_DROP),
        "UNLEARN_ERASURE_SWEEP_INTERVAL_SECONDS": "1",
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",  # two busy cores: one intra-op thread per process
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc("service", [sys.executable, "-m", "service", "run", "--no-demo", "--port", str(port)], env=env,
                  log_dir=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: healthy(url) or not server.alive(), timeout=START_TIMEOUT_S, what="the service",
                 interval=0.5, logs=[server])  # fmt: skip
        assert server.alive(), server.tail()
        tenant = subprocess.run([sys.executable, "-m", "service", "create-tenant", "acme"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        key = dict(line.split(": ", 1) for line in tenant.stdout.splitlines())["admin_key"]
        yield Service(url=url, key=key)
    finally:
        server.stop()


def _receipt(api: Client, request_id: object) -> ErasureReceipt:
    """The request's erasure receipt, once the executor's sweep has issued it (Conflict until then)."""
    deadline = time.monotonic() + ERASURE_TIMEOUT_S
    while True:
        try:
            return api.get_receipt(request_id)
        except Conflict as not_yet:
            assert time.monotonic() < deadline, f"no receipt after {ERASURE_TIMEOUT_S:g} s: {not_yet}"
            time.sleep(0.5)


def test_register_forget_download_verify_find_and_erase_through_the_client_alone(
    service: Service, tmp_path: Path
) -> None:
    from tests.service import tiny  # the dataset's files and the model's weights, as the caller has them
    from unlearning.specs import to_dict

    with Client(service.url, service.key) as api:
        dataset = api.register_dataset("digits", "npz", tiny.DATASET_NAME)
        model = api.register_model("tiny", dataset.id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                                   unlearn_config=tiny.UNLEARN)  # fmt: skip
        accepted = api.submit_deletion_request(model.id, IDS, subject_request_id="ticket-4711", regulation="gdpr")
        done = api.wait_for_deletion_request(accepted.id, timeout_s=JOB_TIMEOUT_S, poll_interval_s=0.5)
        assert (done.status, done.version) == (RequestStatus.completed, 2), done.error

        downloaded = api.download_checkpoint(model.id, 2, tmp_path / "v2.safetensors")  # checked against the ETag
        assert hashlib.sha256(downloaded.path.read_bytes()).hexdigest() == downloaded.sha256
        assert api.get_version(model.id, 2).checkpoint.sha256 == downloaded.sha256
        key = api.get_signing_key()
        report = api.get_audit(model.id, 2)
        attested = verify_certificate(api.get_certificate(model.id, 2), key, report=report)
        assert (attested["sha256"], attested["request_ids"]) == (downloaded.sha256, [str(accepted.id)])

        assert [r.id for r in api.iter_deletion_requests(subject_request_id="ticket-4711")] == [accepted.id]
        assert list(api.iter_deletion_requests(subject_request_id="ticket-0000")) == []
        suppressed = list(api.iter_forgotten_samples(model.id))
        assert sorted(s.sample_id for s in suppressed) == sorted(IDS)
        assert {(s.state, s.version, s.request_id) for s in suppressed} == {(SampleState.forgotten, 2, accepted.id)}

        original_sha256 = api.get_version(model.id, 1).checkpoint.sha256
        assert api.update_model(model.id, retention_seconds=0).retention_seconds == 0  # "at once"
        receipt = _receipt(api, accepted.id)
        erased = verify_receipt(receipt, key, request_id=str(accepted.id))
        assert api.get_version(model.id, 1).status == VersionStatus.destroyed
        assert [(item["kind"], item["version"], item["sha256"]) for item in erased["destroyed"]] == [
            ("model_version", 1, original_sha256)
        ]
        assert erased["first_version_without"]["sha256"] == downloaded.sha256
        assert api.get_deletion_request(accepted.id).erased_at is not None
        with pytest.raises(Gone):
            api.download_checkpoint(model.id, 1, tmp_path / "v1.safetensors")
        assert not (tmp_path / "v1.safetensors").exists()
