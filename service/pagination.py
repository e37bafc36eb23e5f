"""The limit/offset query parameters every list endpoint takes, bounded and declared once.

The bounds are part of the OpenAPI schema, so a client sees them; an offset past what SQL's OFFSET holds is a
422 instead of an overflow inside the database driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

MAX_PAGE_SIZE = 500
# OFFSET is a 64-bit signed integer in SQLite and in PostgreSQL (bigint); sqlite3 cannot even bind 2**63.
MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip, oldest first")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(page_params)]
