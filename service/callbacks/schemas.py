"""Response bodies of the callback endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebhookSecretRead(BaseModel):
    secret: str = Field(description="'whsec_' + base64 of the raw HMAC key, as Standard Webhooks libraries take it")
    algorithm: Literal["HMAC-SHA256"]
    headers: list[str] = Field(description="the headers every callback carries")
    signed_content: str = Field(description="what the signature covers")
