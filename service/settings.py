"""The service's configuration: one pydantic-settings class read from UNLEARN_* environment variables.

The app, the CLI, Alembic and the tests share it; nothing else reads the environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default keeps its state in the checkout's var/ (the service always runs from a checkout, next
# to alembic.ini), wherever the command is started: a default relative to the working folder would give every
# folder a ledger of its own.
DEFAULT_HOME = Path(__file__).resolve().parent.parent / "var"
# the longest retention window of an artefact that holds forgotten samples (30 days), for every model
MAX_RETENTION_SECONDS = 30 * 86400


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNLEARN_", extra="ignore", frozen=True)

    # the embedded default's state folder; database_url, storage_url, data_root and signing_key_file default to
    # unlearning.db, checkpoints/, data/ and signing_key in it. A relative value is made absolute once, at start
    home: Path = DEFAULT_HOME
    # SQLAlchemy URL; default: the SQLite file <home>/unlearning.db (created by `run` or `migrate`)
    database_url: str = f"sqlite:///{DEFAULT_HOME}/unlearning.db"
    # fsspec URL or local folder where checkpoints are stored by content address; default <home>/checkpoints
    storage_url: str = str(DEFAULT_HOME / "checkpoints")
    # fsspec options for storage_url as JSON, e.g. {"endpoint_url": "http://minio:9000"} for S3-compatible
    # storage; credentials come from the usual AWS_* variables
    storage_options: dict[str, Any] = Field(default_factory=dict)
    # the only folder datasets may be registered from; paths in requests are relative to it; default <home>/data
    data_root: Path = DEFAULT_HOME / "data"
    # Celery broker (e.g. redis://host:6379/0); None = the embedded local executor
    broker_url: str | None = None
    # the state file of the local executor that `service run` supervises, which /healthz then checks; `run`
    # sets it for its API processes (default: <home>/executor.json); None = no check
    executor_state_file: Path | None = None
    # a worker renews its job's lease every third of this; a dead worker's job is requeued this long after
    lease_seconds: float = Field(default=60.0, gt=0)
    # claims of one job (the first included) before the sweeper fails it with the reason
    max_attempts: int = Field(default=3, ge=1)
    # seconds between sweeps: expired leases requeued, unclaimed queued jobs sent again
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # a queued job no worker has claimed this long after it was created or last sent is sent again
    resend_after_seconds: float = Field(default=30.0, gt=0)
    # Erasure (service.erasure): how long an artefact that holds forgotten samples (a superseded version's
    # checkpoint, the original included; reference models) is kept once a newer version forgot them, for
    # models whose manifest names no window of their own (model.retention_seconds; 0 = at once). At most
    # MAX_RETENTION_SECONDS: nothing holding forgotten samples is ever kept longer, and nothing can pin it
    retention_seconds: int = Field(default=7 * 86400, ge=0, le=MAX_RETENTION_SECONDS)
    # seconds between erasure sweeps: due artefacts destroyed, orphaned objects removed, receipts issued
    erasure_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # an object in storage that no ledger row names (a failed job's checkpoint, a half-written temporary
    # file) and no running job claims as its own is removed once it is this old: a younger one may be an
    # upload's or a job's, written moments before the row that names it. It also absorbs clock skew between
    # the storage's timestamps and this machine's
    orphan_grace_seconds: float = Field(default=3600.0, ge=60.0)
    # one job's compute time: past the soft limit the job fails with that reason; past the hard limit
    # Celery kills the task process (the sweeper then requeues or fails it)
    job_soft_time_limit_seconds: int = Field(default=6 * 3600, gt=0)
    job_time_limit_seconds: int = Field(default=6 * 3600 + 300, gt=0)
    # the utility guard of every unlearning job (UNLEARN_GUARD_MAX_ACC_DROP): held-out accuracy, in percent
    # points, a job may lose against its parent version; a check below it stops the job at its best passing
    # point. Tuning jobs hold their choice to the same margin
    guard_max_acc_drop: float = Field(default=1.0, ge=0.0, le=100.0)
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
    signing_key_file: Path = DEFAULT_HOME / "signing_key"
    # server-side secret from which each tenant's webhook secret is derived (HMAC(master, tenant id));
    # None = derived from the signing key instead (see service.callbacks.signing)
    webhook_master_secret: SecretStr | None = None
    # seconds to wait after each failed attempt of a callback before the next one (the first is sent at
    # once); a message fails after 1 + len(...) attempts. Default: Standard Webhooks' example schedule,
    # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, about 3 days and 10 attempts in all
    webhook_retry_delays_seconds: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    )
    # each delay is drawn uniformly within +/- this share of it, so that messages that failed together (a
    # receiver's outage) are not all retried in the same second
    webhook_retry_jitter: float = Field(default=0.2, ge=0.0, lt=1.0)
    # seconds one attempt waits to connect, to send, and for the answer's status line and headers (Standard
    # Webhooks recommends 15 to 30); at most 30, so an attempt ends well within the sender's 2-minute claim
    webhook_timeout_seconds: float = Field(default=15.0, gt=0.0, le=30.0)
    # the longest wait a 429 or 503 answer's Retry-After is granted; a longer one is cut to this
    webhook_retry_after_max_seconds: float = Field(default=86400.0, ge=0.0)
    # key that signs the governance console's session cookie (HMAC-SHA256); None = 32 random bytes kept in
    # <home>/console-secret, made on first use (see service.console.session)
    console_secret: SecretStr | None = None
    # where the demo set-up looks for Debian's dataset-fashion-mnist; without its files the demo uses digits
    demo_fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")

    @model_validator(mode="before")
    @classmethod
    def _paths_under_home(cls, data: Any) -> Any:
        # the four state paths follow a configured home unless they are set themselves
        if not isinstance(data, dict):
            return data
        home = Path(data.get("home") or DEFAULT_HOME).expanduser().resolve()
        derived = {
            "database_url": f"sqlite:///{home / 'unlearning.db'}",
            "storage_url": str(home / "checkpoints"),
            "data_root": home / "data",
            "signing_key_file": home / "signing_key",
        }
        return {**derived, **data, "home": home}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        # operators write "info" as often as "INFO"
        return value.upper() if isinstance(value, str) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def hand_to_child_processes(*, executor_state_file: Path | None) -> None:
    """Pass settings that only `run` knows to the API processes it starts: uvicorn's workers (and the app
    factory in this process) read their settings from the environment, so this module, the only one that
    touches it, writes them there; None removes the variable."""
    if executor_state_file is None:
        os.environ.pop("UNLEARN_EXECUTOR_STATE_FILE", None)
    else:
        os.environ["UNLEARN_EXECUTOR_STATE_FILE"] = str(executor_state_file)
    get_settings.cache_clear()
