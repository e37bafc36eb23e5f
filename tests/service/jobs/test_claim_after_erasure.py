"""A tuning job that handed its worker back resumes on the version it started from, unless the erasure sweep has
destroyed that version meanwhile: it then starts over on the newest (its finished runs measured the old one)."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import session_factory
from service.erasure.service import sweep
from service.jobs import service as jobs
from service.settings import Settings
from service.tables import Event, Job
from tests.service import tiny
from tests.service.erasure.ledger import forget
from tests.service.factories import TenantKey


def test_a_tuning_job_whose_version_was_destroyed_starts_over_on_the_newest(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=0)
    tuning = client.post(f"/v1/models/{model['id']}/tuning", headers=tenant.headers).json()
    job_id = uuid.UUID(tuning["id"])
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        jobs.claim(session, job_id=job_id, owner="tuner")
    with factory() as session, session.begin():
        assert jobs.save_partial(session, job_id=job_id, owner="tuner", partial={"runs": [{"lr": 0.05}]})
        jobs.release(session, job_id=job_id, owner="tuner", reason="a deletion request is waiting")
    forget(client, tenant, settings, model["id"], [tiny.sample_id(0), tiny.sample_id(1)])
    assert len(sweep(factory, settings=settings).destroyed_versions) == 1  # version 1, the tuning job's

    with factory() as session, session.begin():
        assert jobs.claim(session, job_id=job_id, owner="tuner-2") is not None

    assert client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()["parent_version"] == 2
    with factory() as session:
        assert session.get(Job, job_id).partial is None
        [restarted] = session.execute(select(Event).where(Event.type == "job.restarted")).scalars()
    assert restarted.data["reason"] == "version 1 was destroyed"
