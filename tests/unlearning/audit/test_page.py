"""The audit page as a reviewer sees it: rendered by headless Chromium (Debian's chromium and chromium-driver, no
browser download), with the headline, the verdict and the per-sample table visible, and a screenshot kept as a
test artefact (UNLEARN_TEST_ARTIFACTS, default the test's temporary folder)."""

import os
import shutil
from pathlib import Path

import pytest

from tests.unlearning.audit.test_report import CURRENT, EARLIER, FORGOT, ORIGINAL, PARENT, REMAINING, TEST, _report, _set
from unlearning.audit.page import render_html
from unlearning.audit.plots import history_figure, to_png_bytes
from unlearning.audit.report import evidence_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them)",
)


@pytest.fixture
def page_file(tmp_path: Path) -> Path:
    report = _report(FORGOT, parent=PARENT, current=_set(CURRENT[:4]), earlier=[("v2", _set(EARLIER))])
    png = evidence_png(model=FORGOT, parent=PARENT, original=ORIGINAL, current=_set(CURRENT[:4]),
                       retain_sample=_set(REMAINING), test=_set(TEST), earlier=[("v2", _set(EARLIER))],
                       versions={"version": 3, "parent": 2})  # fmt: skip
    history = to_png_bytes(history_figure(report["history"], min_pct=90.0, expected_pct=95.0))
    path = tmp_path / "audit.html"
    path.write_text(render_html(report, png, history), encoding="utf-8")
    return path


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(arg)
    # an explicit driver path: Selenium Manager (which would download a driver) is never consulted
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_shows_the_headline_verdict_and_per_sample_table(browser, page_file: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page_file.as_uri())
    headline = browser.find_element(By.ID, "headline")
    verdict = browser.find_element(By.ID, "verdict")
    table = browser.find_element(By.ID, "per-sample-table")
    for element in (headline, verdict, table):
        assert element.is_displayed() and element.size["height"] > 0
    assert "of 4 (" in headline.text and "look like data the model never saw" in headline.text
    assert verdict.text == "Verdict: INCONCLUSIVE"
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert sorted(row.find_element(By.TAG_NAME, "td").text for row in rows) == sorted(f"s{i}" for i in CURRENT[:4])
    # the verdict is above the fold: a reviewer sees it without scrolling
    assert verdict.location["y"] < 600
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 2 and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    shots = Path(os.environ.get("UNLEARN_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "audit-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
