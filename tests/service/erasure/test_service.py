"""The erasure sweep on SQLite and PostgreSQL with a local store: superseded checkpoints (the original
included) and reference sets holding forgotten samples are destroyed once the model's window ends (time
injected, never slept), the rows keep what they recorded, the chain records it, orphaned objects go after
their grace, and nothing stored holds a forgotten sample once the window has passed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import session_factory
from service.erasure import repository as erasure_repo
from service.erasure.service import sweep
from service.events.service import verify_chain
from service.jobs import service as jobs
from service.settings import Settings
from service.storage import ObjectStore
from service.tables import Event, Job, JobKind, JobStatus, ModelVersion, ReferenceSet, utcnow
from tests.service import tiny
from tests.service.erasure.ledger import OWNER, complete_job, forget, record_reference_job, train_reference_set
from tests.service.factories import TenantKey

IDS = [tiny.sample_id(i) for i in range(12)]


def _sweep(settings: Settings, *, after: timedelta = timedelta(0)) -> Any:
    return sweep(session_factory(settings.database_url), settings=settings, now=utcnow() + after)


def _version(settings: Settings, model_id: str, number: int) -> ModelVersion:
    with session_factory(settings.database_url)() as session:
        return session.execute(
            select(ModelVersion).where(ModelVersion.model_id == uuid.UUID(model_id), ModelVersion.number == number)
        ).scalar_one()


def _file(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def _events(settings: Settings, event_type: str) -> list[Event]:
    with session_factory(settings.database_url)() as session:
        return list(session.execute(select(Event).where(Event.type == event_type).order_by(Event.seq)).scalars())


def test_the_at_once_window_destroys_the_original_once_version_2_is_ready(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    original = _version(settings, model["id"], 1)
    assert _file(original.checkpoint_uri).exists()
    forget(client, tenant, settings, model["id"], IDS[:4])

    swept = _sweep(settings)

    destroyed = _version(settings, model["id"], 1)
    assert swept.destroyed_versions == [original.id]
    assert not _file(original.checkpoint_uri).exists()
    assert (destroyed.status, destroyed.sha256, destroyed.size_bytes) == ("destroyed", original.sha256,
                                                                           original.size_bytes)  # fmt: skip
    assert destroyed.destroyed_at is not None and "version 2 forgot" in destroyed.destruction_reason
    assert _file(_version(settings, model["id"], 2).checkpoint_uri).exists()  # the newest stays


def test_a_destroyed_version_keeps_its_lineage_and_says_when_and_why(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    forget(client, tenant, settings, model["id"], IDS[:4])
    forget(client, tenant, settings, model["id"], IDS[4:8])
    _sweep(settings)

    body = client.get(f"/v1/models/{model['id']}/versions/2", headers=tenant.headers).json()
    assert (body["status"], body["lineage"]["parent_version"]) == ("destroyed", 1)
    assert body["checkpoint"]["sha256"] == _version(settings, model["id"], 2).sha256
    assert body["destroyed_at"] is not None and "version 3 forgot" in body["destruction_reason"]


def test_the_sweep_records_each_destruction_in_an_event_chain_that_still_verifies(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    forget(client, tenant, settings, model["id"], IDS[:4])
    forget(client, tenant, settings, model["id"], IDS[4:8])
    _sweep(settings)

    recorded = _events(settings, "model_version.destroyed")
    assert [e.data["number"] for e in recorded] == [1, 2]
    assert recorded[0].data["sha256"] == _version(settings, model["id"], 1).sha256
    with session_factory(settings.database_url)() as session:
        verdict = verify_chain(session)
    assert verdict.ok, str(verdict)


def test_a_window_in_the_future_keeps_the_version_until_it_ends(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=3600)
    forget(client, tenant, settings, model["id"], IDS[:4])
    ready_at = _version(settings, model["id"], 2).ready_at
    assert ready_at is not None
    uri = _version(settings, model["id"], 1).checkpoint_uri

    early = sweep(session_factory(settings.database_url), settings=settings, now=ready_at + timedelta(seconds=3599))
    assert early.destroyed_versions == [] and _file(uri).exists()
    assert _version(settings, model["id"], 1).status == "ready"

    due = sweep(session_factory(settings.database_url), settings=settings, now=ready_at + timedelta(seconds=3600))
    assert len(due.destroyed_versions) == 1 and not _file(uri).exists()


def test_a_shorter_window_set_later_applies_at_the_next_sweep(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)  # the settings' default: 7 days
    forget(client, tenant, settings, model["id"], IDS[:4])
    assert _sweep(settings, after=timedelta(days=1)).destroyed_versions == []

    changed = client.patch(f"/v1/models/{model['id']}", json={"retention_seconds": 0}, headers=tenant.headers)
    assert changed.status_code == 200, changed.text

    assert len(_sweep(settings).destroyed_versions) == 1


def test_a_crash_between_deleting_and_recording_is_completed_by_the_next_sweep(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    forget(client, tenant, settings, model["id"], IDS[:4])
    uri = _version(settings, model["id"], 1).checkpoint_uri

    def crash(**_: Any) -> bool:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patched:
        patched.setattr(erasure_repo, "mark_version_destroyed", crash)
        assert _sweep(settings).destroyed_versions == []
    # deleted first, so nothing is left to hold the samples; the row does not yet say so, and is never
    # "destroyed" while its object exists
    assert not _file(uri).exists() and _version(settings, model["id"], 1).status == "ready"

    assert len(_sweep(settings).destroyed_versions) == 1
    assert _version(settings, model["id"], 1).status == "destroyed"


def test_a_reference_set_holding_forgotten_samples_is_destroyed_and_a_new_one_queued(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    set_id = train_reference_set(client, tenant, settings, model["id"])
    with session_factory(settings.database_url)() as session:
        objects = [session.get(ReferenceSet, uuid.UUID(set_id)).membership_uri,
                   *(c["uri"] for c in session.get(ReferenceSet, uuid.UUID(set_id)).checkpoints)]  # fmt: skip
    forget(client, tenant, settings, model["id"], IDS[:4])

    swept = _sweep(settings)

    assert [str(s) for s in swept.destroyed_reference_sets] == [set_id]
    assert not any(_file(uri).exists() for uri in objects)
    [event] = _events(settings, "reference_set.destroyed")
    with session_factory(settings.database_url)() as session:
        rebuild = session.get(Job, uuid.UUID(event.data["rebuild_job_id"]))
        assert (rebuild.kind, rebuild.status, rebuild.config["k"]) == (JobKind.reference_models, JobStatus.queued, 2)


def test_a_reference_set_trained_after_a_request_claimed_its_samples_is_kept(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:4]).json()  # claimed: OUT of every new model
    set_id = train_reference_set(client, tenant, settings, model["id"])
    complete_job(settings, uuid.UUID(request["job_id"]))

    swept = _sweep(settings)

    assert swept.destroyed_reference_sets == [] and len(swept.destroyed_versions) == 1
    with session_factory(settings.database_url)() as session:
        kept = session.get(ReferenceSet, uuid.UUID(set_id))
        assert kept.destroyed_at is None and kept.excluded_count == 4


def test_an_object_no_row_names_is_removed_once_older_than_the_grace(settings: Settings) -> None:
    orphan = ObjectStore.from_settings(settings).put_bytes(b"a checkpoint of a job that died before recording it")
    grace = timedelta(seconds=settings.orphan_grace_seconds)

    young = _sweep(settings, after=grace - timedelta(seconds=5))
    assert young.orphans_removed == [] and young.orphans_kept == 1 and _file(orphan.uri).exists()

    old = _sweep(settings, after=grace + timedelta(seconds=5))
    assert old.orphans_removed == [orphan.uri] and not _file(orphan.uri).exists()
    [event] = _events(settings, "storage.orphans_removed")
    assert event.data["objects"][0]["name"] == orphan.sha256


def test_a_temporary_file_a_crashed_write_left_is_removed_as_an_orphan(settings: Settings) -> None:
    store = ObjectStore.from_settings(settings)
    leftover = Path(store.root) / "tmp" / uuid.uuid4().hex
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a checkpoint")

    swept = _sweep(settings, after=timedelta(seconds=settings.orphan_grace_seconds + 5))

    assert swept.orphans_removed == [f"file://{leftover}"] and not leftover.exists()


def test_the_objects_a_running_job_stored_are_not_orphans(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        jobs.claim(session, job_id=uuid.UUID(request["job_id"]), owner=OWNER)
    stored = ObjectStore.from_settings(settings).put_bytes(b"the running job's checkpoint, not yet recorded")
    with factory() as session, session.begin():
        assert jobs.note_output(session, job_id=uuid.UUID(request["job_id"]), owner=OWNER, stored=stored)

    swept = _sweep(settings, after=timedelta(days=1))

    assert swept.orphans_removed == [] and _file(stored.uri).exists()


def test_no_stored_object_holds_a_forgotten_sample_once_the_window_has_passed(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=86400)
    train_reference_set(client, tenant, settings, model["id"])
    forget(client, tenant, settings, model["id"], IDS[:4])
    train_reference_set(client, tenant, settings, model["id"])  # excludes the first request's samples
    last = forget(client, tenant, settings, model["id"], IDS[4:8])
    ObjectStore.from_settings(settings).put_bytes(b"an orphan: it could hold anything")

    first = _sweep(settings, after=timedelta(days=1, seconds=1))
    assert len(first.destroyed_reference_sets) == 2 and len(first.orphans_removed) == 1
    [rebuild] = [e.data["rebuild_job_id"] for e in _events(settings, "reference_set.destroyed")
                 if e.data["rebuild_job_id"] is not None]  # fmt: skip
    record_reference_job(settings, uuid.UUID(rebuild))  # the new set: trained without any forgotten sample
    assert _sweep(settings, after=timedelta(days=1, seconds=1)).destroyed_reference_sets == []

    # every object in the store, by the rows that name it: none is a checkpoint of a version a newer one
    # superseded, nor an object of a reference set that trained on a sample forgotten since
    with session_factory(settings.database_url)() as session:
        owners = erasure_repo.live_object_owners(session=session)
        newest = _version(settings, model["id"], 3)
        rows = erasure_repo.forgotten_requests(session=session, model_ids=[uuid.UUID(model["id"])])
        forgotten = {str(request_id) for _, request_id, _ in rows}
        sets = {str(s.id): s for s in session.execute(select(ReferenceSet)).scalars()}
    assert last["version"] == 3 and newest.status == "ready"
    listed_objects = list(ObjectStore.from_settings(settings).iter_objects())
    assert len(listed_objects) == 1 + 3  # the newest checkpoint, and the new set's matrix and 2 models
    for listed in listed_objects:
        holders = owners.get(listed.uri)
        assert holders, f"{listed.uri} is named by no row"
        for holder in holders:
            kind, _, row_id = holder.partition(":")
            if kind == "model_version":
                assert row_id == str(newest.id), f"{listed.uri} is the checkpoint of a superseded version"
            elif kind == "reference_set":
                assert forgotten <= set(sets[row_id].excluded_request_ids), f"{listed.uri} holds forgotten samples"
            else:
                assert kind == "audit_page"
