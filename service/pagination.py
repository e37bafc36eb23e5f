"""Cursor pagination, one helper for every list: `limit` and an opaque `page_token` in; `{"items": [...],
"next_page_token": ...}` out, the token null on the last page.

Keyset pagination: a list is read in one order (a sort key, then a column unique within the list that breaks
ties), and the token carries the key of the last item sent; the next page starts after that key. A row inserted
while a caller pages through sorts either after that key (it appears once, on a later page) or before it (it
does not appear): no item is returned twice or skipped, which OFFSET cannot promise while rows arrive. The
token also names the list, the sort and the filters it was made for: reused with anything else it is a 422
problem, never a page of one list read with another's key.

How a list uses it: the endpoint takes `page: CursorDep`; the repository builds the filtered SELECT and returns
fetch_page(session, statement, page.window(list name, sort, filters)); the response schema is
PageRead[ItemRead].
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python
from sqlalchemy import BigInteger, ColumnElement, Select, TypeDecorator, and_, false, literal, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import FieldProblem, Unprocessable

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
# A token holds the list's filters (a subject_request_id of 200 characters among them) and one key: a few
# hundred characters; the bound keeps a forged one from costing more than a glance.
MAX_PAGE_TOKEN_LENGTH = 4096
TOKEN_VERSION = 1

ItemT = TypeVar("ItemT")


class InvalidPageToken(Unprocessable):
    slug = "invalid-page-token"

    def __init__(self, detail: str) -> None:
        problem = FieldProblem(detail=detail, location=["query", "page_token"], type="invalid_page_token")
        super().__init__(detail, errors=[problem])


class PageRead(BaseModel, Generic[ItemT]):
    """One page of a list; subclass it per list (`class DatasetList(PageRead[DatasetRead])`)."""

    items: list[ItemT]
    next_page_token: str | None = Field(
        description="pass as page_token, with the same filters and sort, for the next page; null on the last page"
    )


@dataclass(frozen=True)
class Sort:
    """An order a list is read in: key columns, the last one unique within the list, all in one direction.

    NULLs of a nullable key column sort last whichever the direction (a request without a due date comes after
    every dated one), on PostgreSQL and SQLite alike.
    """

    name: str  # what the token records, e.g. "created_at"
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}:{'desc' if self.descending else 'asc'}"

    def ordered(self, *, descending: bool) -> Sort:
        return replace(self, descending=descending)

    def order_by(self) -> list[ColumnElement[Any]]:
        clauses = []
        for column in self.columns:
            clause = column.desc() if self.descending else column.asc()
            clauses.append(clause.nulls_last() if _nullable(column) else clause)
        return clauses

    def after(self, key: Sequence[Any]) -> ColumnElement[bool]:
        """Rows that sort after `key` in this order."""
        if not any(_nullable(column) for column in self.columns):
            # one row-value comparison: both backends read it as a range of the (tenant, key, id) index
            row = tuple_(*self.columns)
            bound = tuple_(*(literal(v, type_=column.type) for column, v in zip(self.columns, key, strict=True)))
            return row < bound if self.descending else row > bound
        # With NULLs in a key (which compare as unknown) the comparison is spelled out column by column.
        alternatives = []
        for i, (column, value) in enumerate(zip(self.columns, key, strict=True)):
            beyond = self._beyond(column, value)
            if beyond is not None:
                same_before = [_equal(c, v) for c, v in zip(self.columns[:i], key[:i], strict=True)]
                alternatives.append(and_(*same_before, beyond))
        return or_(*alternatives) if alternatives else false()

    def _beyond(self, column: InstrumentedAttribute[Any], value: Any) -> ColumnElement[bool] | None:
        if value is None:
            return None  # NULLs come last: nothing of this column sorts after one
        later = column < value if self.descending else column > value
        return or_(later, column.is_(None)) if _nullable(column) else later

    def key_of(self, item: Any) -> tuple[Any, ...]:
        """The key of a fetched item: an entity, or a row whose columns keep their names."""
        return tuple(getattr(item, column.key) for column in self.columns)

    def encode_key(self, key: Sequence[Any]) -> list[Any]:
        return [to_jsonable_python(value) for value in key]

    def decode_key(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list) or len(raw) != len(self.columns):
            raise ValueError(f"a key of {len(self.columns)} values was expected")
        return tuple(_decode_value(column, value) for column, value in zip(self.columns, raw, strict=True))


def _nullable(column: InstrumentedAttribute[Any]) -> bool:
    return bool(getattr(column.expression, "nullable", True))


def _equal(column: InstrumentedAttribute[Any], value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.python_type


def _decode_value(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """A key value read back from a token; ValueError unless the column could hold it."""
    if value is None:
        if not _nullable(column):
            raise ValueError(f"{column.key} cannot be null")
        return None
    kind = _python_type(column)
    if kind is datetime and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"{column.key} has no time zone")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{column.key} is out of range") from None
    if kind is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        bits = 64 if isinstance(column.type, BigInteger) else 32
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"{column.key} is out of range")
        return value
    if kind is str and isinstance(value, str) and "\x00" not in value:
        return value
    raise ValueError(f"{column.key} is not a {kind.__name__}")


def canonical_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters as the token records them: JSON values, unset ones (None, an empty list) left out, a repeated
    filter as a sorted set (status=queued&status=running is status=running&status=queued)."""
    canonical: dict[str, Any] = {}
    for name, value in sorted(filters.items()):
        if value is None or value == []:
            continue
        value = to_jsonable_python(value)
        if isinstance(value, list):
            value = sorted(set(value), key=json.dumps)
        canonical[name] = value
    return canonical


