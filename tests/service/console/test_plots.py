"""The console's plots: valid, self-describing SVG for any ledger, from an empty one to 200 versions."""

import datetime as dt
import math
import threading
import xml.etree.ElementTree as ET

import matplotlib
import pytest

from service.console import plots
from service.console.plots import (
    ACCURACY_LABEL,
    AUC_LABEL,
    COUNT_LABEL,
    EVIDENCE_TITLE,
    NEVER_SEEN,
    NO_DATA,
    REQUESTS_PER_WEEK_TITLE,
    VERSION_LABEL,
    WEEK_LABEL,
    EvidencePoint,
    WeekCount,
    evidence_svg,
    requests_per_week_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _drawn_afresh() -> None:
    """Each test draws its plots rather than reading documents an earlier test left in the cache."""
    plots._evidence_svg.cache_clear()
    plots._requests_per_week_svg.cache_clear()


def _point(version: int, auc: float | None = 52.0, acc: float | None = 90.5) -> EvidencePoint:
    low, high = (None, None) if auc is None else (auc - 3.0, auc + 3.0)
    return EvidencePoint(version, auc, low, high, acc, 91.0)


def _weeks(count: int = 6) -> list[WeekCount]:
    monday = dt.date(2026, 9, 7)
    return [WeekCount(monday + dt.timedelta(weeks=i), on_time=10 + i, late=i % 3, open=2) for i in range(count)]


def _parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode())  # bytes: the document declares its encoding
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text") if t.text]


def test_the_evidence_plot_is_an_svg_with_its_title_axis_labels_and_legend():
    root = _parsed(evidence_svg([_point(v) for v in range(1, 6)]))
    texts = _texts(root)
    for label in (EVIDENCE_TITLE, AUC_LABEL, ACCURACY_LABEL, VERSION_LABEL, NEVER_SEEN):
        assert label in texts
    for legend in ("all forgotten samples", "AUC interval", "original model", "this version"):
        assert legend in texts


def test_the_evidence_plot_names_itself_and_tells_the_latest_numbers_to_screen_readers():
    root = _parsed(evidence_svg([_point(1, auc=58.0), _point(2, auc=50.4, acc=89.25)]))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == EVIDENCE_TITLE
    desc = root.find(f"{SVG}desc").text
    assert "Version 2" in desc and "50.4%" in desc and "47.4 to 53.4%" in desc
    assert "89.2%" in desc or "89.3%" in desc
    assert "91.0%" in desc


def test_versions_out_of_order_are_plotted_in_version_order():
    root = _parsed(evidence_svg([_point(3), _point(1), _point(2)]))
    assert "3 versions, 1 to 3." in root.find(f"{SVG}desc").text


def test_an_empty_evidence_list_gives_a_small_plot_saying_no_data_yet():
    svg = evidence_svg([])
    root = _parsed(svg)
    assert NO_DATA in _texts(root)
    assert root.find(f"{SVG}title").text == EVIDENCE_TITLE
    assert len(svg) < 10_000


def test_versions_without_measurements_are_gaps_not_errors():
    points = [
        _point(1, auc=None, acc=None),
        EvidencePoint(2, 53.0, None, None, 90.0, None),  # an AUC without its interval
        EvidencePoint(3, None, None, None, None, None),  # nothing measured at all
        _point(4),
    ]
    root = _parsed(evidence_svg(points))
    assert EVIDENCE_TITLE in _texts(root)


def test_a_ledger_with_nothing_measured_says_so_in_each_panel():
    texts = _texts(_parsed(evidence_svg([EvidencePoint(1, None, None, None, None, None)])))
    assert "no AUC measured yet" in texts
    assert "no accuracy measured yet" in texts


def test_two_hundred_versions_still_render():
    svg = evidence_svg([_point(v, auc=50.0 + (v % 7)) for v in range(1, 201)])
    root = _parsed(svg)
    assert "200 versions, 1 to 200." in root.find(f"{SVG}desc").text
    assert "200" in _texts(root)  # the last version on the axis
    assert len(svg) < 500_000


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (EvidencePoint(1, 152.0, None, None, None, None), "union_auc must be a percentage"),
        (EvidencePoint(1, None, None, None, float("nan"), None), "test_acc must be a percentage"),
        (EvidencePoint(1, 60.0, 40.0, 55.0, None, None), "does not hold union_auc"),
    ],
)
def test_values_that_are_not_percentages_are_a_clear_error(point, message):
    with pytest.raises(ValueError, match=message):
        evidence_svg([point])


def test_a_rounding_error_past_a_bound_is_drawn_at_the_bound_not_refused():
    # the original's accuracy is this version's plus the drop measured against it: a float sum can land a
    # hair past 100
    original = math.nextafter(100.0, 101.0)
    root = _parsed(evidence_svg([EvidencePoint(1, 50.0, 50.0 + 1e-9, 60.0, 99.9, original)]))
    assert "against the original's 100.0%" in root.find(f"{SVG}desc").text


