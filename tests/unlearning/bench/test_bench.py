"""The benchmark's smoke profile end to end: every method and setting, the successive requests, and the
files a client reads (JSON keys are a contract, see the README)."""

import json

import pytest

from unlearning.bench.__main__ import main
from unlearning.bench.profiles import SMOKE

ROW_KEYS = {"method", "retain_access", "subsampled", "forget_fraction", "forget_acc", "retain_acc", "test_acc",
            "mis", "rmia_ft_auc", "avg_gap_mis", "avg_gap_rmia", "seconds", "attack_passes", "speedup_vs_retrain"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["--profile", "smoke", "--out", str(out), "--no-cache", "--quiet"]) == 0
    return out, json.loads((out / "smoke.json").read_text())


def test_smoke_run_writes_json_markdown_and_both_pictures(smoke):
    out, result = smoke
    assert {"profile", "machine", "command", "rows", "successive"} <= set(result)
    assert result["command"].startswith("python -m unlearning.bench --profile smoke")
    for name in ("smoke.md", "smoke-confidence.png", "smoke-gaps.png"):
        assert (out / name).stat().st_size > 500
    assert (out / "smoke-confidence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_method_appears_with_and_without_the_remaining_data_averaged_over_seeds(smoke):
    _, result = smoke
    rows = {(r["method"], r["retain_access"], r["subsampled"], r["stopping"]): r for r in result["rows"]}
    for method in SMOKE.methods:
        assert (method, True, False, False) in rows
        if method not in ("ft", "l1_sparse"):
            assert (method, False, False, False) in rows
    assert ("amun", True, True, False) in rows and ("original", False, False, False) in rows
    for row in result["rows"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["seeds"] == len(SMOKE.seeds)
        assert 0 <= row["forget_acc"] <= 100 and 0 <= row["mis"] <= 100
    retrain = rows[("retrain", True, False, False)]
    assert retrain["avg_gap_mis"] == 0 and retrain["speedup_vs_retrain"] == 1
    assert rows[("amun", True, False, False)]["attack_passes"] > 0


def test_successive_requests_audit_every_earlier_forgotten_set(smoke):
    _, result = smoke
    amun = [e for e in result["successive"] if e["method"] == "amun_a" and e["retain_access"] and not e["subsampled"]]
    assert [e["request"] for e in amun] == list(range(SMOKE.successive_requests))
    for entry in amun:
        assert len(entry["earlier"]) == entry["request"]
        assert {"forget_acc", "test_acc", "mis", "rmia_ft_auc"} <= set(entry["current"])
    assert "avg_gap_mis" in amun[-1]["current"] and all("avg_gap_mis" in e for e in amun[-1]["earlier"])
