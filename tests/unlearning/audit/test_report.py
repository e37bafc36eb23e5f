"""The audit report: its sections, per-sample evidence, three-way checks with intervals, the evidence PNG and the page.

Most tests use lookup models whose logits per sample are set by hand, so that "remembers the forgotten
samples" and "forgot them" are exact situations rather than the outcome of training.
"""

import base64
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn as nn

from unlearning.audit.evaluate import RmiaAudit
from unlearning.audit.page import render_html
from unlearning.audit.report import REPORT_SCHEMA, Thresholds, build_report, evidence_png
from unlearning.imageset import ImageSet
from unlearning.models import build_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script>&'

# one universe of samples; x holds the sample's index, which the lookup model reads
CURRENT = np.arange(0, 150)
EARLIER = np.arange(150, 300)
REMAINING = np.arange(300, 700)
TEST = np.arange(700, 1100)
N = 1100


class Lookup(nn.Module):
    """Logits read from a table by the sample index stored in x: a model whose outputs are chosen exactly."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.reshape(len(x), -1)[:, 0].long()]


def _labels() -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(1).integers(0, 2, size=N))


def _set(index: np.ndarray) -> ImageSet:
    x = torch.as_tensor(index, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return ImageSet(x, _labels()[index], np.array([f"s{i}" for i in index]))


def _model(seed: int, *, current: str, earlier: str, test: str = "unseen", remaining: str = "member") -> Lookup:
    """Two classes; 'member' samples get high true-class confidence, 'unseen' the test-like one."""
    rng = np.random.default_rng(seed)
    shapes = {"member": (9.0, 1.0), "unseen": (3.0, 1.0), "poor": (1.0, 1.0)}
    p = np.empty(N)
    for index, kind in ((CURRENT, current), (EARLIER, earlier), (REMAINING, remaining), (TEST, test)):
        p[index] = rng.beta(*shapes[kind], size=len(index))
    p = np.clip(p, 1e-4, 1 - 1e-4)
    y = _labels().numpy()
    logits = np.zeros((N, 2))
    logits[np.arange(N), y] = np.log(p / (1 - p))  # softmax of (logit(p), 0) gives p to the true class
    return Lookup(torch.as_tensor(logits, dtype=torch.float32))


ORIGINAL = _model(10, current="member", earlier="member")
PARENT = _model(11, current="member", earlier="unseen")
FORGOT = _model(12, current="unseen", earlier="unseen")
RETRAINED = _model(13, current="unseen", earlier="unseen")
PARENT_UNSEEN_REMAINING = _model(18, current="unseen", earlier="unseen", remaining="unseen")
CONTEXT = {"method": "amun", "model_id": "m-1", "version": 3, "request_ids": ["r-3"], "hyper_parameters": {"lr": 0.01}}


def _report(model=FORGOT, *, earlier=None, **kwargs) -> dict:
    args = {
        "model": model,
        "parent": PARENT,
        "original": ORIGINAL,
        "current": _set(CURRENT),
        "earlier": [("req-A", _set(EARLIER))] if earlier is None else earlier,
        "retain_sample": _set(REMAINING),
        "test": _set(TEST),
        "rmia": None,
        "context": CONTEXT,
    }
    args.update(kwargs)
    return build_report(**args)


@pytest.fixture(scope="module")
def passing() -> dict:
    return _report(retrained=RETRAINED)


def test_report_has_every_section_and_is_plain_json(passing):
    assert passing["schema"] == REPORT_SCHEMA
    assert set(passing) == {
        "schema", "context", "headline", "verdict", "reasons", "failed_checks", "inconclusive_checks", "data",
        "evidence", "per_sample", "rmia", "models", "utility", "retained_exposure", "gap_to_retrained",
        "thresholds", "checks", "history",
    }  # fmt: skip
    assert set(passing["models"]) == {"version", "parent", "original", "retrained"}
    for entry in passing["models"].values():
        assert {"retain_acc", "test_acc", "ci", "current", "earlier", "union", "retained", "score_quantiles"} <= set(entry)
        for key in ("forget_acc", "mis", "loss_auc"):
            low, high = entry["current"]["ci"][key]
            assert low <= entry["current"][key] <= high
        assert [e["label"] for e in entry["earlier"]] == ["req-A"]
        assert entry["union"]["n"] == len(CURRENT) + len(EARLIER)
    assert passing["data"]["earlier"] == [{"label": "req-A", "n": len(EARLIER)}]
    assert set(passing["gap_to_retrained"]) == {"avg_gap_mis"}
    assert passing["context"] == CONTEXT
    assert json.loads(json.dumps(passing, allow_nan=False)) == passing


def test_every_forgotten_sample_has_a_score_and_p_value(passing):
    rows = passing["per_sample"]
    assert [r["id"] for r in rows] == [f"s{i}" for i in CURRENT] + [f"s{i}" for i in EARLIER]
    assert {r["set"] for r in rows} == {"current", "req-A"}
    for row in rows:
        assert 0 < row["p_value"] <= 1 and row["indistinguishable"] == (row["p_value"] >= 0.05)
    current = passing["evidence"]["current"]
    assert current["indistinguishable"] == sum(r["indistinguishable"] for r in rows if r["set"] == "current")


def test_report_passes_when_every_forgotten_set_looks_like_test_data():
    report = _report(retrained=RETRAINED, parent=FORGOT, original=ORIGINAL)
    assert report["verdict"] == "pass", report["reasons"]
    assert report["failed_checks"] == [] and report["inconclusive_checks"] == []
    assert "Verdict: pass" in report["headline"]
    for check in report["checks"]:
        assert check["result"] == "pass" and check["ci_low"] <= check["value"] <= check["ci_high"]


def test_parent_and_original_show_what_remembering_looks_like(passing):
    # the comparison rows must differ from the audited version for the report to mean anything
    original = passing["models"]["original"]
    assert original["current"]["loss_auc"] > 65 and original["earlier"][0]["loss_auc"] > 65
    assert original["current"]["evidence"]["indistinguishable_pct"]["ci_high"] < 90
    assert passing["models"]["parent"]["earlier"][0]["loss_auc"] < 60


def test_report_fails_when_the_current_set_is_still_remembered():
    report = _report(PARENT)
    assert report["verdict"] == "fail"
    assert "forget_auc.current" in report["failed_checks"]
    assert "indistinguishable.current" not in {c["name"] for c in report["checks"] if c["passed"]}
    assert report["reasons"] and "Verdict: fail" in report["headline"]


def test_report_fails_when_an_earlier_forgotten_set_comes_back():
    came_back = _model(14, current="unseen", earlier="member")
    report = _report(came_back, parent=FORGOT)
    assert report["verdict"] == "fail"
    assert "forget_auc.earlier[req-A]" in report["failed_checks"]
    assert "indistinguishable.current" not in report["failed_checks"]


def test_a_request_of_four_samples_is_inconclusive_not_failed():
    # four samples cannot show that at least 90% look never seen, whatever they score
    # the four forgotten samples the least member-like of all: still too few to fail on (over-unlearning)
    lowest = CURRENT[np.argsort(FORGOT(_set(CURRENT).x).max(dim=1).values.numpy())[:4]]
    for model, current in ((FORGOT, CURRENT[:4]), (RETRAINED, CURRENT[:4]), (FORGOT, lowest)):
        report = _report(model, current=_set(current), earlier=[], parent=FORGOT)
        assert report["verdict"] == "inconclusive", report["reasons"]
        check = next(c for c in report["checks"] if c["name"] == "indistinguishable.current")
        assert check["result"] == "inconclusive" and check["samples_needed"] > 4
        assert "would be needed" in check["reason"]
        assert "inconclusive" in report["headline"]


def test_a_small_earlier_set_does_not_hold_the_verdict_back_but_the_union_counts():
    report = _report(FORGOT, earlier=[("v2", _set(EARLIER[:4]))], parent=FORGOT)
    earlier = [c for c in report["checks"] if c["name"].startswith(("indistinguishable.earlier", "forget_auc.earlier"))]
    assert earlier and all(c["decides"] == "fail_only" for c in earlier)
    assert "indistinguishable.union" in {c["name"] for c in report["checks"]}
    assert report["data"]["union"]["n"] == len(CURRENT) + 4


def test_test_accuracy_drop_is_checked_against_the_parent_and_the_original():
    poor = _model(15, current="unseen", earlier="unseen", test="poor")
    report = _report(poor, parent=FORGOT)
    for name in ("test_acc_drop_vs_parent", "test_acc_drop_vs_original"):
        check = next(c for c in report["checks"] if c["name"] == name)
        assert check["result"] == "fail" and check["ci_low"] > 3 and check["max"] == 3.0 and check["min"] is None
    assert report["utility"]["test_acc_drop_vs_original"]["value"] > 3


def test_thresholds_are_stated_and_decide_the_verdict():
    strict = Thresholds(auc_tolerance=0.01)
    report = _report(thresholds=strict)
    assert report["thresholds"] == asdict(strict)
    assert report["verdict"] != "pass"
    assert next(c for c in report["checks"] if c["name"] == "forget_auc.current")["result"] != "pass"


def test_remaining_data_more_exposed_after_unlearning_fails_the_onion_check():
    # the parent's remaining data looks like test data; the new version's looks memorised
    exposed = _model(16, current="unseen", earlier="unseen")
    same = _report(exposed, parent=_model(17, current="unseen", earlier="unseen"))
    assert next(c for c in same["checks"] if c["name"] == "retained_exposure_increase")["result"] == "pass"
    onion = _report(exposed, parent=PARENT_UNSEEN_REMAINING)
    check = next(c for c in onion["checks"] if c["name"] == "retained_exposure_increase")
    assert check["result"] == "fail" and check["ci_low"] > 5


def test_earlier_sets_get_the_same_mis_as_when_they_were_the_current_set():
    as_earlier = _report(earlier=[("req-B", _set(CURRENT))], current=_set(EARLIER))
    as_current = _report(earlier=[], current=_set(CURRENT))
    assert as_earlier["models"]["version"]["earlier"][0]["mis"] == as_current["models"]["version"]["current"]["mis"]


def test_history_lists_earlier_versions_and_this_one_last(passing):
    before = [{"version": 2, "samples": 4, "indistinguishable_pct": passing["history"][0]["indistinguishable_pct"],
               "auc": passing["history"][0]["auc"], "verdict": "inconclusive"}]  # fmt: skip
    report = _report(history=before)
    assert [h["version"] for h in report["history"]] == [2, 3]
    assert report["history"][-1]["samples"] == len(CURRENT) + len(EARLIER)


def test_rmia_is_reported_with_its_reference_models_and_gives_the_membership_score():
    train = _set(np.concatenate([CURRENT, EARLIER, REMAINING]))
    test_full = _set(TEST)
    population = np.arange(200, 400)  # positions in test_full: the attack's known non-members
    refs = [_model(20 + i, current="unseen", earlier="unseen") for i in range(2)]
    audit = RmiaAudit(refs, np.zeros((2, len(train)), bool), train, test_full, population)
    report = _report(rmia=audit, test=test_full.subset(np.arange(200)))
    assert report["rmia"] == {
        "measured": True,
        "reference_models": 2,
        "mode": "offline",
        "gamma": 2.0,
        "seeds": [0, 1, 2],
    }
    assert report["evidence"]["score"] == "rmia"
    current = report["models"]["version"]["current"]
    assert 0 <= current["rmia_ft_auc"] <= 100 and current["rmia_ft_auc_std"] >= 0
    low, high = current["ci"]["rmia_auc"]
    assert low <= current["evidence"]["auc"]["value"] <= high
    assert "rmia_ft_auc" in report["models"]["version"]["earlier"][0]
    # the original remembers: RMIA flags its forgotten samples
    assert report["models"]["original"]["current"]["evidence"]["indistinguishable_pct"]["value"] < 90
    # the figure plots the same score the p-values use
    png = evidence_png(model=FORGOT, parent=PARENT, original=ORIGINAL, current=_set(CURRENT),
                       retain_sample=_set(REMAINING), test=test_full.subset(np.arange(200)), rmia=audit)  # fmt: skip
    assert png.startswith(PNG_MAGIC)


def test_sets_that_overlap_are_refused():
    with pytest.raises(ValueError, match="retain_sample holds 150 sample"):
        _report(retain_sample=_set(np.concatenate([REMAINING, CURRENT])))
    with pytest.raises(ValueError, match="'current' and 'req-A' share"):
        _report(earlier=[("req-A", _set(CURRENT[:10]))])
    with pytest.raises(ValueError, match="reserved"):
        _report(earlier=[("union", _set(EARLIER))])


def test_context_that_is_not_json_is_refused():
    with pytest.raises(ValueError, match="context is not JSON-able"):
        _report(context={"seed": object()})


def test_report_of_a_small_cnn_on_real_images(digits, tiny_arch):
    torch.manual_seed(0)
    cnn = build_model(tiny_arch)  # untrained: this checks the plumbing on real tensors, not the numbers
    forget = digits.train.subset(np.arange(20))
    report = build_report(
        model=cnn,
        parent=cnn,
        original=cnn,
        current=forget,
        earlier=[],
        retain_sample=digits.train.subset(np.arange(20, 120)),
        test=digits.test,
        rmia=None,
        context={},
    )
    assert report["models"]["version"] == report["models"]["original"]
    assert report["utility"]["test_acc_drop_vs_parent"]["value"] == 0.0  # the same model: no accuracy lost
    assert len(report["per_sample"]) == 20


def test_evidence_png_has_one_panel_per_distinct_model():
    args = dict(current=_set(CURRENT), retain_sample=_set(REMAINING), test=_set(TEST),
                earlier=[("req-A", _set(EARLIER))])  # fmt: skip
    three = evidence_png(model=FORGOT, parent=PARENT, original=ORIGINAL, **args)
    two = evidence_png(model=FORGOT, parent=ORIGINAL, original=ORIGINAL, **args)  # version 2: parent = original
    for png in (three, two):
        assert png.startswith(PNG_MAGIC)
    width3, height = int.from_bytes(three[16:20], "big"), int.from_bytes(three[20:24], "big")
    width2 = int.from_bytes(two[16:20], "big")
    assert width3 > 2 * height and width2 < width3


def test_html_shows_headline_verdict_per_sample_table_and_figures(passing):
    png = PNG_MAGIC + b"not really a picture"
    page = render_html(passing, png, png)
    for section in ("headline", "verdict", "evidence", "per-sample", "history", "checks", "current", "models",
                    "earlier", "rmia", "retrained", "data", "context"):  # fmt: skip
        assert f'id="{section}"' in page
    assert f'class="verdict {passing["verdict"]}"' in page and f"Verdict: {passing['verdict'].upper()}" in page
    assert page.count(f'src="data:image/png;base64,{base64.b64encode(png).decode()}"') == 2
    assert "not a mathematical proof of deletion" in page
    assert "req-A" in page and "retrained reference" in page
    assert page.count("<tr><td>s") >= len(CURRENT)  # one row per forgotten sample of this version


def test_html_escapes_hostile_strings():
    report = _report(
        earlier=[(HOSTILE, _set(EARLIER))], context={"method": HOSTILE, "hyper_parameters": {HOSTILE: HOSTILE}}
    )
    page = render_html(report, PNG_MAGIC)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_without_the_original_the_report_measures_nothing_on_it_and_says_so():
    report = _report(original=None)
    assert "original" not in report["models"]
    assert report["evidence"]["original"] is None and report["evidence"]["attack_on_original"] == "unavailable"
    assert "original model no longer exists" in report["headline"]
    assert report["utility"]["test_acc_drop_vs_original"] is None
    assert "test_acc_drop_vs_original" not in [c["name"] for c in report["checks"]]
    assert "no comparison with the original" in render_html(report, PNG_MAGIC)


def test_without_the_original_test_accuracy_is_compared_with_what_was_recorded_of_it():
    poor = _model(15, current="unseen", earlier="unseen", test="poor")
    measured = _report(poor, parent=FORGOT)  # the original still there: its accuracy as an earlier audit saw it
    recorded = {"test_acc": measured["models"]["original"]["test_acc"], "source": "version 2's audit"}

    report = _report(poor, parent=FORGOT, original=None, original_recorded=recorded)

    drop = report["utility"]["test_acc_drop_vs_original"]
    assert drop["value"] == pytest.approx(measured["utility"]["test_acc_drop_vs_original"]["value"])
    assert drop["ci_low"] <= drop["value"] <= drop["ci_high"] and "version 2's audit" in drop["method"]
    check = next(c for c in report["checks"] if c["name"] == "test_acc_drop_vs_original")
    assert check["result"] == "fail"


def test_evidence_png_without_the_original_has_no_panel_for_it():
    args = dict(current=_set(CURRENT), retain_sample=_set(REMAINING), test=_set(TEST))
    with_original = evidence_png(model=FORGOT, parent=PARENT, original=ORIGINAL, **args)
    without = evidence_png(model=FORGOT, parent=PARENT, original=None, **args)
    assert without.startswith(PNG_MAGIC)
    assert int.from_bytes(without[16:20], "big") < int.from_bytes(with_original[16:20], "big")
