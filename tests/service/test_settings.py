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


STATE_VARIABLES = ("HOME", "DATABASE_URL", "STORAGE_URL", "DATA_ROOT", "SIGNING_KEY_FILE")
CHECKOUT = Path(service.__file__).resolve().parent.parent


def test_defaults_describe_the_embedded_single_machine_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*STATE_VARIABLES, "BROKER_URL", "ALLOW_PRIVATE_CALLBACKS"):
        monkeypatch.delenv(f"UNLEARN_{name}", raising=False)
    settings = Settings()
    assert settings.home == CHECKOUT / "var"
    assert settings.database_url == f"sqlite:///{CHECKOUT}/var/unlearning.db"
    assert settings.storage_url == f"{CHECKOUT}/var/checkpoints"
    assert settings.data_root == CHECKOUT / "var" / "data"
    assert settings.signing_key_file == CHECKOUT / "var" / "signing_key"
    assert settings.broker_url is None
    assert settings.allow_private_callbacks is False


def test_state_paths_do_not_depend_on_the_working_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in STATE_VARIABLES:
        monkeypatch.delenv(f"UNLEARN_{name}", raising=False)
    in_checkout = Settings()
    monkeypatch.chdir(tmp_path)
    assert Settings() == in_checkout


def test_a_home_moves_every_state_path_not_set_on_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in STATE_VARIABLES:
        monkeypatch.delenv(f"UNLEARN_{name}", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARN_HOME", "state")  # relative: made absolute against the folder it starts in
    monkeypatch.setenv("UNLEARN_DATA_ROOT", "/srv/data")
    settings = Settings()
    assert settings.home == tmp_path.resolve() / "state"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/state/unlearning.db"
    assert settings.storage_url == f"{tmp_path.resolve()}/state/checkpoints"
    assert settings.signing_key_file == tmp_path.resolve() / "state" / "signing_key"
    assert settings.data_root == Path("/srv/data")


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
