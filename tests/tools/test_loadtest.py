"""The load-test command (`python -m tools.loadtest`): its statistics, and one tiny real run on the embedded
default (the full measurement is not part of CI; see README, "Load test")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import loadtest
from tools.loadtest import GET_ENDPOINT, POST_ENDPOINT, IdPool, IdsExhausted, summarise

RUN_KEYS = {"backend", "endpoint", "clients", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms"}


def test_summary_gives_numpy_percentiles_and_rate_of_known_latencies() -> None:
    latencies = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    row = summarise(
        backend="embedded", endpoint=POST_ENDPOINT, clients=4, latencies_s=latencies, errors=0, seconds=2.0
    )
    assert row == {
        "backend": "embedded",
        "endpoint": POST_ENDPOINT,
        "clients": 4,
        "requests": 100,
        "errors": 0,
        "rps": 50.0,
        # numpy's linear interpolation between order statistics
        "p50_ms": 50.5,
        "p95_ms": 95.05,
        "p99_ms": 99.01,
    }


def test_summary_says_how_long_the_clients_paused_when_told() -> None:
    row = summarise(backend="embedded", endpoint=POST_ENDPOINT, clients=1, latencies_s=[0.01], errors=0,
                    seconds=1.0, think_ms=1000.0)  # fmt: skip
    assert row["think_ms"] == 1000.0 and list(row)[:4] == ["backend", "endpoint", "clients", "think_ms"]


def test_targets_and_table_tell_closed_loop_from_paced_clients() -> None:
    runs = [
        summarise(backend="postgres+redis", endpoint=POST_ENDPOINT, clients=50, latencies_s=[latency] * 10,
                  errors=0, seconds=1.0, think_ms=think)  # fmt: skip
        for think, latency in ((0.0, 0.2), (1000.0, 0.02))
    ]
    report = {
        "machine": {"cpu": "x", "cores": 2, "python": "3.11", "os": "linux", "date": "today", "note": "shared"},
        "command": "python -m tools.loadtest", "runs": runs, "large_request_seconds": {},
        "claim_latency_seconds": {}, "ids_per_request": 100, "large_request_ids": 100_000,
        "duration_seconds": 1.0, "warmup_seconds": 0.0, "think_ms": [0.0, 1000.0],
        "server_workers": {"postgres+redis": 2},
    }  # fmt: skip
    lines = loadtest.targets(report)
    assert [line.split(" clients")[0].split("50 ")[1] for line in lines] == ["closed-loop", "paced (1000 ms pauses)"]
    assert lines[0].endswith("not met") and lines[1].endswith(": met")
    text = loadtest.markdown(report)
    assert "| backend | endpoint | clients | think_ms |" in text
    assert f"| postgres+redis | {POST_ENDPOINT} | 50 | 1000 | 10 | 0 |" in text
    assert "postgres+redis 2" in text


def test_summary_counts_errors_as_requests_but_not_in_rate_or_percentiles() -> None:
    row = summarise(
        backend="postgres+redis", endpoint=GET_ENDPOINT, clients=1, latencies_s=[0.010] * 9, errors=3, seconds=3.0
    )
    assert (row["requests"], row["errors"], row["rps"]) == (12, 3, 3.0)
    assert row["p50_ms"] == row["p99_ms"] == 10.0


def test_summary_of_a_step_where_everything_failed_has_no_percentiles() -> None:
    row = summarise(backend="embedded", endpoint=POST_ENDPOINT, clients=2, latencies_s=[], errors=5, seconds=0.0)
    assert (row["requests"], row["errors"], row["rps"], row["p50_ms"], row["p99_ms"]) == (5, 5, None, None, None)


def test_id_pool_never_hands_out_an_id_twice_and_says_when_it_runs_out() -> None:
    pool = IdPool(5)
    assert pool.take(2) + pool.take(3) == ["s0", "s1", "s2", "s3", "s4"]
    with pytest.raises(IdsExhausted):
        pool.take(1)


def test_dataset_ids_match_the_ids_the_clients_send(tmp_path: Path) -> None:
    import numpy as np

    loadtest.write_dataset(tmp_path, 7)
    with np.load(tmp_path / "train.npz") as train:
        assert train["ids"].tolist() == IdPool(7).take(7)
        assert train["x"].shape == (7, loadtest.IMAGE_SIZE, loadtest.IMAGE_SIZE)


@pytest.mark.slow
def test_tiny_embedded_run_writes_every_key_with_no_errors(tmp_path: Path) -> None:
    out = tmp_path / "load"
    code = loadtest.main(
        [
            "--backend", "embedded", "--clients", "2", "--duration", "1", "--warmup", "0.3", "--ids", "5",
            "--samples", "3000", "--large-ids", "500", "--claim-repeats", "1", "--think-ms", "0,100",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert {"machine", "command", "runs", "large_request_seconds", "claim_latency_seconds"} <= set(report)
    assert report["command"].startswith("python") and "-m tools.loadtest --backend embedded" in report["command"]
    assert {"cpu", "cores", "python", "os"} <= set(report["machine"])
    assert sorted((r["think_ms"], r["endpoint"], r["clients"]) for r in report["runs"]) == [
        (0, GET_ENDPOINT, 2), (0, POST_ENDPOINT, 2), (100, GET_ENDPOINT, 2), (100, POST_ENDPOINT, 2)
    ]  # closed-loop and paced clients
    assert report["server_workers"] == {"embedded": 1}
    for run in report["runs"]:
        assert RUN_KEYS | {"think_ms"} <= set(run)
        assert run["backend"] == "embedded"
        assert run["errors"] == 0 and run["requests"] > 0 and run["rps"] > 0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
    assert report["large_request_seconds"]["embedded"] > 0
    claim = report["claim_latency_seconds"]["embedded"]
    assert len(claim["samples"]) == 1 and "errors" not in claim
    assert claim["median"] >= 0 and claim["client_observed_median"] > 0
    assert "| embedded |" in out.with_suffix(".md").read_text()
