"""Suppression-list response bodies and query."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.pagination import PageRead

SampleState = Literal["forgotten", "in_flight"]


class ForgottenSampleRead(BaseModel):
    sample_id: str
    request_id: uuid.UUID = Field(description="the deletion request that claimed it")
    state: SampleState = Field(
        description="forgotten: a ready version excludes it; in_flight: claimed by a request still being carried "
        "out (it must not be trained on either; the claim is released if that request fails or is cancelled)"
    )
    version: int | None = Field(description="the first version without it; null while in flight")
    forgotten_at: datetime | None = Field(description="when that version became ready; null while in flight")


class ForgottenSampleList(PageRead[ForgottenSampleRead]):
    """A model's suppression list, by sample ID."""


class ForgottenSampleQuery(BaseModel):
    """Which samples of the suppression list to read, as a query parameter."""

    state: Literal["all", "forgotten", "in_flight"] = Field(
        default="all",
        description="all (default): every sample that must never be trained on again, forgotten or being "
        "forgotten; forgotten: only those a ready version excludes; in_flight: only those still being forgotten",
    )
