"""Real jobs around the erasure sweep, on a tiny model: an unlearning job and its audit succeed once the original
was destroyed; reference models that trained on forgotten samples are destroyed, rebuilt without any of them,
and the next audit uses the rebuilt ones and says which; a job whose plan named artefacts destroyed since still
succeeds; after the window no stored object holds a forgotten sample; the local executor runs the sweep."""

from __future__ import annotations

import io
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import worker.jobs
from service.db import session_factory
from service.erasure import repository as erasure_repo
from service.erasure.service import sweep
from service.settings import Settings
from service.storage import ObjectStore
from service.tables import ReferenceSet, utcnow
from tests.service import tiny
from tests.service.factories import TenantKey
from tests.worker.cluster import Proc, wait_for
from worker.jobs import Outcome, run_job

IDS = [tiny.sample_id(i) for i in range(30)]
RECIPE = {"epochs": 2, "lr": 0.05, "batch_size": 32, "augment": {"crop_padding": 0, "hflip": False}}


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root, retention_seconds=0)  # "at once"


def _run(settings: Settings, job_id: str) -> Outcome:
    return run_job(uuid.UUID(job_id), settings=settings, device="cpu")


def _forget(client: TestClient, tenant: TenantKey, settings: Settings, model_id: str, ids: list[str]) -> dict:
    request = tiny.submit(client, tenant, model_id, ids).json()
    assert _run(settings, request["job_id"]) == Outcome.succeeded
    return request


def _sweep(settings: Settings, *, after: timedelta = timedelta(0)) -> Any:
    return sweep(session_factory(settings.database_url), settings=settings, now=utcnow() + after)


