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


def test_the_table_reports_the_retrain_noise_floor_paired_differences_and_the_original_fit(smoke):
    _, result = smoke
    assert 0 <= result["original_train_acc"] <= 100
    rvr = result["retrain_vs_retrain"]
    assert rvr["seeds"] == len(SMOKE.seeds) and rvr["avg_gap_mis"] > 0  # two retrains never agree exactly
    pairs = {(e["baseline"], e["setting"], e["against"], e["metric"]) for e in result["paired"]}
    assert ("rl", "with-DR", "amun", "avg_gap_mis") in pairs and ("rl", "no-DR", "amun", "avg_gap_rmia") in pairs
    for e in result["paired"]:
        assert {"baseline", "setting", "metric", "mean_diff", "ci_low", "ci_high"} <= set(e)
        assert e["ci_low"] <= e["mean_diff"] <= e["ci_high"]
        assert e["seeds"] == list(SMOKE.seeds)


def test_tuning_covers_every_setting_with_its_whole_grid_and_salun_ratios(smoke):
    _, result = smoke
    schedule = result["tuning"]["schedule"]
    assert "amun/with-DR" in schedule and "rl/no-DR" in schedule and "amun/no-DR+stop" not in schedule
    for key, choice in schedule.items():
        assert len(choice["grid"]) == len(choice["lrs"]) * len(choice["step_sizes"])
        assert (choice["lr"], choice["step_size"]) in {(g["lr"], g["step_size"]) for g in choice["grid"]}
    assert [g["salun_ratio"] for g in schedule["amun_salun/with-DR"]["salun_ratio_grid"]] == list(SMOKE.salun_ratios)
    # AMUN's mix (with or without D_F) is tuned with its schedule; the mix not chosen is kept whole
    for key in ("amun/with-DR", "amun/no-DR", "amun/subsampled"):
        chosen = schedule[key]["forget_in_mix"]
        assert set(schedule[key]["other_mixes"]) == {str(not chosen)}
    assert "other_mixes" not in schedule["rl/with-DR"] and schedule["rl/with-DR"]["forget_in_mix"] is True
    row = next(r for r in result["rows"] if r["method"] == "amun" and r["retain_access"] and not r["subsampled"]
               and not r["stopping"])
    assert row["forget_in_mix"] == schedule["amun/with-DR"]["forget_in_mix"]
    studies = result["attack"]["studies"]
    assert {s["eps_rule"] for s in studies} == set(SMOKE.eps_rules)
    assert result["attack"]["eps_rule"] in SMOKE.eps_rules


def test_the_stream_audits_the_union_in_every_mode_with_per_request_costs(smoke):
    _, result = smoke
    streams = {(e["mode"], e["method"]): e for e in result["stream"]}
    assert {("full", "amun"), ("subsampled", "amun"), ("no_retain", "amun"), ("subsampled", "rl")} <= set(streams)
    for (mode, method), e in streams.items():
        assert {"mode", "method", "requests", "request_fraction", "union", "test_acc_after", "per_request_seconds",
                "speedup_vs_retrain", "guard_tripped"} <= set(e)
        assert e["requests"] == SMOKE.stream_requests and "avg_gap_mis" in e["union"]
    assert streams[("full", "retrain")]["union"]["avg_gap_mis"] == 0
    runs = [r for r in result["stream_runs"] if r["method"] == "amun" and r["mode"] == "full"]
    assert [len(r["per_request_seconds"]) for r in runs] == [SMOKE.stream_requests] * len(SMOKE.stream_seeds)
    per_request = [e for e in result["successive"] if e["mode"] == "full" and e["method"] == "amun"]
    assert [e["request"] for e in per_request] == list(range(SMOKE.stream_requests))


def test_a_section_run_alone_merges_with_the_other_sections_results(smoke, tmp_path):
    out, result = smoke
    copy = tmp_path / "results"
    copy.mkdir()
    for name in ("smoke.tune.json", "smoke.table.json", "smoke.panels.npz"):
        (copy / name).write_bytes((out / name).read_bytes())
    cache = tmp_path / "cache"
    assert main(["--profile", "smoke", "--section", "stream", "--out", str(copy), "--cache", str(cache),
                 "--quiet"]) == 0
    merged = json.loads((copy / "smoke.json").read_text())
    assert merged["rows"] == result["rows"]  # the table's results, kept from its own file
    assert merged["stream"] and set(merged["sections"]) == {"tune", "table", "stream"}
    assert merged["tuning"] == result["tuning"]
    assert (copy / "smoke-stream.png").exists() and (copy / "smoke-gaps.png").exists()


def test_the_table_alone_refuses_to_run_without_tuned_schedules(tmp_path, capsys):
    assert main(["--profile", "smoke", "--section", "table", "--out", str(tmp_path), "--cache",
                 str(tmp_path / "cache"), "--quiet"]) == 1
    assert "run --section tune first" in capsys.readouterr().err


def test_an_interrupted_tune_run_resumes_keeping_what_it_had_tuned(smoke, tmp_path, capsys):
    out, result = smoke
    tune = json.loads((out / "smoke.tune.json").read_text())
    kept_key = "amun/with-DR"
    marker = {**tune["tuning"]["schedule"][kept_key], "lr": 0.123}  # not in any grid: only a kept entry has it
    partial = {"attack": tune["attack"], "tuning": {**tune["tuning"], "schedule": {kept_key: marker}}}
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "smoke.tune.partial.json").write_text(json.dumps(partial))
    assert main(["--profile", "smoke", "--section", "tune", "--out", str(folder), "--cache", str(tmp_path / "c")]) == 0
    resumed = json.loads((folder / "smoke.tune.json").read_text())
    assert resumed["tuning"]["schedule"][kept_key]["lr"] == 0.123
    assert set(resumed["tuning"]["schedule"]) == set(tune["tuning"]["schedule"])
    assert not (folder / "smoke.tune.partial.json").exists()
    assert "kept from the interrupted run" in capsys.readouterr().err
