"""The governance console in a real browser (issue 11): sign in with the demo's key, find a request by the subject's
request ID, read its verdict and evidence, download its certificate and the suppression list; another tenant gets a
404 page, a revoked key is signed out, the sign-in form works from the keyboard alone. Each page is photographed at
a laptop (1280 px) and a tablet (768 px) width as a test artefact; UNLEARN_WRITE_DOCS_SCREENSHOTS=1 also writes
the README's two (docs/console-overview.png, docs/console-request.png).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from service.console.service import PAGE_SIZE
from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, NO_BROWSER, REPO, SUBJECT_REQUEST_ID, Console
from unlearning_client import Client, verify_certificate

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=NO_BROWSER)]

WIDTHS = (1280, 768)  # a laptop and a tablet
MAX_SHOT_HEIGHT = 2400  # a long page is cut there: the screenshots are for people, not a pixel diff
PAGE_WAIT_S = 30.0  # a page load on two busy cores; a bound, never asserted as a timing
DOCS = REPO / "docs"


# ---- helpers ----


def _path(browser: Chrome) -> str:
    return urlsplit(browser.current_url).path


def _wait_for_path(browser: Chrome, path: str) -> None:
    WebDriverWait(browser, PAGE_WAIT_S).until(lambda b: _path(b) == path, f"never reached {path}")


def _field_by_label(browser: Chrome, label: str) -> WebElement:
    """The form control a <label> names: found the way a screen reader announces it, so an unlabelled field fails."""

    element = browser.find_element(By.XPATH, f"//label[contains(normalize-space(), '{label}')]")
    target = element.get_attribute("for")
    return browser.find_element(By.ID, target) if target else element.find_element(By.CSS_SELECTOR, "input")


def _sign_in(browser: Chrome, console: Console, key: str) -> None:
    browser.get(f"{console.url}/console/sign-in")
    field = _field_by_label(browser, "API key")
    assert field.get_attribute("name") == "api_key" and field.get_attribute("type") == "password"
    field.send_keys(key)
    field.find_element(By.XPATH, "./ancestor::form//*[@type='submit']").click()
    _wait_for_path(browser, "/console/")


def _document_status(browser: Chrome, url: str) -> int:
    """The HTTP status of the last page loaded from `url`, from Chrome's performance log (WebDriver has no
    other way to see it)."""
    statuses = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["type"] == "Document":
            response = message["params"]["response"]
            if response["url"] == url:
                statuses.append(response["status"])
    assert statuses, f"no page was loaded from {url}"
    return int(statuses[-1])


def _text(browser: Chrome) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def _screenshots(browser: Chrome, folder: Path, name: str, *, docs: str | None = None, fits: bool = True) -> None:
    """The page at each width, as tall as it is (up to MAX_SHOT_HEIGHT); every image loaded, no script error and
    nothing the CSP blocked, and, when `fits`, the page itself does not scroll sideways (a wide table scrolls
    inside its own box). With UNLEARN_WRITE_DOCS_SCREENSHOTS=1 the 1280 px one is also written to docs/<docs>."""
    for width in WIDTHS:
        metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        metrics["height"] = min(height, MAX_SHOT_HEIGHT)
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        broken = browser.execute_script(
            "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        assert broken == [], f"{name}: images that did not load (under the console's CSP): {broken}"
        blocked = [entry["message"] for entry in browser.get_log("browser")
                   if "Content Security Policy" in entry["message"] or "Uncaught" in entry["message"]]  # fmt: skip
        assert blocked == [], f"{name}: script errors or content the CSP blocked: {blocked}"
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0 or not fits, f"{name} scrolls sideways by {overflow} px at {width} px"
        shot = folder / f"console-{name}-{width}.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 5_000
        if docs is not None and width == 1280 and os.environ.get("UNLEARN_WRITE_DOCS_SCREENSHOTS") == "1":
            shutil.copyfile(shot, DOCS / docs)
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _download(browser: Chrome, link: WebElement, folder: Path) -> Path:
    """Click a download link and return the file Chrome saved, once whole (Chrome writes a .crdownload first)."""

    folder.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    link.click()
    saved = WebDriverWait(browser, PAGE_WAIT_S).until(
        lambda _: [f for f in folder.iterdir() if f.suffix != ".crdownload"], f"nothing was saved from {link.text}"
    )
    assert len(saved) == 1, saved
    return saved[0]


def _chain_checked(browser: Chrome) -> bool:
    """Whether the request page shows the event chain's verification result; reloads it when not yet."""
    if "being verified" not in _text(browser):
        return True
    browser.refresh()
    return False


