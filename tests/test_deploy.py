"""The deployment files: docker-compose.yml validated by Compose itself and checked for the topology the
service needs, the Dockerfile's two targets, and the services' commands runnable on this machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compose import COMPOSE_FILE, command_of, local_argv, services

ROOT = COMPOSE_FILE.parent
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ("api", "worker", "sweeper")
A_SIGNING_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # 32 zero bytes, base64: only for interpolation


def compose_cli() -> list[str]:
    """Debian's docker-compose (1.29) or the docker CLI's compose plugin; neither needs an engine for `config`."""
    if (found := shutil.which("docker-compose")) is not None:
        return [found]
    docker = shutil.which("docker")
    if docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    message = "docker-compose is not installed (apt-get install -y docker-compose): the compose file is unchecked"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_config(*, signing_key: str | None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "UNLEARN_SIGNING_KEY"}
    if signing_key is not None:
        env["UNLEARN_SIGNING_KEY"] = signing_key
    return subprocess.run(
        [*compose_cli(), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_compose_validates_the_file() -> None:
    result = run_config(signing_key=A_SIGNING_KEY)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_signing_key() -> None:
    result = run_config(signing_key=None)
    assert result.returncode != 0
    assert "UNLEARN_SIGNING_KEY" in result.stderr


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_backing_services_are_pinned_and_health_checked(service: str) -> None:
    spec = services()[service]
    assert spec["image"] in ("postgres:16", "redis:7")
    assert spec["healthcheck"]["test"]


def test_backing_services_are_checked_by_their_own_clients() -> None:
    assert "pg_isready" in " ".join(services()["postgres"]["healthcheck"]["test"])
    assert services()["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_migrations_run_once_after_postgres_is_healthy() -> None:
    spec = services()["migrations"]
    assert command_of("migrations") == ["python", "-m", "service", "migrate"]
    assert spec["restart"] == "no"
    assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_wait_for_healthy_backends_and_finished_migrations(service: str) -> None:
    depends_on = services()[service]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert depends_on["migrations"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", ["migrations", *APP_SERVICES])
def test_app_services_share_the_database_broker_storage_and_signing_key(service: str) -> None:
    env = services()[service]["environment"]
    assert env["UNLEARN_DATABASE_URL"] == "postgresql+psycopg://unlearning:unlearning@postgres:5432/unlearning"
    assert env["UNLEARN_BROKER_URL"] == "redis://redis:6379/0"
    assert env["UNLEARN_STORAGE_URL"] == "/srv/checkpoints"
    assert env["UNLEARN_DATA_ROOT"] == "/srv/data"
    assert env["UNLEARN_SIGNING_KEY"].startswith("${UNLEARN_SIGNING_KEY")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_api_and_workers_share_the_checkpoints_volume(service: str) -> None:
    assert "checkpoints:/srv/checkpoints" in services()[service]["volumes"]


def test_api_serves_without_a_local_executor_and_is_health_checked() -> None:
    assert command_of("api") == ["python", "-m", "service", "run", "--host", "0.0.0.0", "--port", "8000", "--no-demo"]
    assert "/healthz" in " ".join(services()["api"]["healthcheck"]["test"])


def test_worker_reserves_one_nvidia_gpu_and_runs_one_gpu_task_at_a_time() -> None:
    spec = services()["worker"]
    (device,) = spec["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert "gpu" in device["capabilities"]
    assert spec["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    argv = command_of("worker")
    assert argv[:4] == ["celery", "--app", "worker.celery_app", "worker"]
    assert option(argv, "--queues") == "gpu"
    assert option(argv, "--concurrency") == "1"


def test_sweeper_is_the_one_beat_and_runs_the_cpu_queue() -> None:
    argv = command_of("sweeper")
    assert argv[:4] == ["celery", "--app", "worker.celery_app", "worker"]
    assert option(argv, "--queues") == "cpu"
    assert "--beat" in argv
    assert services()["sweeper"]["deploy"]["replicas"] == 1
    assert "--beat" not in command_of("worker")


def test_dockerfile_has_an_api_target_with_cpu_only_torch_and_a_cuda_worker_target() -> None:
    stages = dockerfile_stages()
    assert {"builder", "api", "worker"} <= stages.keys()
    assert "download.pytorch.org/whl/cpu" in stages["api"]
    assert "cu1" not in stages["api"]
    assert "download.pytorch.org/whl/cu" in stages["worker"]
    for target in ("api", "worker"):
        assert re.search(r"^USER (?!root)\S+", stages[target], re.MULTILINE), f"{target} runs as root"
    assert "EXPOSE 8000" in stages["api"]


def test_compose_builds_the_dockerfile_targets() -> None:
    stages = dockerfile_stages()
    for name, spec in services().items():
        if "build" in spec:
            assert spec["build"]["target"] in stages, name
    assert services()["worker"]["build"]["target"] == "worker"
    assert services()["api"]["build"]["target"] == "api"


@pytest.mark.parametrize("service", ["migrations", *APP_SERVICES])
def test_each_command_runs_on_this_machine(service: str) -> None:
    argv = local_argv(service)
    assert Path(argv[0]).is_file(), argv[0]
    if command_of(service)[0] == "python":
        assert argv[0] == sys.executable


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def dockerfile_stages() -> dict[str, str]:
    """Each named stage's text, from its FROM line to the next."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE | re.IGNORECASE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))
