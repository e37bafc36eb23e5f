"""Moving the ledger as a worker would, without the computation: a deletion request's job claimed, audited and
completed with a stand-in checkpoint, and a reference-models job recorded with stand-in objects. The erasure
sweep looks at rows and stored objects, never at what the bytes mean, so this is all it needs (the worker
tests run the real jobs)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from service.db import session_factory
from service.jobs import service as jobs
from service.jobs.plan import read_plan
from service.settings import Settings
from service.storage import ObjectStore
from service.tables import ModelVersion
from tests.service import tiny
from tests.service.factories import TenantKey

OWNER = "test-worker"


def forget(
    client: TestClient, tenant: TenantKey, settings: Settings, model_id: str, ids: list[str], **fields: Any
) -> dict[str, Any]:
    """Submit a request and complete its job with a stand-in checkpoint; the request's read body."""
    accepted = tiny.submit(client, tenant, model_id, ids, **fields)
    assert accepted.status_code == 202, accepted.text
    complete_job(settings, uuid.UUID(accepted.json()["job_id"]))
    return client.get(f"/v1/deletion-requests/{accepted.json()['id']}", headers=tenant.headers).json()


def complete_job(settings: Settings, job_id: uuid.UUID) -> ModelVersion:
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        assert jobs.claim(session, job_id=job_id, owner=OWNER) is not None
    checkpoint = ObjectStore.from_settings(settings).put_bytes(f"weights made by job {job_id}".encode())
    with factory() as session, session.begin():
        assert jobs.note_output(session, job_id=job_id, owner=OWNER, stored=checkpoint)
        assert jobs.enter_audit(session, job_id=job_id, owner=OWNER)
        version = jobs.complete_unlearn(
            session, job_id=job_id, owner=OWNER, checkpoint=checkpoint, config={"method": "amun"},
            code_version="test", forgotten_count=0, metrics={"parent_test_acc": 90.0}, audit=None, audit_html=None,
        )  # fmt: skip
        assert version is not None
    return version


def train_reference_set(client: TestClient, tenant: TenantKey, settings: Settings, model_id: str, k: int = 2) -> str:
    """A reference-models job queued over HTTP and recorded (record_reference_job); the set's id."""
    queued = client.post(f"/v1/models/{model_id}/reference-models", json={"k": k}, headers=tenant.headers)
    assert queued.status_code == 202, queued.text
    return record_reference_job(settings, uuid.UUID(queued.json()["id"]))


def record_reference_job(settings: Settings, job_id: uuid.UUID) -> str:
    """Claim a queued reference-models job and record its set with stand-in objects, excluding every request
    whose claims its plan read, as the worker does; the set's id."""
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        assert jobs.claim(session, job_id=job_id, owner=OWNER) is not None
    with factory() as session:
        plan = read_plan(session, job_id=job_id, settings=settings)
    k = int(plan.job_config["k"])
    store = ObjectStore.from_settings(settings)
    objects = [store.put_bytes(f"reference object {i} of job {job_id}".encode()) for i in range(k + 1)]
    with factory() as session, session.begin():
        recorded = jobs.complete_reference_models(
            session, job_id=job_id, owner=OWNER, membership=objects[0], checkpoints=objects[1:],
            num_train=tiny.N_TRAIN, excluded_request_ids=plan.claimed_request_ids,
            excluded_count=len(plan.claimed_ids),
        )  # fmt: skip
        assert recorded is not None
        return str(recorded.id)