def _audit(client: TestClient, tenant: TenantKey, model_id: str, number: int) -> dict[str, Any]:
    answer = client.get(f"/v1/models/{model_id}/versions/{number}/audit", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_unlearning_job_and_its_audit_succeed_after_the_original_was_destroyed(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    _forget(client, tenant, settings, model["id"], IDS[:10])
    assert len(_sweep(settings).destroyed_versions) == 1  # version 1, the original
    second = tiny.submit(client, tenant, model["id"], IDS[10:20]).json()

    assert _run(settings, second["job_id"]) == Outcome.succeeded

    report = _audit(client, tenant, model["id"], 3)
    assert set(report["models"]) == {"version", "parent"}
    assert report["evidence"]["attack_on_original"] == "unavailable"
    assert "original model no longer exists" in report["headline"]
    drop = report["utility"]["test_acc_drop_vs_original"]
    assert "version 2's audit" in drop["method"]  # compared with the original's accuracy as then measured
    page = client.get(f"/v1/models/{model['id']}/versions/3/audit.html", headers=tenant.headers)
    assert page.status_code == 200


def test_reference_models_holding_forgotten_samples_are_destroyed_and_the_next_audit_uses_rebuilt_ones(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    queued = client.post(f"/v1/models/{model['id']}/reference-models", json={"k": 2, "recipe": RECIPE},
                         headers=tenant.headers).json()  # fmt: skip
    assert _run(settings, queued["id"]) == Outcome.succeeded
    _forget(client, tenant, settings, model["id"], IDS[:10])
    first_set = _audit(client, tenant, model["id"], 2)["context"]["reference_set"]["used"]
    assert first_set["excluded_forgotten_samples"] == 0

    swept = _sweep(settings)

    assert [str(s) for s in swept.destroyed_reference_sets] == [first_set["id"]]
    factory = session_factory(settings.database_url)
    with factory() as session:
        live = session.execute(select(ReferenceSet.id).where(ReferenceSet.destroyed_at.is_(None))).scalars().all()
    assert live == []
    _forget(client, tenant, settings, model["id"], IDS[10:12])  # audited while the new set is being trained
    said = _audit(client, tenant, model["id"], 3)["context"]["reference_set"]
    assert said["used"] is None and "was destroyed" in said["reason"] and "being trained by job" in said["reason"]
    assert _audit(client, tenant, model["id"], 3)["rmia"]["measured"] is False

    rebuild_job = said["reason"].rsplit("job ", 1)[1]
    assert _run(settings, rebuild_job) == Outcome.succeeded
    with factory() as session:
        rebuilt = session.execute(select(ReferenceSet).where(ReferenceSet.destroyed_at.is_(None))).scalar_one()
    stored = ObjectStore.from_settings(settings).read_bytes(rebuilt.membership_uri, rebuilt.membership_sha256)
    membership = np.load(io.BytesIO(stored))
    forgotten = [int(sid.removeprefix("digit-")) for sid in IDS[:12]]  # tiny's IDs name their positions
    assert not membership[:, forgotten].any()  # no model of the new set trained on a forgotten sample
    assert rebuilt.excluded_count == 12

    _forget(client, tenant, settings, model["id"], IDS[12:22])
    used = _audit(client, tenant, model["id"], 4)["context"]["reference_set"]["used"]
    assert (used["id"], used["k"], used["excluded_forgotten_samples"]) == (str(rebuilt.id), 2, 12)
    assert _audit(client, tenant, model["id"], 4)["rmia"]["measured"] is True


def test_no_stored_object_holds_a_forgotten_sample_after_the_window(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=3600)
    queued = client.post(f"/v1/models/{model['id']}/reference-models", json={"k": 2, "recipe": RECIPE},
                         headers=tenant.headers).json()  # fmt: skip
    assert _run(settings, queued["id"]) == Outcome.succeeded
    _forget(client, tenant, settings, model["id"], IDS[:10])
    _forget(client, tenant, settings, model["id"], IDS[10:20])

    _sweep(settings, after=timedelta(seconds=3601))

    factory = session_factory(settings.database_url)
    with factory() as session:
        owners = erasure_repo.live_object_owners(session=session)
        rows = erasure_repo.forgotten_requests(session=session, model_ids=[uuid.UUID(model["id"])])
        forgotten = {str(request_id) for _, request_id, _ in rows}
        sets = {str(s.id): s for s in session.execute(select(ReferenceSet)).scalars()}
    newest = client.get(f"/v1/models/{model['id']}/versions/3", headers=tenant.headers).json()
    listed = list(ObjectStore.from_settings(settings).iter_objects())
    assert listed
    for stored in listed:
        holders = owners.get(stored.uri)
        assert holders, f"{stored.uri} is named by no ledger row"
        for holder in holders:
            kind, _, row_id = holder.partition(":")
            if kind == "model_version":
                assert row_id == newest["id"], f"{stored.uri} is a superseded version's checkpoint"
            elif kind == "reference_set":
                assert forgotten <= set(sets[row_id].excluded_request_ids), f"{stored.uri} trained on forgotten data"
            else:
                assert kind == "audit_page"  # scores and IDs of the evidence, no sample


def test_the_local_executor_runs_the_erasure_sweep(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any], tmp_path: Path
) -> None:
    # the embedded deployment: `python -m worker.executor` (which `python -m service run` supervises) runs the
    # job and, in a thread of its own, the sweep that destroys the original and issues the receipt
    env = {**os.environ, "UNLEARN_DATABASE_URL": settings.database_url, "UNLEARN_DATA_ROOT": str(settings.data_root),
           "UNLEARN_STORAGE_URL": settings.storage_url, "UNLEARN_GUARD_MAX_ACC_DROP": str(settings.guard_max_acc_drop),
           "UNLEARN_SIGNING_KEY_FILE": str(tmp_path / "signing_key"), "UNLEARN_ERASURE_SWEEP_INTERVAL_SECONDS": "0.5",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    executor = Proc("executor", [sys.executable, "-m", "worker.executor"], env=env, log_dir=tmp_path)
    try:
        request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()

        def erased() -> dict[str, Any] | None:
            body = client.get(f"/v1/deletion-requests/{request['id']}", headers=tenant.headers).json()
            return body if body["erased_at"] is not None else None

        wait_for(erased, timeout=300, what="the request's erasure", interval=0.5, logs=[executor])
    finally:
        executor.stop()
    original = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
    assert original["status"] == "destroyed"


def test_a_job_whose_original_and_reference_set_are_destroyed_while_it_runs_still_succeeds(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = client.post(f"/v1/models/{model['id']}/reference-models", json={"k": 2, "recipe": RECIPE},
                         headers=tenant.headers).json()  # fmt: skip
    assert _run(settings, queued["id"]) == Outcome.succeeded
    _forget(client, tenant, settings, model["id"], IDS[:10])  # the original and the set now hold forgotten samples
    real = worker.jobs.read_plan

    def then_a_sweep(*args: Any, **kwargs: Any) -> Any:
        plan = real(*args, **kwargs)  # names the original and the set, both still stored
        assert plan.original is not None and plan.references is not None
        swept = _sweep(settings)
        assert len(swept.destroyed_versions) == 1 and len(swept.destroyed_reference_sets) == 1
        return plan

    monkeypatch.setattr(worker.jobs, "read_plan", then_a_sweep)
    second = tiny.submit(client, tenant, model["id"], IDS[10:20]).json()

    assert _run(settings, second["job_id"]) == Outcome.succeeded

    report = _audit(client, tenant, model["id"], 3)
    assert "original" not in report["models"] and report["rmia"]["measured"] is False
    assert "could not be read" in report["context"]["reference_set"]["reason"]