def _unsigned(summary: dict[str, Any]) -> dict[str, Any]:
    """A certificate's summary less the instant it was signed."""
    return {name: value for name, value in summary.items() if name != "issued_at"}


# ---- scenarios ----


def test_the_demo_key_signs_in_to_the_overview_which_never_shows_the_key(
    browser: Chrome, console: Console, artifacts: Path
) -> None:
    browser.get(f"{console.url}/console/sign-in")
    _screenshots(browser, artifacts, "sign-in")
    _sign_in(browser, console, console.key)
    assert _document_status(browser, f"{console.url}/console/") == 200
    assert browser.find_element(By.TAG_NAME, "h1").is_displayed()
    assert "completed" in _text(browser).lower()  # the requests by state: the fixture's are completed
    assert console.key not in browser.page_source
    _screenshots(browser, artifacts, "overview", docs="console-overview.png")


def test_a_request_is_found_by_its_subject_request_id_through_the_lists_filter(
    browser: Chrome, console: Console, artifacts: Path
) -> None:
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/requests")
    # the fixture's other request is listed too, until the filter leaves only ours
    assert len(browser.find_elements(By.CSS_SELECTOR, "table a[href*='/console/requests/']")) >= 2
    _screenshots(browser, artifacts, "requests")
    field = browser.find_element(By.NAME, "subject_request_id")
    field.send_keys(SUBJECT_REQUEST_ID)
    field.find_element(By.XPATH, "./ancestor::form//*[@type='submit']").click()
    WebDriverWait(browser, PAGE_WAIT_S).until(lambda b: "subject_request_id=" in b.current_url)
    assert parse_qs(urlsplit(browser.current_url).query)["subject_request_id"] == [SUBJECT_REQUEST_ID]
    links = browser.find_elements(By.CSS_SELECTOR, "table a[href*='/console/requests/']")
    assert [urlsplit(link.get_attribute("href")).path for link in links] == [f"/console/requests/{console.request.id}"]
    links[0].click()
    _wait_for_path(browser, f"/console/requests/{console.request.id}")
    assert SUBJECT_REQUEST_ID in _text(browser)


def test_the_request_page_shows_the_verdict_and_each_samples_evidence(
    browser: Chrome, console: Console, artifacts: Path
) -> None:
    with Client(console.url, console.key) as api:
        verdict = api.get_audit(console.model_id, console.request.version).verdict
    _sign_in(browser, console, console.key)
    page = f"{console.url}/console/requests/{console.request.id}"
    browser.get(page)
    assert _document_status(browser, page) == 200
    text = _text(browser)
    assert f"verdict: {verdict.lower()}" in text.lower() and f"version {console.request.version}" in text.lower()
    cells = {cell.text.strip() for cell in browser.find_elements(By.CSS_SELECTOR, "table td, table th")}
    assert set(console.forgotten) <= cells, f"the per-sample evidence lacks {set(console.forgotten) - cells}"
    assert console.key not in browser.page_source
    # the timeline's chain check: the first request page of a process starts the walk, a reload shows its result
    WebDriverWait(browser, PAGE_WAIT_S, poll_frequency=1).until(_chain_checked, "the event chain was never checked")
    assert "event chain verifies" in _text(browser)
    _screenshots(browser, artifacts, "request", docs="console-request.png")


def test_the_certificate_link_downloads_the_apis_signed_certificate(
    browser: Chrome, console: Console, tmp_path: Path
) -> None:
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/requests/{console.request.id}")
    link = browser.find_element(By.XPATH, "//a[contains(translate(normalize-space(), 'C', 'c'), 'certificate')]")
    href = link.get_attribute("href")
    assert urlsplit(href).path == f"/console/requests/{console.request.id}/certificate.json"
    # a real download: Chrome saves the file where it is told, under the name the server gives it
    saved = _download(browser, link, tmp_path / "downloads")
    assert saved.name == f"certificate-{console.request.id}.json"
    headers = {"Authorization": f"Bearer {console.key}"}
    from_api = httpx.get(f"{console.url}/v1/models/{console.model_id}/versions/{console.request.version}/certificate",
                         headers=headers, timeout=30)  # fmt: skip
    assert from_api.status_code == 200, from_api.text
    with Client(console.url, console.key) as api:
        key = api.get_signing_key()
    summary = verify_certificate(json.loads(saved.read_bytes()), key)
    assert summary["version"] == console.request.version and str(console.request.id) in summary["request_ids"]
    # certificates are signed on demand: the two differ only in when they were signed
    assert _unsigned(summary) == _unsigned(verify_certificate(from_api.json(), key))
    # without the session the link gives nothing away
    assert httpx.get(href, timeout=30).status_code != 200


