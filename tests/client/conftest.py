"""One real server for the client's tests: `python -m service run` on a loopback port with a SQLite ledger of
its own, a tenant, and the tiny digits model registered through the client, with an unlearned and audited
version 2 (its job run here, in the test process), so certificates and audits are real.

The server lives for the session (starting it imports torch: seconds on two busy cores); each test asks
`fresh_ids` for sample IDs no other test sent, so tests do not see each other's requests.
"""

from __future__ import annotations

import base64
import itertools
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from unlearning_client import Client, Model

if TYPE_CHECKING:
    from service.settings import Settings

START_TIMEOUT_S = 120.0
FORGOTTEN_BY_V2 = [f"digit-{i:04d}" for i in range(10)]  # tests.service.tiny.sample_id
N_TRAIN = 300  # tests.service.tiny.N_TRAIN


@dataclass(frozen=True)
class Served:
    url: str
    key: str  # the tenant's admin API key
    database_url: str
    model: Model  # as registered; version 2 forgot FORGOTTEN_BY_V2
    request_id: uuid.UUID  # the request version 2 completed
    settings: Settings  # the server's, for what a test does as the service's workers would (run a job, a sweep)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # imported here: the tests of the client's own parts (JCS, Ed25519, retries) need no torch or ledger.
    # tiny imports Starlette's TestClient, which warns that it still runs on httpx; nothing here uses it.
    warnings.filterwarnings("ignore", message=".*install `httpx2`.*")
    from service.db import dispose_engines, migrate
    from service.settings import Settings
    from tests.service import tiny
    from tests.service.factories import make_tenant
    from tests.worker.cluster import Proc, free_port, wait_for
    from unlearning.specs import to_dict
    from worker.jobs import Outcome, run_job

    root = tmp_path_factory.mktemp("client-server")
    data_root = root / "data"
    tiny.write_dataset(data_root)
    settings = Settings(
        database_url=f"sqlite:///{root / 'ledger.db'}",
        data_root=data_root,
        storage_url=str(root / "checkpoints"),
        signing_key=base64.b64encode(b"c" * 32).decode(),
        log_level="WARNING",
        guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP,
    )
    migrate(settings.database_url)
    tenant = make_tenant(settings.database_url, "client")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_DATABASE_URL": settings.database_url,
        "UNLEARN_DATA_ROOT": str(data_root),
        "UNLEARN_STORAGE_URL": settings.storage_url,
        "UNLEARN_SIGNING_KEY": settings.signing_key.get_secret_value(),
        "UNLEARN_LOG_LEVEL": settings.log_level,
        "UNLEARN_GUARD_MAX_ACC_DROP": str(settings.guard_max_acc_drop),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "service", "run", "--no-demo", "--no-executor", "--port", str(port)]
    server = Proc("api", argv, env=env, log_dir=root)
    try:
        wait_for(lambda: _healthy(url) or not server.alive(), timeout=START_TIMEOUT_S, what="the API", logs=[server])
        assert server.alive(), server.tail()
        with Client(url, tenant.key) as api:
            dataset = api.register_dataset(tiny.DATASET_NAME, "npz", tiny.DATASET_NAME)
            model = api.register_model("tiny", dataset.id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                                       unlearn_config=tiny.UNLEARN)  # fmt: skip
            accepted = api.submit_deletion_request(model.id, FORGOTTEN_BY_V2, subject_request_id="fixture")
        assert accepted.job_id is not None
        assert run_job(accepted.job_id, settings=settings, device="cpu") == Outcome.succeeded
        yield Served(url=url, key=tenant.key, database_url=settings.database_url, model=model, request_id=accepted.id,
                     settings=settings)  # fmt: skip
    finally:
        server.stop()
        dispose_engines()


@pytest.fixture
def api(served: Served) -> Iterator[Client]:
    with Client(served.url, served.key) as client:
        yield client


_next_id = itertools.count(100)  # IDs 0-9 are forgotten by version 2; 300 training samples in all


@pytest.fixture
def fresh_ids() -> Callable[[int], list[str]]:
    """Sample IDs of the tiny dataset that no test sent before."""

    def take(n: int) -> list[str]:
        ids = [next(_next_id) for _ in range(n)]
        assert ids[-1] < N_TRAIN, "the tiny dataset's sample IDs are used up"
        return [f"digit-{i:04d}" for i in ids]

    return take
