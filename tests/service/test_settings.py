"""Settings come from UNLEARN_* variables, and only service/settings.py reads the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import service
from service.settings import Settings, get_settings


def test_values_come_from_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEARN_DATABASE_URL", "postgresql+psycopg://db/ledger")
    monkeypatch.setenv("UNLEARN_MAX_IDS_PER_REQUEST", "5")
    monkeypatch.setenv("UNLEARN_LOG_LEVEL", "debug")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///ignored.db")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://db/ledger"
    assert settings.max_ids_per_request == 5
    assert settings.log_level == "DEBUG"


def test_defaults_describe_the_embedded_single_machine_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "BROKER_URL", "DATA_ROOT", "ALLOW_PRIVATE_CALLBACKS"):
        monkeypatch.delenv(f"UNLEARN_{name}", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///./var/unlearning.db"
    assert settings.broker_url is None
    assert settings.data_root == Path("var/data")
    assert settings.allow_private_callbacks is False


def test_the_getter_returns_one_cached_instance() -> None:
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_no_other_module_reads_the_environment() -> None:
    package = Path(service.__file__).parent
    # the load test is a client: it copies the environment (minus UNLEARN_*) for the servers it starts
    exempt = {"settings.py", "loadtest.py"}
    readers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name not in exempt and re.search(r"os\.environ|getenv\(", path.read_text())
    ]
    assert readers == []
