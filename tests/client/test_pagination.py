"""The page iterators follow a list's page tokens (`limit` and `page_token` in, `next_page_token` out) on the
real server; a fake service stands in where a test needs pages the server would not answer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.client.conftest import Served
from unlearning_client import AsyncClient, Client, UnlearningError


class Recording(httpx.BaseTransport):
    """The real server, with the query of every request kept."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.queries: list[dict[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(dict(request.url.params))
        return self.inner.handle_request(request)


def test_a_list_of_the_real_server_is_followed_page_by_page_to_its_end(served: Served) -> None:
    transport = Recording()
    with Client(served.url, served.key, transport=transport) as api:
        numbers = [version.number for version in api.iter_versions(served.model.id, page_size=1)]
    assert numbers == [1, 2]
    first, second = transport.queries  # the second page says it is the last
    assert first == {"limit": "1"} and second.keys() == {"limit", "page_token"}


def test_every_dataset_is_listed_once_across_pages(api: Client) -> None:
    names = {f"digits-{uuid.uuid4().hex[:8]}" for _ in range(3)}
    for name in names:
        api.register_dataset(name, "digits")
    listed = [dataset.name for dataset in api.iter_datasets(page_size=2)]
    assert len(listed) == len(set(listed)) and names <= set(listed)
    assert listed == [dataset.name for dataset in api.iter_datasets()]


def _cursor_service(pages: dict[str | None, dict[str, Any]], queries: list[dict[str, str]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        queries.append(dict(request.url.params))
        return httpx.Response(200, json=pages[request.url.params.get("page_token")])

    return httpx.MockTransport(answer)


def _model(n: int, name: str) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n)), "name": name, "dataset_id": str(uuid.UUID(int=0)), "architecture": {},
        "method": "amun", "unlearn_config": {}, "latest_version": 1, "created_at": "2026-01-05T10:00:00Z",
    }  # fmt: skip


# page token -> the page it names; the first page is asked for without one
MODEL_PAGES: dict[str | None, dict[str, Any]] = {
    None: {"items": [_model(1, "a")], "next_page_token": "opaque/1=="},
    "opaque/1==": {"items": [_model(2, "b")], "next_page_token": "opaque/2=="},
    "opaque/2==": {"items": [_model(3, "c")], "next_page_token": None},
}


def test_a_cursor_list_is_followed_by_its_page_tokens_until_none() -> None:
    queries: list[dict[str, str]] = []
    with Client("http://service.test", "k", transport=_cursor_service(MODEL_PAGES, queries)) as api:
        names = [model.name for model in api.iter_models(page_size=1)]
    assert names == ["a", "b", "c"]
    assert queries == [{"limit": "1"}, {"limit": "1", "page_token": "opaque/1=="},
                       {"limit": "1", "page_token": "opaque/2=="}]  # fmt: skip


def test_one_page_carries_its_token_for_the_caller_to_continue() -> None:
    queries: list[dict[str, str]] = []
    with Client("http://service.test", "k", transport=_cursor_service(MODEL_PAGES, queries)) as api:
        first = api.list_models(limit=1)
        second = api.list_models(limit=1, page_token=first.next_page_token)
    assert [m.name for m in first.items + second.items] == ["a", "b"]
    assert second.next_page_token == "opaque/2=="


def test_the_async_iterator_follows_page_tokens_too() -> None:
    queries: list[dict[str, str]] = []

    async def names() -> list[str]:
        async with AsyncClient("http://service.test", "k", transport=_cursor_service(MODEL_PAGES, queries)) as api:
            return [model.name async for model in api.iter_models()]

    assert asyncio.run(names()) == ["a", "b", "c"]
    assert [q.get("page_token") for q in queries] == [None, "opaque/1==", "opaque/2=="]


def test_a_list_that_hands_back_the_same_token_stops_with_an_error_instead_of_looping() -> None:
    looping = {None: {"items": [_model(1, "a")], "next_page_token": "t"},
               "t": {"items": [_model(2, "b")], "next_page_token": "t"}}  # fmt: skip
    queries: list[dict[str, str]] = []
    with Client("http://service.test", "k", transport=_cursor_service(looping, queries)) as api:
        with pytest.raises(UnlearningError, match="does not advance"):
            list(api.iter_models())
    assert len(queries) == 2
