"""Reading a model's suppression list: JSON pages, and a CSV export streamed in batches from the ledger.

A claim is written when a request is accepted and gets its version when the request completes, so the list
holds both what was forgotten and what is being forgotten (state in_flight): neither may be trained on. A claim
of a request that fails or is cancelled is released, and leaves the list.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from service.db import session_factory
from service.models import service as models
from service.pagination import Cursor, Window
from service.settings import Settings
from service.suppression import repository
from service.suppression.schemas import ForgottenSampleList, ForgottenSampleQuery, ForgottenSampleRead
from service.tenants.service import Principal

CSV_COLUMNS = ("sample_id", "request_id", "state", "version", "forgotten_at")
CSV_BATCH = 5000  # rows per query and per chunk sent: 100,000 IDs are 20 short reads, never one string
LIST_NAME = "forgotten-samples"


def _read(row: Any) -> ForgottenSampleRead:
    return ForgottenSampleRead(
        sample_id=row.sample_id,
        request_id=row.request_id,
        state="in_flight" if row.version is None else "forgotten",
        version=row.version,
        forgotten_at=row.forgotten_at,
    )


def list_forgotten_samples(
    session: Session, *, principal: Principal, model_id: uuid.UUID, query: ForgottenSampleQuery, page: Cursor
) -> ForgottenSampleList:
    """One page of the model's suppression list, by sample ID."""
    models.get_model(session, principal=principal, model_id=model_id)  # 404 for another tenant's
    window = page.window(LIST_NAME, repository.BY_SAMPLE_ID, {"model_id": model_id, **query.model_dump()})
    rows, next_token = repository.list_forgotten(session=session, model_id=model_id, state=query.state, window=window)
    return ForgottenSampleList(items=[_read(row) for row in rows], next_page_token=next_token)


def find_forgotten_sample(
    session: Session, *, principal: Principal, model_id: uuid.UUID, sample_id: str
) -> ForgottenSampleRead | None:
    """One sample's entry in the model's suppression list, or None when no request ever claimed it."""
    models.get_model(session, principal=principal, model_id=model_id)  # 404 for another tenant's
    row = repository.find_forgotten(session=session, model_id=model_id, sample_id=sample_id)
    return None if row is None else _read(row)


def export_csv(
    session: Session, *, principal: Principal, settings: Settings, model_id: uuid.UUID, query: ForgottenSampleQuery
) -> Iterator[str]:
    """The CSV export's chunks; the model is checked now (404), the rows are read as the chunks are taken."""
    models.get_model(session, principal=principal, model_id=model_id)
    return _csv_chunks(settings, model_id=model_id, query=query)


def _csv_chunks(settings: Settings, *, model_id: uuid.UUID, query: ForgottenSampleQuery) -> Iterator[str]:
    """A header, then one chunk per batch.

    Each batch is read in a short transaction of its own (the response is sent after the request's session has
    ended, and a slow reader must hold no transaction open), continuing after the last sample ID sent: an ID
    claimed or released meanwhile appears at most once, and every other appears exactly once.
    """
    yield _csv_text([CSV_COLUMNS])
    window: Window | None = Window(LIST_NAME, repository.BY_SAMPLE_ID, {}, CSV_BATCH, after=None)
    while window is not None:
        with session_factory(settings.database_url)() as session:
            rows, next_token = repository.list_forgotten(
                session=session, model_id=model_id, state=query.state, window=window
            )
        if rows:
            yield _csv_text(_csv_row(_read(row)) for row in rows)
        window = window.following(rows[-1]) if next_token is not None else None


def _csv_row(item: ForgottenSampleRead) -> list[str]:
    version = "" if item.version is None else str(item.version)
    forgotten_at = "" if item.forgotten_at is None else item.forgotten_at.isoformat()
    return [item.sample_id, str(item.request_id), item.state, version, forgotten_at]


def _csv_text(rows: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
