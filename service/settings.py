"""The service's configuration: one pydantic-settings class read from UNLEARN_* environment variables.

The app, the CLI, Alembic and the tests share it; nothing else reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNLEARN_", extra="ignore", frozen=True)

    # SQLAlchemy URL; the embedded default is a SQLite file under ./var (created on first use)
    database_url: str = "sqlite:///./var/unlearning.db"
    # fsspec URL or local folder where checkpoints are stored by content address
    storage_url: str = "./var/checkpoints"
    # the only folder datasets may be registered from; paths in requests are relative to it
    data_root: Path = Path("./var/data")
    # Celery broker (e.g. redis://host:6379/0); None = the embedded local executor
    broker_url: str | None = None
    # largest checkpoint upload accepted, in bytes
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    # most sample IDs one deletion request may carry
    max_ids_per_request: int = Field(default=10_000, gt=0)
    # key that signs certificates and callbacks; None = signing is unavailable
    signing_key: SecretStr | None = None
    # allow callback URLs that resolve to private, loopback or link-local addresses (SSRF guard off)
    allow_private_callbacks: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # where the embedded default (a SQLite database_url) keeps the Ed25519 key it creates on first start
    # when signing_key is unset; other deployments must set signing_key (see service.audits.certificate)
    signing_key_file: Path = Path("./var/signing_key")
    # server-side secret from which each tenant's webhook secret is derived (HMAC(master, tenant id));
    # None = derived from the signing key instead (see service.callbacks.signing)
    webhook_master_secret: SecretStr | None = None
    # deliveries of one callback message before it is marked failed (the first try included)
    webhook_max_attempts: int = Field(default=6, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        # operators write "info" as often as "INFO"
        return value.upper() if isinstance(value, str) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
