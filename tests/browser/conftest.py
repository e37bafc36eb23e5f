"""One real service for the console's browser tests: `python -m service run` on a loopback port in an empty
UNLEARN_HOME, which sets up the digits demo, with one completed deletion request and a second tenant; and a
headless Chromium (Debian's chromium and chromium-driver; Selenium Manager, which would download a driver, is
never consulted) for each test, so no test inherits another's session cookie.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from unlearning_client import Client, DeletionRequest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NO_BROWSER = "Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them)"

REPO = Path(__file__).resolve().parents[2]
# migrations, training the digits demo and its tuning job on two busy cores, then one unlearning job
START_TIMEOUT_S = 300.0
JOB_TIMEOUT_S = 300.0
CLI_TIMEOUT_S = 120.0
SUBJECT_REQUEST_ID = "dsar-2026-0042"  # the data subject's request as the controller numbers it
OTHER_SUBJECT_REQUEST_ID = "dsar-2026-0043"
REGULATION = "gdpr"


@dataclass(frozen=True)
class Console:
    url: str  # the service's base URL; the console lives under /console
    key: str  # the demo tenant's admin API key
    model_id: uuid.UUID  # the demo model
    request: DeletionRequest  # completed, with SUBJECT_REQUEST_ID
    forgotten: list[str]  # its sample IDs
    other_key: str  # the admin key of a second tenant, made with `python -m service create-tenant`


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from tests.worker.cluster import Proc, free_port, wait_for

    root = tmp_path_factory.mktemp("console-server")
    home = root / "var"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_HOME": str(home),
        # missing: the demo falls back to scikit-learn's digits, trained in seconds
        "UNLEARN_DEMO_FASHION_MNIST_DIR": str(root / "no-fashion-mnist"),
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc("api", [sys.executable, "-m", "service", "run", "--port", str(port)], env=env, log_dir=root)
    try:
        # demo.json is written last, once the ledger holds the whole demo
        wait_for(lambda: not server.alive() or (_healthy(url) and (home / "demo.json").exists()),
                 timeout=START_TIMEOUT_S, what="the API and its demo", logs=[server])  # fmt: skip
        assert server.alive(), server.tail()
        key = (home / "demo-api-key").read_text().strip()
        demo = json.loads((home / "demo.json").read_text())
        forgotten = demo["example_sample_ids"][:3]
        with Client(url, key) as api:
            accepted = api.submit_deletion_request(demo["model_id"], forgotten, subject_request_id=SUBJECT_REQUEST_ID,
                                                   regulation=REGULATION)  # fmt: skip
            # a second request, so that finding the first by its subject_request_id has something to leave out
            other = api.submit_deletion_request(demo["model_id"], demo["example_sample_ids"][3:],
                                                subject_request_id=OTHER_SUBJECT_REQUEST_ID)  # fmt: skip
            # the service's own executor runs the jobs (after the demo's tuning job)
            done = api.wait_for_deletion_request(accepted.id, timeout_s=JOB_TIMEOUT_S, poll_interval_s=0.5)
            later = api.wait_for_deletion_request(other.id, timeout_s=JOB_TIMEOUT_S, poll_interval_s=0.5)
        assert done.status == later.status == "completed", f"{done.error} {later.error}\n{server.tail()}"
        made = subprocess.run([sys.executable, "-m", "service", "create-tenant", "other-tenant"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        other_key = re.search(r"^admin_key: (\S+)$", made.stdout, re.MULTILINE)
        assert other_key is not None, made.stdout
        yield Console(url=url, key=key, model_id=uuid.UUID(demo["model_id"]), request=done, forgotten=forgotten,
                      other_key=other_key.group(1))  # fmt: skip
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(NO_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    # the performance log carries each response's status (the only way a WebDriver test sees a 404), the browser
    # log the page's script errors and what the Content-Security-Policy blocked
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # an explicit driver path: Selenium Manager (which would download a driver) is never consulted
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: UNLEARN_TEST_ARTIFACTS, or a temporary folder of the session."""
    given = os.environ.get("UNLEARN_TEST_ARTIFACTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
