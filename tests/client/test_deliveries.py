"""The delivery log and redeliveries through the client, against the real server: typed deliveries, the page
iterator, a redelivery naming the message it repeats, and the 409 of a target disabled by 410.

The server refuses a loopback callback URL at submission and runs no sender here, so each test gives its
request a callback URL and queues its callbacks in the served ledger with the service's own enqueue, as a
state change would; nothing is sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from tests.client.conftest import Served
from unlearning_client import AsyncClient, Client, Conflict, NotFound, WebhookDelivery, WebhookStatus


def _request_with_callbacks(api: Client, served: Served, sample_ids: list[str], *event_types: str) -> uuid.UUID:
    from service.callbacks import service as callbacks
    from service.db import session_factory
    from service.tables import DeletionRequest

    request_id = api.submit_deletion_request(served.model.id, sample_ids).id
    with session_factory(served.database_url)() as session, session.begin():
        request = session.get(DeletionRequest, request_id)
        request.callback_url = "https://receiver.invalid/hooks"
        for event_type in event_types:
            callbacks.enqueue(session, request=request, event_type=event_type, data={})
    return request_id


def _disable_callbacks(served: Served, request_id: uuid.UUID) -> None:
    """What the sender records when the receiver answers 410 Gone."""
    from service.db import session_factory
    from service.tables import DeletionRequest, utcnow

    with session_factory(served.database_url)() as session, session.begin():
        session.get(DeletionRequest, request_id).callback_disabled_at = utcnow()


def test_the_delivery_log_reads_back_typed_and_is_iterated_page_by_page(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    types = ["deletion_request.queued", "deletion_request.running", "deletion_request.completed"]
    request_id = _request_with_callbacks(api, served, fresh_ids(1), *types)

    page = api.list_deliveries(request_id, limit=2)
    assert len(page.items) == 2 and page.next_page_token is not None
    first = page.items[0]
    assert isinstance(first, WebhookDelivery) and first.status == WebhookStatus.pending
    assert (first.attempts, first.last_status_code, first.redelivery_of) == (0, None, None)
    assert first.message_id == f"msg_{first.id.hex}"
    assert [d.event_type for d in api.iter_deliveries(request_id, page_size=2)] == types


def test_a_redelivery_names_the_message_it_repeats_and_keeps_its_webhook_id(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    request_id = _request_with_callbacks(api, served, fresh_ids(1), "deletion_request.completed")
    [original] = api.list_deliveries(request_id).items

    again = api.redeliver(request_id, original.id)
    assert (again.redelivery_of, again.message_id, again.status) == (original.id, original.message_id, "pending")
    assert [d.id for d in api.iter_deliveries(request_id)] == [original.id, again.id]
    with pytest.raises(NotFound):
        api.redeliver(request_id, uuid.uuid4())


def test_a_target_disabled_by_410_is_a_conflict_until_a_redelivery_reenables_it(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    request_id = _request_with_callbacks(api, served, fresh_ids(1), "deletion_request.completed")
    [original] = api.list_deliveries(request_id).items
    _disable_callbacks(served, request_id)
    assert api.get_deletion_request(request_id).callbacks_disabled_at is not None

    with pytest.raises(Conflict) as refused:
        api.redeliver(request_id, original.id)
    assert "reenable=true" in refused.value.detail
    assert api.redeliver(request_id, original.id, reenable=True).redelivery_of == original.id
    assert api.get_deletion_request(request_id).callbacks_disabled_at is None


def test_the_async_client_lists_and_redelivers(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    request_id = _request_with_callbacks(api, served, fresh_ids(1), "deletion_request.completed")

    async def flow() -> None:
        async with AsyncClient(served.url, served.key) as client:
            [original] = (await client.list_deliveries(request_id)).items
            again = await client.redeliver(request_id, original.id)
            assert again.redelivery_of == original.id
            assert [d.id async for d in client.iter_deliveries(request_id, page_size=1)] == [original.id, again.id]

    asyncio.run(flow())
