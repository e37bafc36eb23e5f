"""The client is a package of its own that a data-governance system can install alone: it declares httpx and
pydantic only, and importing it loads nothing of the service, its engine or the packages the tests check it
against."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_the_client_declares_httpx_and_pydantic_only() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "unlearning-client"
    assert sorted(dep.split(">")[0] for dep in project["dependencies"]) == ["httpx", "pydantic"]


def test_importing_the_client_loads_none_of_the_service_the_engine_or_the_reference_packages() -> None:
    probe = "import sys, json, unlearning_client; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           check=True).stdout))  # fmt: skip
    assert {"unlearning_client", "httpx", "pydantic"} <= loaded
    assert not loaded & {"service", "worker", "unlearning", "tools", "torch", "numpy", "fastapi", "sqlalchemy",
                         "cryptography", "rfc8785"}  # fmt: skip