def test_a_version_given_twice_is_a_clear_error():
    with pytest.raises(ValueError, match="version 2 is given twice"):
        evidence_svg([_point(2), _point(2)])


def test_the_weekly_plot_is_an_svg_with_its_title_axis_labels_and_legend():
    root = _parsed(requests_per_week_svg(_weeks()))
    texts = _texts(root)
    for label in (REQUESTS_PER_WEEK_TITLE, COUNT_LABEL, WEEK_LABEL, "on time", "late", "still open"):
        assert label in texts
    assert root.find(f"{SVG}title").text == REQUESTS_PER_WEEK_TITLE
    assert root.find(f"{SVG}desc").text == (
        "Over 6 weeks from 2026-09-07 to 2026-10-12: 75 on time, 6 late, 12 still open."
    )


def test_late_and_open_requests_are_hatched_so_they_differ_without_colour():
    root = _parsed(requests_per_week_svg(_weeks()))
    patterns = list(root.iter(f"{SVG}pattern"))  # matplotlib draws each hatch as an SVG pattern
    assert len(patterns) == 2


def test_an_empty_week_list_gives_a_small_plot_saying_no_data_yet():
    root = _parsed(requests_per_week_svg([]))
    assert NO_DATA in _texts(root)
    assert "No deletion request" in root.find(f"{SVG}desc").text


def test_a_single_week_with_no_requests_renders():
    root = _parsed(requests_per_week_svg([WeekCount(dt.date(2026, 1, 5), 0, 0, 0)]))
    assert "the week of 2026-01-05: 0 on time, 0 late, 0 still open" in root.find(f"{SVG}desc").text


def test_a_negative_count_or_a_repeated_week_is_a_clear_error():
    with pytest.raises(ValueError, match="late must not be negative"):
        requests_per_week_svg([WeekCount(dt.date(2026, 1, 5), 1, -1, 0)])
    with pytest.raises(ValueError, match="2026-01-05 is given twice"):
        requests_per_week_svg([WeekCount(dt.date(2026, 1, 5), 1, 0, 0)] * 2)


@pytest.mark.parametrize(
    "draw",
    [lambda: evidence_svg([_point(1), _point(2, auc=None)]), lambda: requests_per_week_svg(_weeks()),
     lambda: evidence_svg([])],
)  # fmt: skip
def test_a_plot_needs_no_inline_css_so_the_consoles_content_security_policy_lets_it_draw(draw):
    # style-src 'self' blocks style="..." and <style>: a plot opened on its own would be drawn all black
    root = _parsed(draw())
    assert not list(root.iter(f"{SVG}style"))
    assert not [element.tag for element in root.iter() if "style" in element.attrib]
    filled = [element.get("fill") for element in root.iter(f"{SVG}path") if element.get("fill")]
    assert "#ffffff" in filled  # the figure's background, once a style="fill: #ffffff"


def test_the_same_input_draws_the_same_document():
    # no timestamp, no random element ids: a document drawn again equals the one kept
    first = evidence_svg([_point(1), _point(2)]), requests_per_week_svg(_weeks())
    plots._evidence_svg.cache_clear()
    plots._requests_per_week_svg.cache_clear()
    assert (evidence_svg([_point(1), _point(2)]), requests_per_week_svg(_weeks())) == first


def test_a_changed_input_is_drawn_anew_not_served_from_the_kept_documents():
    before = requests_per_week_svg(_weeks())
    changed = _weeks()
    changed[-1] = WeekCount(changed[-1].week_start, on_time=99, late=0, open=0)
    after = requests_per_week_svg(changed)
    assert after != before
    assert "159 on time, 4 late, 10 still open" in _parsed(after).find(f"{SVG}desc").text


def test_bad_input_is_refused_every_time_it_comes():
    for _ in range(2):
        with pytest.raises(ValueError, match="must not be negative"):
            requests_per_week_svg([WeekCount(dt.date(2026, 1, 5), -1, 0, 0)])


def test_rendering_leaves_matplotlibs_settings_as_they_were():
    before = (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["svg.hashsalt"])
    evidence_svg([_point(1)])
    requests_per_week_svg(_weeks())
    assert (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["svg.hashsalt"]) == before


def test_concurrent_renders_each_give_text_as_text():
    # the console renders in a thread pool; one thread's settings must not leak into another's drawing
    results: list[str] = []

    def render(version: int) -> None:  # a version of its own per thread: each one draws, none is served kept
        results.append(evidence_svg([_point(1), _point(version)]))

    threads = [threading.Thread(target=render, args=(v,)) for v in range(2, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for svg in results:
        assert EVIDENCE_TITLE in _texts(_parsed(svg))  # a <text>, not glyph paths
