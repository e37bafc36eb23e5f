"""Ledger rows of the callback tests: a deletion request with or without a callback URL, its callbacks
queued through service.callbacks.enqueue, and its deliveries read back."""

from __future__ import annotations

import uuid

from service.callbacks import repository, service
from service.db import session_factory
from service.tables import Dataset, DeletionRequest, Model, RequestStatus, WebhookDelivery
from tests.service.factories import TenantKey


def make_request(database_url: str, tenant: TenantKey, callback_url: str | None) -> uuid.UUID:
    """A completed deletion request of a model of the tenant, committed."""
    with session_factory(database_url)() as session, session.begin():
        dataset = Dataset(
            tenant_id=tenant.tenant_id,
            name=f"d-{uuid.uuid4().hex[:6]}",
            format="digits",
            path=None,
            id_file=None,
            spec={},
            retain_access=True,
            num_train=10,
            num_test=5,
            classes=["0", "1"],
            input_shape=[1, 8, 8],
        )
        session.add(dataset)
        session.flush()
        model = Model(
            tenant_id=tenant.tenant_id,
            dataset_id=dataset.id,
            name=f"m-{uuid.uuid4().hex[:6]}",
            arch={},
            method="amun",
            unlearn_config={},
        )
        session.add(model)
        session.flush()
        request = DeletionRequest(
            tenant_id=tenant.tenant_id,
            model_id=model.id,
            subject_request_id="crm-42",
            payload_sha256="0" * 64,
            sample_count=2,
            status=RequestStatus.completed,
            callback_url=callback_url,
        )
        session.add(request)
        session.flush()
        return request.id


def enqueue(database_url: str, request_id: uuid.UUID, event_type: str = "deletion_request.completed") -> None:
    """Queue a callback about the request, committed."""
    with session_factory(database_url)() as session, session.begin():
        request = session.get(DeletionRequest, request_id)
        service.enqueue(session, request=request, event_type=event_type, data={"version": 2})


def deliveries(database_url: str, request_id: uuid.UUID) -> list[WebhookDelivery]:
    """The request's deliveries, oldest first."""
    with session_factory(database_url)() as session:
        return repository.for_request(session, request_id)
