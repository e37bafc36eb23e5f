"""The processes of docker-compose.yml as argv lists, so that tests start the very same commands outside
containers (no Docker engine runs on the test machines)."""

from __future__ import annotations

import shlex
import shutil
import sys
import sysconfig
from functools import cache
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@cache
def services() -> dict[str, dict[str, Any]]:
    """docker-compose.yml's services, anchors and merge keys resolved (the file as written, not interpolated)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document["services"]


def command_of(service: str) -> list[str]:
    """The service's command as an argv list; a string is split the way Compose splits it (shlex)."""
    try:
        command = services()[service]["command"]
    except KeyError:
        raise KeyError(f"docker-compose.yml has no command for service {service!r}") from None
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def local_argv(service: str) -> list[str]:
    """command_of(service) runnable on this machine: `python` is this interpreter, any other program (celery)
    is the one installed beside it, else the one on PATH. Raises FileNotFoundError when there is none."""
    program, *args = command_of(service)
    if program in ("python", "python3"):
        return [sys.executable, *args]
    # this interpreter's scripts folder first: a PATH shim (pyenv) may pick another environment
    found = shutil.which(program, path=sysconfig.get_path("scripts")) or shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"{program!r} (the {service} service's program) is not on PATH")
    return [found, *args]
