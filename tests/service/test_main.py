"""The operator CLI (`python -m service`): migrate, create-tenant, verify-events, run, and one-line errors."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.__main__ import build_parser, main
from service.settings import get_settings
from tests.service.factories import TenantKey, count_rows, tamper_with_event


@pytest.fixture
def use_database(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Point the CLI's settings (read from the environment) at a database URL."""

    def use(url: str) -> None:
        monkeypatch.setenv("UNLEARN_DATABASE_URL", url)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def test_migrate_creates_the_schema_of_an_empty_database(
    use_database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'new.db'}"
    use_database(url)
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.startswith("ok: database at revision head")
    assert count_rows(url, "event_chain_head") == 1


def test_create_tenant_prints_its_id_and_a_working_admin_key(
    use_database, database_url: str, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(database_url)
    assert main(["create-tenant", "initech"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"tenant_id", "admin_key"}
    response = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {lines['admin_key']}"})
    assert response.status_code == 200


def test_duplicate_tenant_is_a_one_line_error(
    use_database, tenant: TenantKey, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(database_url)
    assert main(["create-tenant", "acme"]) == 1
    err = capsys.readouterr().err
    assert err == "error: a tenant named 'acme' already exists\n"


def test_unmigrated_database_is_a_one_line_error(
    use_database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.db").touch()
    use_database(f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["create-tenant", "acme"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: database error:") and "migrate" in err
    assert err.count("\n") == 1


def test_verify_events_reports_ok_and_the_count(
    use_database, tenant: TenantKey, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(database_url)
    assert main(["verify-events"]) == 0
    assert capsys.readouterr().out == "ok: 2 events\n"


def test_verify_events_names_the_first_broken_row_after_tampering(
    use_database, tenant: TenantKey, other_tenant: TenantKey, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper_with_event(database_url, seq=3)
    use_database(database_url)
    assert main(["verify-events"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("broken at event seq 3 (id ")
    assert "altered" in out


def test_every_command_and_argument_has_help() -> None:
    def actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
        for action in parser._actions:
            yield action
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"command {choice.dest} has no help"
                for sub in action.choices.values():
                    yield from actions(sub)

    missing = [a.dest for a in actions(build_parser()) if not a.help]
    assert missing == []


@pytest.mark.parametrize("command", [["verify-events"], ["create-tenant", "acme"]])
def test_a_command_run_in_another_folder_refuses_a_missing_ledger_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    # the settings place the ledger, never the working folder: no stray var/unlearning.db appears here
    env = {"UNLEARN_HOME": str(tmp_path / "home"), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "service", *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: no ledger at {tmp_path.resolve() / 'home' / 'unlearning.db'}: ")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_verify_events_reads_the_ledger_of_the_settings_from_any_folder(
    use_database, tenant: TenantKey, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_database(database_url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["verify-events"]) == 0
    assert capsys.readouterr().out == "ok: 2 events\n"
    assert list(elsewhere.iterdir()) == []


def test_run_serves_with_the_number_of_workers_asked_for(
    use_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.update(kwargs))
    use_database(f"sqlite:///{tmp_path / 'run.db'}")
    sigterm = signal.getsignal(signal.SIGTERM)  # `run` installs its own handler
    try:
        assert main(["run", "--no-demo", "--no-executor"]) == 0
        assert served["workers"] == 1  # the default: the embedded SQLite ledger wants one process
        assert main(["run", "--no-demo", "--no-executor", "--workers", "2"]) == 0
        assert served["workers"] == 2 and served["factory"] is True
    finally:
        signal.signal(signal.SIGTERM, sigterm)


def test_workers_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "0"])
    assert "expected at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_run_with_two_workers_serves_and_stops_on_sigterm(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several API processes are for PostgreSQL")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_DATABASE_URL": database_url,
        "UNLEARN_SIGNING_KEY": base64.b64encode(b"k" * 32).decode(),
        "UNLEARN_STORAGE_URL": str(tmp_path / "checkpoints"),
    }
    argv = [sys.executable, "-m", "service", "run", "--port", str(port), "--workers", "2", "--no-demo", "--no-executor"]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[0][-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz"
            time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, output[-2000:]
    assert output.count("Started server process") == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
