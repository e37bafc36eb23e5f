"""The audit report: its sections, the verdict against thresholds, the histogram PNG and the HTML page.

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
from unlearning.audit.report import REPORT_SCHEMA, Thresholds, build_report, histograms_png, render_html
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


def _model(seed: int, *, current: str, earlier: str, test: str = "unseen") -> Lookup:
    """Two classes; 'member' samples get high true-class confidence, 'unseen' the test-like one."""
    rng = np.random.default_rng(seed)
    shapes = {"member": (9.0, 1.0), "unseen": (3.0, 1.0), "poor": (1.0, 1.0)}
    p = np.empty(N)
    for index, kind in ((CURRENT, current), (EARLIER, earlier), (REMAINING, "member"), (TEST, test)):
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
        "schema",
        "context",
        "data",
        "rmia",
        "models",
        "confidence_bins",
        "gap_to_retrained",
        "thresholds",
        "checks",
        "failed_checks",
        "verdict",
    }
    assert set(passing["models"]) == {"version", "parent", "original", "retrained"}
    for entry in passing["models"].values():
        assert {"retain_acc", "test_acc", "current", "earlier", "confidence"} <= set(entry)
        assert {"forget_acc", "mis", "loss_auc"} <= set(entry["current"])
        assert [e["label"] for e in entry["earlier"]] == ["req-A"]
        assert set(entry["confidence"]) == {"forget", "remaining", "test"}
        assert sum(entry["confidence"]["test"]["counts"]) == len(TEST)
    assert passing["data"]["earlier"] == [{"label": "req-A", "n": len(EARLIER)}]
    assert set(passing["gap_to_retrained"]) == {"avg_gap_mis"}
    assert passing["context"] == CONTEXT
    assert json.loads(json.dumps(passing, allow_nan=False)) == passing


def test_report_passes_when_every_forgotten_set_looks_like_test_data(passing):
    assert passing["verdict"] == "pass" and passing["failed_checks"] == []
    names = [check["name"] for check in passing["checks"]]
    assert names == ["loss_auc.current", "loss_auc.earlier[req-A]", "test_acc_drop_vs_parent"]
    for check in passing["checks"]:
        assert check["passed"] and {"value", "min", "max", "limit"} <= set(check)
    assert 40 <= passing["models"]["version"]["current"]["loss_auc"] <= 60


def test_parent_and_original_show_what_remembering_looks_like(passing):
    # the comparison rows must differ from the audited version for the report to mean anything
    assert passing["models"]["original"]["current"]["loss_auc"] > 65
    assert passing["models"]["original"]["earlier"][0]["loss_auc"] > 65
    assert passing["models"]["parent"]["current"]["loss_auc"] > 65
    assert passing["models"]["parent"]["earlier"][0]["loss_auc"] < 60


def test_report_fails_when_the_current_set_is_still_remembered():
    report = _report(PARENT)
    assert report["verdict"] == "fail"
    assert report["failed_checks"] == ["loss_auc.current"]


def test_report_fails_when_an_earlier_forgotten_set_comes_back():
    came_back = _model(14, current="unseen", earlier="member")
    report = _report(came_back)
    assert report["verdict"] == "fail"
    assert report["failed_checks"] == ["loss_auc.earlier[req-A]"]
    assert report["models"]["version"]["earlier"][0]["loss_auc"] > 60


def test_report_fails_when_test_accuracy_drops_more_than_allowed():
    report = _report(_model(15, current="unseen", earlier="unseen", test="poor"))
    assert "test_acc_drop_vs_parent" in report["failed_checks"]
    drop = next(c for c in report["checks"] if c["name"] == "test_acc_drop_vs_parent")
    assert drop["value"] > 3 and drop["max"] == 3.0 and drop["min"] is None


def test_thresholds_are_stated_and_decide_the_verdict():
    strict = Thresholds(loss_auc_tolerance=0.01)
    report = _report(thresholds=strict)
    assert report["thresholds"] == asdict(strict)
    assert "loss_auc.current" in report["failed_checks"]


def test_earlier_sets_get_the_same_mis_as_when_they_were_the_current_set():
    as_earlier = _report(earlier=[("req-B", _set(CURRENT))], current=_set(EARLIER))
    as_current = _report(earlier=[], current=_set(CURRENT))
    assert as_earlier["models"]["version"]["earlier"][0]["mis"] == as_current["models"]["version"]["current"]["mis"]


def test_rmia_is_reported_with_its_reference_models_and_checked_for_every_set():
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
    current = report["models"]["version"]["current"]
    assert 0 <= current["rmia_ft_auc"] <= 100 and current["rmia_ft_auc_std"] >= 0
    assert "rmia_ft_auc" in report["models"]["version"]["earlier"][0]
    names = {c["name"] for c in report["checks"]}
    assert {"rmia_ft_auc.current", "rmia_ft_auc.earlier[req-A]"} <= names


def test_sets_that_overlap_are_refused():
    with pytest.raises(ValueError, match="retain_sample holds 150 sample"):
        _report(retain_sample=_set(np.concatenate([REMAINING, CURRENT])))
    with pytest.raises(ValueError, match="'current' and 'req-A' share"):
        _report(earlier=[("req-A", _set(CURRENT[:10]))])


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
    assert report["checks"][-1]["value"] == 0.0  # the same model: no accuracy lost


def test_histograms_png_has_one_panel_per_model():
    png = histograms_png(
        model=FORGOT,
        parent=PARENT,
        original=ORIGINAL,
        current=_set(CURRENT),
        retain_sample=_set(REMAINING),
        test=_set(TEST),
        earlier=[("req-A", _set(EARLIER))],
    )
    assert png.startswith(PNG_MAGIC)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 2 * height


def test_html_shows_every_section_the_verdict_and_the_embedded_png(passing):
    png = PNG_MAGIC + b"not really a picture"
    page = render_html(passing, png)
    for section in ("verdict", "checks", "current", "earlier", "rmia", "retrained", "histograms", "data", "context"):
        assert f'id="{section}"' in page
    assert 'class="verdict pass"' in page and "Verdict: PASS" in page
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert "not a mathematical proof of deletion" in page
    assert "req-A" in page and "retrained reference" in page


def test_html_escapes_hostile_strings():
    report = _report(
        earlier=[(HOSTILE, _set(EARLIER))], context={"method": HOSTILE, "hyper_parameters": {HOSTILE: HOSTILE}}
    )
    page = render_html(report, PNG_MAGIC)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