def test_another_tenants_key_gets_the_not_found_page_for_the_request(
    browser: Chrome, console: Console, artifacts: Path
) -> None:
    _sign_in(browser, console, console.other_key)
    page = f"{console.url}/console/requests/{console.request.id}"
    browser.get(page)
    assert _document_status(browser, page) == 404
    text = _text(browser)
    assert "not found" in text.lower() and SUBJECT_REQUEST_ID not in browser.page_source
    _screenshots(browser, artifacts, "not-found")
    model_page = f"{console.url}/console/models/{console.model_id}"
    browser.get(model_page)
    assert _document_status(browser, model_page) == 404
    # nor does its certificate download, with the other tenant's session
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    certificate = httpx.get(f"{page}/certificate.json", cookies=cookies, timeout=30)
    assert certificate.status_code == 404 and "summary" not in certificate.text


def test_a_revoked_key_is_signed_out_on_its_next_page_load(browser: Chrome, console: Console) -> None:
    with Client(console.url, console.key) as api:
        reader = api.create_api_key("console reader", ["read"])
        _sign_in(browser, console, reader.key)  # read scope is enough
        api.revoke_api_key(reader.id)
    browser.get(f"{console.url}/console/requests")
    _wait_for_path(browser, "/console/sign-in")
    assert "revoked" in _text(browser) and _field_by_label(browser, "API key").is_displayed()
    assert browser.get_cookies() == []  # the session cookie went with it


def test_an_overview_left_open_goes_to_sign_in_once_its_key_is_revoked(browser: Chrome, console: Console) -> None:
    with Client(console.url, console.key) as api:
        reader = api.create_api_key("console reader, left open", ["read"])
        _sign_in(browser, console, reader.key)
        api.revoke_api_key(reader.id)
    # nobody clicks: the running jobs' refresh finds the session ended and the page reloads to the sign-in form
    _wait_for_path(browser, "/console/sign-in")
    assert "revoked" in _text(browser)


def test_the_overviews_running_jobs_refresh_in_place_without_a_reload(browser: Chrome, console: Console) -> None:
    _sign_in(browser, console, console.key)
    jobs = browser.find_element(By.ID, "running-jobs")
    shown = jobs.find_element(By.XPATH, "./*")
    browser.execute_script("window.loadedOnce = true")  # a reload would forget it
    WebDriverWait(browser, PAGE_WAIT_S).until(expected_conditions.staleness_of(shown), "the jobs never refreshed")
    assert browser.execute_script("return window.loadedOnce === true")
    assert jobs.find_element(By.XPATH, "./*").is_displayed()


def test_a_wrong_key_stays_on_the_sign_in_page_with_an_error_and_no_session(browser: Chrome, console: Console) -> None:
    browser.get(f"{console.url}/console/sign-in")
    field = _field_by_label(browser, "API key")
    field.send_keys("ulk_not-a-key")
    field.find_element(By.XPATH, "./ancestor::form//*[@type='submit']").click()
    WebDriverWait(browser, PAGE_WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, "[role='alert']"))
    assert _path(browser) == "/console/sign-in" and _document_status(browser, browser.current_url) == 401
    assert "unknown" in browser.find_element(By.CSS_SELECTOR, "[role='alert']").text
    assert browser.get_cookies() == []


def test_the_sign_in_form_works_with_tab_and_enter_alone(browser: Chrome, console: Console) -> None:
    browser.get(f"{console.url}/console/sign-in")
    for _ in range(10):  # the field may have the focus at once; otherwise past a skip link and the header's links
        if browser.switch_to.active_element.get_attribute("name") == "api_key":
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    else:
        pytest.fail("ten presses of Tab never reached the API key field")
    ActionChains(browser).send_keys(console.key).send_keys(Keys.ENTER).perform()
    _wait_for_path(browser, "/console/")


