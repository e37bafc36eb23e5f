"""API-key request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.pagination import PageRead

Scope = Literal["admin", "write", "read"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "deletion workflow", "scopes": ["write"]}]}
    )

    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. 'deletion workflow'")
    scopes: list[Scope] = Field(
        min_length=1,
        description="'read' lists and downloads, 'write' also registers and requests, 'admin' also manages keys",
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="the key's public first part, to recognise it")
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the secret key; shown only in this response, store it now")


class ApiKeyList(PageRead[ApiKeyRead]):
    """The tenant's API keys, revoked ones included, oldest first."""