@dataclass(frozen=True)
class Window:
    """What one page reads: the list, its sort and filters, the page size, and the key the page starts after."""

    list_name: str
    sort: Sort
    filters: dict[str, Any]
    limit: int
    after: tuple[Any, ...] | None

    def following(self, item: Any) -> Window:
        """The window of the page after the one that ended with `item` (for readers that page through a whole
        list themselves, such as a streamed export)."""
        return replace(self, after=self.sort.key_of(item))

    def token_after(self, item: Any) -> str:
        content = {
            "v": TOKEN_VERSION,
            "list": self.list_name,
            "sort": self.sort.key,
            "filters": self.filters,
            "after": self.sort.encode_key(self.sort.key_of(item)),
        }
        raw = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Cursor:
    """The paging query of a list request: its page size and the token of the page it wants."""

    limit: int
    page_token: str | None

    def window(self, list_name: str, sort: Sort, filters: Mapping[str, Any] | None = None) -> Window:
        """The page this cursor asks for; InvalidPageToken (422) for a token that is not one this list made for
        this sort and these filters."""
        canonical = canonical_filters(filters or {})
        after = None
        if self.page_token is not None:
            after = _read_token(self.page_token, list_name=list_name, sort=sort, filters=canonical)
        return Window(list_name=list_name, sort=sort, filters=canonical, limit=self.limit, after=after)


_NOT_OURS = (
    "the page_token is not one this service made; pass next_page_token exactly as it was answered, or leave "
    "page_token out for the first page"
)


def _read_token(token: str, *, list_name: str, sort: Sort, filters: dict[str, Any]) -> tuple[Any, ...]:
    try:
        content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    # ValueError covers non-ASCII text, bytes that are not UTF-8 and JSON errors; a forged token can also nest
    # its JSON past the parser's recursion limit
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidPageToken(_NOT_OURS) from None
    if not isinstance(content, dict) or content.get("v") != TOKEN_VERSION or not isinstance(content.get("list"), str):
        raise InvalidPageToken(_NOT_OURS)
    if content.get("list") != list_name:
        raise InvalidPageToken(
            f"this page token belongs to another list ({content.get('list')!r}), not to the {list_name} list; "
            "leave page_token out for this list's first page"
        )
    if content.get("sort") != sort.key:
        raise InvalidPageToken(
            f"this page token was made for the order {_order_words(content.get('sort'))}, and this request asks "
            f"for {_order_words(sort.key)}; send the sort it was made for, or leave page_token out to start again"
        )
    made_for = content.get("filters")
    if made_for != filters:
        named = ""
        if isinstance(made_for, dict):
            changed = sorted(k for k in {*made_for, *filters} if made_for.get(k) != filters.get(k))
            named = f" ({', '.join(changed)} differ)"
        raise InvalidPageToken(
            f"this page token was made for other filters{named}; send the filters it was made for, or leave "
            "page_token out to start again with these"
        )
    try:
        return sort.decode_key(content.get("after"))
    except ValueError:
        raise InvalidPageToken(_NOT_OURS) from None


def _order_words(key: Any) -> str:
    name, _, direction = str(key).partition(":")
    return f"{name} {'descending' if direction == 'desc' else 'ascending'}"


def fetch_page(session: Session, statement: Select[Any], window: Window) -> tuple[list[Any], str | None]:
    """One page of `statement` (entities, or rows of named columns) in the window's order, and the token of the
    next page (None when this is the last). Reads one row more than the page to know whether another follows."""
    if window.after is not None:
        statement = statement.where(window.sort.after(window.after))
    result = session.execute(statement.order_by(*window.sort.order_by()).limit(window.limit + 1))
    rows = list(result.scalars() if len(result.keys()) == 1 else result.all())
    if len(rows) <= window.limit:
        return rows, None
    items = rows[: window.limit]
    return items, window.token_after(items[-1])


def cursor_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="page size")] = DEFAULT_PAGE_SIZE,
    page_token: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_PAGE_TOKEN_LENGTH,
            description="next_page_token of the previous page (opaque; valid with the same filters and sort); "
            "leave out for the first page",
        ),
    ] = None,
) -> Cursor:
    return Cursor(limit=limit, page_token=page_token)


CursorDep = Annotated[Cursor, Depends(cursor_params)]