def test_the_first_tab_offers_a_skip_link_that_moves_the_focus_past_the_header(
    browser: Chrome, console: Console
) -> None:
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/requests")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    skip = browser.switch_to.active_element
    assert skip.tag_name == "a" and "skip" in skip.text.lower() and skip.is_displayed()
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert browser.switch_to.active_element.tag_name == "main"


def test_the_headers_sign_out_button_ends_the_session(browser: Chrome, console: Console) -> None:
    _sign_in(browser, console, console.key)
    browser.find_element(By.XPATH, "//header//button[contains(normalize-space(), 'Sign out')]").click()
    _wait_for_path(browser, "/console/sign-in")
    assert "signed out" in _text(browser)
    browser.get(f"{console.url}/console/")
    _wait_for_path(browser, "/console/sign-in")


def test_the_model_pages_show_its_versions_and_suppression_list(
    browser: Chrome, console: Console, artifacts: Path
) -> None:
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/models")
    assert f"/console/models/{console.model_id}" in browser.page_source
    _screenshots(browser, artifacts, "models")
    page = f"{console.url}/console/models/{console.model_id}"
    browser.get(page)
    assert _document_status(browser, page) == 200
    # a link to each version's audit page
    assert f"/models/{console.model_id}/versions/{console.request.version}/audit" in browser.page_source
    _screenshots(browser, artifacts, "model")
    audit = browser.find_element(By.CSS_SELECTOR, f"a[href$='/versions/{console.request.version}/audit']")
    href = audit.get_attribute("href")
    audit.click()
    _wait_for_path(browser, f"/console/models/{console.model_id}/versions/{console.request.version}/audit")
    assert _document_status(browser, href) == 200
    # the engine's stored audit page (unlearning/audit/page.py), not the console's layout: its tables keep their
    # natural width and can overflow a tablet by a few pixels
    _screenshots(browser, artifacts, "audit", fits=False)
    page = f"{console.url}/console/models/{console.model_id}/forgotten-samples"
    browser.get(page)
    assert _document_status(browser, page) == 200
    text = _text(browser)
    assert all(sample in text for sample in console.forgotten)
    _screenshots(browser, artifacts, "forgotten-samples")


def test_the_suppression_list_is_searched_by_sample_id_and_downloads_as_the_apis_csv(
    browser: Chrome, console: Console, tmp_path: Path
) -> None:
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/models/{console.model_id}/forgotten-samples")
    field = _field_by_label(browser, "Sample ID")
    field.send_keys(console.forgotten[1])
    field.find_element(By.XPATH, "./ancestor::form//*[@type='submit']").click()
    WebDriverWait(browser, PAGE_WAIT_S).until(lambda b: "sample_id=" in b.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert [row.find_element(By.TAG_NAME, "th").text for row in rows] == [console.forgotten[1]]
    link = browser.find_element(By.XPATH, "//a[contains(@href, '/forgotten-samples.csv')]")
    saved = _download(browser, link, tmp_path / "downloads")
    with Client(console.url, console.key) as api:
        from_api = api.download_forgotten_samples(console.model_id, tmp_path / "from-api.csv")
    assert saved.suffix == ".csv" and saved.read_bytes() == from_api.read_bytes()
    assert set(console.forgotten) <= {row["sample_id"] for row in csv.DictReader(io.StringIO(saved.read_text()))}


def test_the_request_list_pages_through_every_request_by_its_next_page_link(browser: Chrome, console: Console) -> None:
    with Client(console.url, console.key) as api:
        # more than a page: requests for a sample forgotten already are recorded and completed at once, no job
        for n in range(PAGE_SIZE):
            api.submit_deletion_request(console.model_id, console.forgotten[:1], subject_request_id=f"repeat-{n}")
        every = {f"/console/requests/{request.id}" for request in api.iter_deletion_requests()}
    _sign_in(browser, console, console.key)
    browser.get(f"{console.url}/console/requests")
    listed, pages = [], 0
    while True:
        pages += 1
        links = browser.find_elements(By.CSS_SELECTOR, "table a[href*='/console/requests/']")
        assert 0 < len(links) <= PAGE_SIZE
        listed += [urlsplit(link.get_attribute("href")).path for link in links]
        following = browser.find_elements(By.LINK_TEXT, "Next page")
        if not following:
            break
        following[0].click()
        WebDriverWait(browser, PAGE_WAIT_S).until(expected_conditions.staleness_of(following[0]))
    assert pages >= 2 and len(listed) == len(set(listed)) and set(listed) == every
