"""HTTP routes of datasets: register (write scope), read and list (read scope), within the caller's tenant."""

from __future__ import annotations

import uuid

from fastapi import Response

from service.datasets import service
from service.datasets.schemas import DatasetCreate, DatasetList, DatasetRead
from service.deps import ReaderTenant, SessionDep, SettingsDep, WriterTenant
from service.errors import problem_responses
from service.pagination import CursorDep
from service.routing import API_PREFIX, JsonBodyRoute, api_router

router = api_router(
    "/datasets", tags=["datasets"], responses=problem_responses(401, 403), route_class=JsonBodyRoute
)


@router.post("", status_code=201, response_model=DatasetRead, responses=problem_responses(409, 415, 422, 503))
def register_dataset(
    body: DatasetCreate, principal: WriterTenant, session: SessionDep, settings: SettingsDep, response: Response
) -> DatasetRead:
    dataset = service.register_dataset(session, principal=principal, data_root=settings.data_root, body=body)
    response.headers["Location"] = f"{API_PREFIX}/datasets/{dataset.id}"
    return DatasetRead.model_validate(dataset)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=problem_responses(404, 422))
def get_dataset(dataset_id: uuid.UUID, principal: ReaderTenant, session: SessionDep) -> DatasetRead:
    return DatasetRead.model_validate(service.get_dataset(session, principal=principal, dataset_id=dataset_id))


@router.get("", response_model=DatasetList, responses=problem_responses(422))
def list_datasets(principal: ReaderTenant, session: SessionDep, page: CursorDep) -> DatasetList:
    return service.list_datasets(session, principal=principal, page=page)
