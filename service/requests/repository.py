"""Queries of deletion requests and the sample claims their intake makes and reports.

Sample IDs travel as one array parameter (PostgreSQL: unnest/ANY of text[]; SQLite: json_each of a JSON
array), so a 100,000-ID request costs a few statements, never one round trip per ID.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    func,
    not_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from service.lifecycle.states import IN_FLIGHT
from service.pagination import Sort, Window, fetch_page
from service.requests.schemas import DeletionRequestQuery
from service.tables import Dataset, DeletionRequest, Event, ForgottenSample, Model, Tenant, UTCDateTime

# the orders of the request list (ascending here; the list asks for the direction), the id breaking ties
REQUEST_SORTS = {
    key: Sort(key, (column, DeletionRequest.id))
    for key, column in (
        ("created_at", DeletionRequest.created_at),
        ("received_at", DeletionRequest.received_at),
        ("due_at", DeletionRequest.due_at),
    )
}


def insert_request(*, session: Session, **columns: Any) -> DeletionRequest:
    request = DeletionRequest(id=uuid.uuid4(), **columns)
    session.add(request)
    session.flush()
    return request


def get_request(*, session: Session, tenant_id: uuid.UUID, request_id: uuid.UUID) -> DeletionRequest | None:
    return session.execute(
        select(DeletionRequest)
        .where(DeletionRequest.id == request_id, DeletionRequest.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def get_by_idempotency_key(*, session: Session, model_id: uuid.UUID, key: str) -> DeletionRequest | None:
    return session.execute(
        select(DeletionRequest).where(DeletionRequest.model_id == model_id, DeletionRequest.idempotency_key == key)
    ).scalar_one_or_none()


def get_dataset_of_model(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Dataset | None:
    """The dataset of one of the tenant's models, in one query; None if the tenant has no such model."""
    return session.execute(
        select(Dataset).join(Model, Model.dataset_id == Dataset.id).where(
            Model.id == model_id, Model.tenant_id == tenant_id
        )
    ).scalar_one_or_none()


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _in_ids(session: Session, column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `ids`, with the IDs bound as a single array parameter."""
    if _is_postgres(session):
        return column == any_(cast(bindparam("ids", list(ids), type_=ARRAY(String)), ARRAY(String)))
    listed = select(text("value")).select_from(func.json_each(bindparam("ids", json.dumps(list(ids)))))
    return column.in_(listed.scalar_subquery())


def claim_samples(
    *, session: Session, model_id: uuid.UUID, request_id: uuid.UUID, sample_ids: Sequence[str], now: datetime
) -> set[str]:
    """Insert a forgotten_sample row for every ID not yet claimed for the model; return the IDs inserted.

    One INSERT ... SELECT over the array, skipping conflicts on the key (model_id, sample_id): an ID an
    earlier request claimed is neither inserted nor an error, and concurrent claims cannot both win.
    """
    if _is_postgres(session):
        statement = text(
            "INSERT INTO forgotten_sample (model_id, sample_id, request_id, created_at) "
            "SELECT :model_id, s, :request_id, :now FROM unnest(CAST(:ids AS text[])) AS s "
            "ON CONFLICT (model_id, sample_id) DO NOTHING RETURNING sample_id"
        ).bindparams(bindparam("ids", list(sample_ids), type_=ARRAY(String)))
    else:
        # `WHERE true` lets SQLite's parser tell the upsert clause from a join constraint.
        statement = text(
            "INSERT INTO forgotten_sample (model_id, sample_id, request_id, created_at) "
            "SELECT :model_id, value, :request_id, :now FROM json_each(:ids) WHERE true "
            "ON CONFLICT (model_id, sample_id) DO NOTHING RETURNING sample_id"
        ).bindparams(bindparam("ids", json.dumps(list(sample_ids))))
    statement = statement.bindparams(
        bindparam("model_id", model_id, type_=Uuid()),
        bindparam("request_id", request_id, type_=Uuid()),
        bindparam("now", now, type_=UTCDateTime()),
    )
    return set(session.execute(statement).scalars())


def covering_claims(
    *, session: Session, model_id: uuid.UUID, request_id: uuid.UUID, sample_ids: Sequence[str]
) -> list[Row[Any]]:
    """(sample_id, request_id, version_id) of the earlier claims on these IDs, by other requests."""
    return list(
        session.execute(
            select(ForgottenSample.sample_id, ForgottenSample.request_id, ForgottenSample.version_id).where(
                ForgottenSample.model_id == model_id,
                ForgottenSample.request_id != request_id,
                _in_ids(session, ForgottenSample.sample_id, sample_ids),
            )
        ).all()
    )


def covering_request_ids(
    *, session: Session, model_id: uuid.UUID, request_id: uuid.UUID, sample_ids: Sequence[str]
) -> list[uuid.UUID]:
    """The distinct earlier requests whose claims hold these IDs (by id)."""
    return list(
        session.execute(
            select(ForgottenSample.request_id)
            .where(
                ForgottenSample.model_id == model_id,
                ForgottenSample.request_id != request_id,
                _in_ids(session, ForgottenSample.sample_id, sample_ids),
            )
            .distinct()
            .order_by(ForgottenSample.request_id)
        ).scalars()
    )


def covering_versions(
    *, session: Session, model_id: uuid.UUID, request_id: uuid.UUID, sample_ids: Sequence[str]
) -> set[uuid.UUID | None]:
    """The distinct versions that forgot these IDs for other requests; None stands for claims still in flight."""
    return set(
        session.execute(
            select(ForgottenSample.version_id)
            .where(
                ForgottenSample.model_id == model_id,
                ForgottenSample.request_id != request_id,
                _in_ids(session, ForgottenSample.sample_id, sample_ids),
            )
            .distinct()
        ).scalars()
    )


def events_of_request(*, session: Session, request_id: uuid.UUID) -> list[Event]:
    return list(
        session.execute(
            select(Event)
            .where(Event.subject_type == "deletion_request", Event.subject_id == str(request_id))
            .order_by(Event.seq)
        ).scalars()
    )


def overdue_at(now: datetime) -> ColumnElement[bool]:
    """The request is overdue at `now`: its due date has passed and it is still in flight."""
    in_flight = DeletionRequest.status.in_(sorted(IN_FLIGHT))
    return and_(DeletionRequest.due_at.is_not(None), DeletionRequest.due_at < now, in_flight)


def list_requests(
    *, session: Session, tenant_id: uuid.UUID, query: DeletionRequestQuery, now: datetime, window: Window
) -> tuple[list[DeletionRequest], str | None]:
    """One page of the tenant's requests that pass every filter of `query`; `now` decides which are overdue."""
    conditions = [DeletionRequest.tenant_id == tenant_id]
    if query.model_id is not None:
        conditions.append(DeletionRequest.model_id == query.model_id)
    if query.status:
        conditions.append(DeletionRequest.status.in_(query.status))
    if query.subject_request_id is not None:
        conditions.append(DeletionRequest.subject_request_id == query.subject_request_id)
    if query.regulation is not None:
        conditions.append(DeletionRequest.regulation == query.regulation)
    if query.overdue is not None:
        conditions.append(overdue_at(now) if query.overdue else not_(overdue_at(now)))
    for column, after, before in (
        (DeletionRequest.received_at, query.received_after, query.received_before),
        (DeletionRequest.created_at, query.created_after, query.created_before),
    ):
        if after is not None:
            conditions.append(column >= after)
        if before is not None:
            conditions.append(column < before)
    return fetch_page(session, select(DeletionRequest).where(*conditions), window)


def count_overdue_by_tenant(*, session: Session, now: datetime) -> dict[str, int]:
    """Tenant name -> its requests overdue at `now`, zero included, in one GROUP BY."""
    rows = session.execute(
        select(Tenant.name, func.count(DeletionRequest.id))
        .outerjoin(DeletionRequest, and_(DeletionRequest.tenant_id == Tenant.id, overdue_at(now)))
        .group_by(Tenant.name)
    )
    return {name: int(count) for name, count in rows}

