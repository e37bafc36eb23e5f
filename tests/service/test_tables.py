"""Invariants the ledger's constraints enforce on both backends, whatever code writes to it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import session_factory
from service.tables import (
    Dataset,
    DeletionRequest,
    ForgottenSample,
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelVersion,
    RequestStatus,
    Tenant,
    VersionStatus,
)


def _model(session: Session) -> Model:
    tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}")
    session.add(tenant)
    session.flush()
    dataset = Dataset(
        tenant_id=tenant.id, name="d", format="digits", spec={}, retain_access=True,
        num_train=1, num_test=1, classes=["0", "1"], input_shape=[1, 8, 8],
    )  # fmt: skip
    session.add(dataset)
    session.flush()
    model = Model(tenant_id=tenant.id, dataset_id=dataset.id, name="m", arch={}, method="amun", unlearn_config={})
    session.add(model)
    session.flush()
    return model


def _job(model: Model, status: JobStatus) -> Job:
    return Job(tenant_id=model.tenant_id, model_id=model.id, kind=JobKind.unlearn, status=status, config={})


def _request(model: Model, key: str | None) -> DeletionRequest:
    return DeletionRequest(
        tenant_id=model.tenant_id, model_id=model.id, idempotency_key=key, payload_sha256="0" * 64,
        sample_count=1, status=RequestStatus.received,
    )  # fmt: skip


def test_a_model_has_at_most_one_queued_unlearning_job(database_url: str) -> None:
    with session_factory(database_url)() as session:
        model = _model(session)
        session.add_all([_job(model, JobStatus.queued), _job(model, JobStatus.running)])
        session.flush()  # one waiting next to one running is the normal coalescing state
        session.add(_job(model, JobStatus.queued))
        with pytest.raises(IntegrityError):
            session.flush()


def test_a_sample_is_forgotten_at_most_once_per_model(database_url: str) -> None:
    with session_factory(database_url)() as session:
        model = _model(session)
        request = _request(model, None)
        session.add(request)
        session.flush()
        session.add(ForgottenSample(model_id=model.id, sample_id="s1", request_id=request.id))
        session.flush()
        session.add(ForgottenSample(model_id=model.id, sample_id="s1", request_id=request.id))
        with pytest.raises(IntegrityError):
            session.flush()


def test_an_idempotency_key_is_used_once_per_model(database_url: str) -> None:
    with session_factory(database_url)() as session:
        model = _model(session)
        session.add_all([_request(model, None), _request(model, None), _request(model, "k")])
        session.flush()  # requests without a key never collide
        session.add(_request(model, "k"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_version_numbers_are_unique_per_model_and_ready_needs_a_checkpoint(database_url: str) -> None:
    with session_factory(database_url)() as session:
        model = _model(session)
        session.add(ModelVersion(model_id=model.id, number=1, status=VersionStatus.pending))
        session.flush()
        session.add(ModelVersion(model_id=model.id, number=2, status=VersionStatus.ready))
        with pytest.raises(IntegrityError):
            session.flush()


def test_unknown_status_values_are_refused_by_the_database(database_url: str) -> None:
    with session_factory(database_url)() as session:
        session.add(_job(_model(session), JobStatus.queued))
        session.flush()
        with pytest.raises(IntegrityError):  # the CHECK constraint, not just the Python enum
            session.execute(text("UPDATE job SET status = 'exploded'"))
