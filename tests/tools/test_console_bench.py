"""The console's page-time benchmark (`python -m tools.console_bench`): its rows and verdict, and one small real
run against `python -m service run` with the digits demo (the full measurement is not part of CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import console_bench
from tools.console_bench import Ledger, Page, page_row

ROW_KEYS = {"page", "path", "note", "status", "missing", "requests", "errors", "first_ms", "p50_ms", "p95_ms",
            "max_ms", "mean_ms", "bytes", "within_target"}  # fmt: skip
# every page of the target; the audit page of a version joins them when the demo has one
TARGET_PAGES = {
    "/console/", "/console/requests", "/console/requests?overdue=true", "/console/requests/{id}", "/console/models",
    "/console/models/{id}", "/console/models/{id}/forgotten-samples", "/console/models/{id}/evidence.svg",
    "/console/requests-per-week.svg",
}  # fmt: skip
# beyond the target's list: finding a request by its ID, the overview's refreshing part, the sign-in form
EXTRA_PAGES = {"/console/requests?subject_request_id=…", "/console/fragments/jobs", "/console/sign-in"}
PAGE = Page("/console/models", "/console/models")


def _ledger(completed: str | None = None, audited: int | None = None) -> Ledger:
    return Ledger(demo_model_id="d", ledger_model_id="m", completed_request_id=completed, seeded_request_id="r",
                  audited_version=audited, seeded=300, requests=300, seed_seconds=1.0)  # fmt: skip


def test_a_row_gives_numpy_percentiles_and_judges_the_target_on_p95() -> None:
    row = page_row(PAGE, status=200, first_ms=400.0, latencies_ms=[float(i) for i in range(1, 101)], errors=0,
                   size=10)  # fmt: skip
    assert (row["p50_ms"], row["p95_ms"], row["max_ms"], row["mean_ms"]) == (50.5, 95.0, 100.0, 50.5)
    assert row["within_target"] is True and row["missing"] is False
    slow = page_row(PAGE, status=200, first_ms=None, latencies_ms=[150.0] * 90 + [250.0] * 10, errors=0, size=10)
    assert slow["within_target"] is False and slow["max_ms"] == 250.0


def test_a_page_answering_404_is_missing_and_not_timed() -> None:
    row = page_row(PAGE, status=404, first_ms=None, latencies_ms=[], errors=0, size=None)
    assert row["missing"] is True
    assert row["p50_ms"] is row["p95_ms"] is row["within_target"] is None


def test_the_pages_are_every_page_of_the_target_and_the_richer_objects_where_there_is_a_choice() -> None:
    plain = console_bench.pages(_ledger())
    assert {p.label for p in plain} == TARGET_PAGES | EXTRA_PAGES
    assert len({p.path for p in plain}) == len(plain)
    richer = console_bench.pages(_ledger(completed="c", audited=3))
    paths = {p.path for p in richer}
    assert "/console/requests/c" in paths and "/console/requests/r" in paths
    assert "/console/models/d/versions/3/audit" in paths


def test_the_verdict_names_each_page_that_misses_the_target_or_is_missing() -> None:
    rows = [
        page_row(Page("/console/", "/console/"), status=200, first_ms=1.0, latencies_ms=[10.0], errors=0, size=1),
        page_row(Page("/console/models", "/console/models"), status=200, first_ms=1.0, latencies_ms=[300.0],
                 errors=0, size=1),  # fmt: skip
        page_row(Page("/console/requests", "/console/requests"), status=404, first_ms=None, latencies_ms=[],
                 errors=0, size=None),  # fmt: skip
    ]
    lines = console_bench.verdict({"pages": rows, "ledger": {"requests": 300}})
    assert lines[0] == (
        "every page under 200 ms at p95 on 300 requests: not met (slowest p95: /console/models, 300.0 ms)"
    )
    assert any(line.startswith("/console/models (") and "p95 300.0 ms" in line for line in lines)
    assert any(line.startswith("/console/requests (") and "missing" in line for line in lines)
    assert not any(line.startswith("/console/ (") for line in lines)


def test_the_markdown_shows_each_page_its_verdict_and_the_machines_load() -> None:
    plan = console_bench.Plan(requests=300, ids_per_request=5, repetitions=2, completed=0, database="sqlite",
                              postgres_url="", seed=0)  # fmt: skip
    ledger = _ledger()
    ledger.load_average = (1.5, 2.25)
    rows = [
        page_row(Page("/console/", "/console/"), status=200, first_ms=1.0, latencies_ms=[10.0, 12.0], errors=0,
                 size=100),  # fmt: skip
        page_row(Page("/console/models", "/console/models"), status=404, first_ms=None, latencies_ms=[], errors=0,
                 size=None),  # fmt: skip
    ]
    report = console_bench.build_report(plan, ledger, rows, ["a note"], command="python -m tools.console_bench")
    assert report["missing"] == ["/console/models"]
    text = console_bench.markdown(report)
    assert "| /console/ | - | 200 | 2 | 0 | 1.0 | 11.0 | 11.9 | 12.0 | 100 | yes |" in text
    assert "| /console/models | - | 404 |" in text and "| missing |" in text
    assert "load average was 1.5 before the pages were timed and 2.25 after" in text
    assert "- a note" in text


@pytest.mark.slow
def test_a_small_real_run_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "console"
    code = console_bench.main(["--requests", "300", "--repetitions", "2", "--completed", "0", "--out", str(out)])
    assert code == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert {"machine", "command", "revision", "target_ms", "database", "seeded_requests", "completed_requests", "repetitions",
            "ledger", "pages", "missing", "notes", "verdict"} <= set(report)  # fmt: skip
    assert report["command"].startswith("python -m tools.console_bench --requests 300 --repetitions 2 --completed 0")
    assert {"cpu", "cores", "python", "os", "date", "note"} <= set(report["machine"])
    assert report["ledger"]["requests"] == 300
    assert {row["page"] for row in report["pages"]} == TARGET_PAGES | EXTRA_PAGES
    for row in report["pages"]:
        assert set(row) == ROW_KEYS
        assert row["missing"] or (row["status"], row["requests"], row["errors"]) == (200, 2, 0), row
    md = out.with_suffix(".md").read_text()
    assert "| page | note | status |" in md and "## Target" in md
