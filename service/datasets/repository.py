"""Queries of datasets, always within one tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import Dataset

OLDEST_FIRST = Sort("created_at", (Dataset.created_at, Dataset.id))


def insert_dataset(*, session: Session, tenant_id: uuid.UUID, **columns: Any) -> Dataset:
    dataset = Dataset(id=uuid.uuid4(), tenant_id=tenant_id, **columns)
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(*, session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset | None:
    return session.execute(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    ).scalar_one_or_none()


def get_dataset_by_name(*, session: Session, tenant_id: uuid.UUID, name: str) -> Dataset | None:
    return session.execute(
        select(Dataset).where(Dataset.name == name, Dataset.tenant_id == tenant_id)
    ).scalar_one_or_none()


def list_datasets(*, session: Session, tenant_id: uuid.UUID, window: Window) -> tuple[list[Dataset], str | None]:
    return fetch_page(session, select(Dataset).where(Dataset.tenant_id == tenant_id), window)
