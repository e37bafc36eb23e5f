"""What the audit's evidence says at the sizes people really send: the Fashion-MNIST demo service, then successive
deletion requests of 4, 40 and 400 sample IDs, and for each new version its verdict, reasons, every interval,
the per-sample evidence and the cumulative union's result.

    python bench/evidence.py                        # writes bench/results/evidence.json and evidence.md
    python bench/evidence.py --sizes 4,40 --reference-models 0 --out /tmp/evidence

It starts the real service (`python -m service run`) on a free loopback port with a fresh home folder, so the
demo is trained, registered and tuned as on a first start (the requests wait for the demo's tuning job, so they
run with the configuration it chose); with --reference-models K it first trains K reference models through the
API (the same recipe as the demo model), so that the audits use RMIA. After the last request it retrains
--retrains models from scratch without every forgotten sample (the demo's recipe, seeds 0..K-1) and compares the
last version with them on each forgotten set: MIS, accuracies, and whether the version's MIS lies within the
retrained models' range. The server is stopped by its process id. Needs Debian's dataset-fashion-mnist (the
digits fallback is refused: its 1,347 samples are too few for 400-ID requests on top of the rest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "evidence"
STARTUP_TIMEOUT_S = 1800.0  # the first start trains the demo model: minutes on 2 busy cores
JOB_TIMEOUT_S = 3600.0
# the demo model's training recipe (service.demo): reference models must be trained the same way
DEMO_RECIPE = {"epochs": 30, "lr": 0.05, "batch_size": 128, "augment": {"crop_padding": 2, "hflip": True}}


class BenchError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _wait_job(http: httpx.Client, job_id: str, what: str) -> dict[str, Any]:
    """Poll a job until it ends, showing its phase, percent and ETA on one line."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        eta = job.get("eta_seconds")
        line = f"\r{what}: {job['status']} {job.get('phase') or ''} {job['percent']:5.1f}%"
        line += f" ETA {eta:.0f} s" if eta is not None else ""
        print(f"{line:<78}", end="", file=sys.stderr, flush=True)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            print(file=sys.stderr)
            if job["status"] != "succeeded":
                raise BenchError(f"{what}: job {job_id} ended {job['status']}: {job.get('error')}")
            return job
        time.sleep(1.0)
    raise BenchError(f"{what}: job {job_id} did not end within {JOB_TIMEOUT_S:.0f} s")


def _wait_tuning(http: httpx.Client, model_id: str) -> dict[str, Any]:
    """The demo's tuning job (queued on the first start) to its end; returns the model's tuning record."""
    jobs = http.get("/v1/jobs", params={"model_id": model_id, "kind": "tuning"}).raise_for_status().json()["items"]
    if not jobs:
        raise BenchError(f"model {model_id} has no tuning job: the demo queues one on its first start")
    _wait_job(http, jobs[0]["id"], "the demo's tuning job")
    model = http.get(f"/v1/models/{model_id}").raise_for_status().json()
    return {"tuning": model["tuning"], "unlearn_config": model["unlearn_config"]}


def compare_with_retrains(http: httpx.Client, home: Path, info: dict[str, Any], model_id: str, number: int,
                          forgotten: list[tuple[str, list[str]]], k: int) -> dict[str, Any]:
    """The last version against k models retrained without every forgotten sample (the demo's recipe), on each
    forgotten set and their union: MIS, accuracies, and whether the version's MIS lies within the retrains'
    range. Measured as the service's audit measures (the scored half of the test split, a sample of D_R)."""
    import numpy as np
    import torch

    from unlearning.audit.evaluate import evaluate
    from unlearning.data import load_dataset
    from unlearning.models import load_checkpoint
    from unlearning.specs import ArchSpec, AugmentSpec, DatasetSpec, TrainConfig
    from unlearning.splits import holdout_split
    from unlearning.successive import remaining
    from unlearning.train import train_model

    dataset = http.get(f"/v1/datasets/{info['dataset_id']}").raise_for_status().json()
    data = load_dataset(DatasetSpec(dataset["format"], str(home / "data" / dataset["path"])))
    model = http.get(f"/v1/models/{model_id}").raise_for_status().json()
    arch = ArchSpec(**model["architecture"])
    weights = http.get(f"/v1/models/{model_id}/versions/{number}/checkpoint").raise_for_status().content
    version = load_checkpoint(weights).model.eval()
    _, scored = holdout_split(len(data.test), seed=0)  # the half every audit of the service scores on
    test = data.test.subset(scored)
    union = [sid for _, ids in forgotten for sid in ids]
    rest = remaining(data.train, union)
    sample = rest.subset(np.sort(np.random.default_rng(0).choice(len(rest), min(2000, len(rest)), replace=False)))
    sets = [(name, data.train.subset(data.train.positions(ids))) for name, ids in forgotten]
    sets.append(("union", data.train.subset(data.train.positions(union))))
    recipe = TrainConfig(epochs=DEMO_RECIPE["epochs"], lr=DEMO_RECIPE["lr"], batch_size=DEMO_RECIPE["batch_size"],
                         augment=AugmentSpec(**DEMO_RECIPE["augment"]))
    retrains = []
    for seed in range(k):
        _log(f"retraining {seed + 1}/{k} without the {len(union)} forgotten samples ...")
        torch.manual_seed(seed)
        retrains.append(train_model(arch, rest, dataclasses.replace(recipe, seed=seed)).model.eval())
    out = []
    for name, subset in sets:
        ours, _ = evaluate(version, subset, sample, test)
        theirs = [evaluate(m, subset, sample, test)[0] for m in retrains]
        mis = [t["mis"] for t in theirs]
        out.append({
            "set": name, "samples": len(subset), "version_mis": ours["mis"], "version_forget_acc": ours["forget_acc"],
            "retrain_mis": mis, "retrain_mis_range": [min(mis), max(mis)],
            "retrain_forget_acc": [t["forget_acc"] for t in theirs],
            "mis_within_retrain_range": min(mis) <= ours["mis"] <= max(mis),
        })
    test_accs = [evaluate(m, sets[-1][1], sample, test)[0]["test_acc"] for m in retrains]
    return {"retrains": k, "recipe": DEMO_RECIPE, "version": number, "sets": out,
            "version_test_acc": evaluate(version, sets[-1][1], sample, test)[0]["test_acc"],
            "retrain_test_acc": test_accs}


def _union_verdict(report: dict[str, Any]) -> str:
    # the union's own checks (share and AUC); for the first version the union is its own set
    key = "union" if report["evidence"]["union"] is not None else "current"
    results = {c["result"] for c in report["checks"]
               if c["name"] in (f"indistinguishable.{key}", f"forget_auc.{key}")}  # fmt: skip
    if "fail" in results:
        return "fail"
    return "pass" if results == {"pass"} else "inconclusive"


def _interval(d: dict[str, Any]) -> dict[str, float]:
    return {"value": d["value"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}


def version_row(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    """One version's entry of evidence.json, from its audit report."""
    found = report["evidence"]
    cumulative = found["union"] or found["current"]
    return {
        "version": report["context"]["version"],
        "request_ids": report["context"]["request_ids"],
        "samples": found["current"]["n"],
        "verdict": report["verdict"],
        "reasons": report["reasons"],
        "headline": report["headline"],
        "score": found["score"],
        "indistinguishable_pct": _interval(found["current"]["indistinguishable_pct"]),
        "per_sample": [
            {key: row[key] for key in ("id", "score", "p_value", "indistinguishable")}
            for row in report["per_sample"] if row["set"] == "current"
        ],  # fmt: skip
        "forget_auc": _interval(found["current"]["auc"]),
        "union": {
            "samples": cumulative["n"],
            "verdict": _union_verdict(report),
            "indistinguishable_pct": _interval(cumulative["indistinguishable_pct"]),
            "forget_auc": _interval(cumulative["auc"]),
        },
        "original_on_these_samples": {
            "indistinguishable_pct": _interval(found["original"]["indistinguishable_pct"]),
            "forget_auc": _interval(found["original"]["auc"]),
            "attack_on_original": found["attack_on_original"],
        },
        "test_acc_drop_vs_original": _interval(report["utility"]["test_acc_drop_vs_original"]),
        "test_acc_drop_vs_parent": _interval(report["utility"]["test_acc_drop_vs_parent"]),
        "retained_exposure_change": _interval(report["retained_exposure"]["change_vs_parent"]),
        "checks": [{key: c[key] for key in ("name", "value", "ci_low", "ci_high", "limit", "result", "samples_needed")}
                   for c in report["checks"]],  # fmt: skip
        "job_seconds": seconds,
    }


def _machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "os": platform.platform(), "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Audit evidence at request sizes of a data subject",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, Python {result['machine']['python']}, "
        f"torch {result['machine']['torch']}, {result['machine']['date']}  ",
        f"Membership score: {result['versions'][0]['score'] if result['versions'] else '-'}; reference models: "
        f"{result['reference_models']}",
        "",
        "| version | IDs | verdict | % look never seen [95% CI] | forget AUC [95% CI] | union: n, verdict, % never seen, AUC "
        "| original on these samples: % never seen, AUC | test acc drop vs original |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in result["versions"]:
        share, auc, union, orig = v["indistinguishable_pct"], v["forget_auc"], v["union"], v["original_on_these_samples"]
        drop = v["test_acc_drop_vs_original"]
        lines.append(
            f"| {v['version']} | {v['samples']} | {v['verdict']} | {share['value']:.1f} [{share['ci_low']:.1f}, "
            f"{share['ci_high']:.1f}] | {auc['value']:.1f} [{auc['ci_low']:.1f}, {auc['ci_high']:.1f}] | "
            f"{union['samples']}, {union['verdict']}, {union['indistinguishable_pct']['value']:.1f}, "
            f"{union['forget_auc']['value']:.1f} [{union['forget_auc']['ci_low']:.1f}, {union['forget_auc']['ci_high']:.1f}] | "
            f"{orig['indistinguishable_pct']['value']:.1f}, {orig['forget_auc']['value']:.1f} "
            f"[{orig['forget_auc']['ci_low']:.1f}, {orig['forget_auc']['ci_high']:.1f}] | "
            f"{drop['value']:.2f} [{drop['ci_low']:.2f}, {drop['ci_high']:.2f}] |"
        )
    lines += ["", "## Why each verdict", ""]
    for v in result["versions"]:
        lines.append(f"- **version {v['version']} ({v['samples']} IDs), {v['verdict']}**: {v['headline']}")
        lines += [f"  - {reason}" for reason in v["reasons"]]
    tuned = result.get("tuning") or {}
    if tuned.get("tuning"):
        chosen = tuned["tuning"]["chosen"]
        lines += ["", f"The requests ran after the demo's tuning job ({tuned['tuning']['procedure']}), which chose lr "
                  f"{chosen['lr']}, step {chosen['step_size']}."]
    comparison = result.get("retrain_comparison")
    if comparison:
        drop = result["versions"][-1]["test_acc_drop_vs_original"]
        lines += ["", f"## Version {comparison['version']} against {comparison['retrains']} models retrained without "
                  "every forgotten sample", "",
                  f"Test accuracy: version {comparison['version']} {comparison['version_test_acc']:.2f}, retrained "
                  f"{min(comparison['retrain_test_acc']):.2f} to {max(comparison['retrain_test_acc']):.2f}; drop "
                  f"against the original {drop['value']:.2f} [{drop['ci_low']:.2f}, {drop['ci_high']:.2f}] points.", "",
                  "| forgotten set | samples | version's MIS | retrained MIS (min to max) | within | version's D_F acc "
                  "| retrained D_F acc |", "|---|---|---|---|---|---|---|"]
        for row in comparison["sets"]:
            low, high = row["retrain_mis_range"]
            accs = row["retrain_forget_acc"]
            lines.append(f"| {row['set']} | {row['samples']} | {row['version_mis']:.1f} | {low:.1f} to {high:.1f} "
                         f"| {'yes' if row['mis_within_retrain_range'] else '**no**'} | {row['version_forget_acc']:.1f} "
                         f"| {min(accs):.1f} to {max(accs):.1f} |")
    lines += ["", "Every check of every version, with its interval, is in evidence.json (`checks`); every forgotten "
              "ID is in its version's `per_sample` list.", ""]  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    fashion = Path(args.fashion_mnist)
    if not (fashion / "train-images-idx3-ubyte.gz").exists():
        raise BenchError(f"no Fashion-MNIST at {fashion}: apt-get install -y dataset-fashion-mnist")
    home = Path(tempfile.mkdtemp(prefix="evidence-bench-"))
    port = _free_port()
    env = {**os.environ, "UNLEARN_HOME": str(home), "UNLEARN_DEMO_FASHION_MNIST_DIR": str(fashion)}
    env.pop("UNLEARN_DATABASE_URL", None)
    env.pop("UNLEARN_BROKER_URL", None)
    log_file = (home / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "service", "run", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    _log(f"server pid {server.pid} on port {port}, home {home}; log {home / 'server.log'}")
    try:
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        info_file = home / "demo.json"
        while not (info_file.exists() and _healthy(base)):
            if server.poll() is not None:
                raise BenchError(f"the server exited ({server.returncode}); see {home / 'server.log'}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise BenchError("the demo did not come up in time")
            time.sleep(2.0)
        _log(f"demo up after {time.monotonic() - started:.0f} s")
        info = json.loads(info_file.read_text())
        if info.get("dataset") != "fashion-mnist-demo":
            raise BenchError(f"the demo is {info.get('dataset')!r}, not Fashion-MNIST")
        key = (home / "demo-api-key").read_text().strip()
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
        model_id = info["model_id"]
        tuned = _wait_tuning(http, model_id)
        _log(f"demo tuned: {tuned['tuning'] and tuned['tuning'].get('chosen')}")
        if args.reference_models:
            answer = http.post(f"/v1/models/{model_id}/reference-models",
                               json={"k": args.reference_models, "recipe": DEMO_RECIPE}).raise_for_status()  # fmt: skip
            _wait_job(http, answer.json()["id"], f"{args.reference_models} reference models")
        rng = random.Random(args.seed)
        pool = [str(i) for i in range(info["sample_ids"]["count"])]
        rng.shuffle(pool)
        versions, forgotten = [], []
        for size in args.sizes:
            ids, pool = pool[:size], pool[size:]
            answer = http.post(f"/v1/models/{model_id}/deletion-requests",
                               json={"sample_ids": ids, "subject_request_id": f"bench-{size}", "regulation": "gdpr"},
                               headers={"Idempotency-Key": f"evidence-bench-{size}-{args.seed}"}).raise_for_status()  # fmt: skip
            request = answer.json()
            began = time.monotonic()
            _wait_job(http, request["job_id"], f"request of {size} IDs")
            seconds = time.monotonic() - began
            done = http.get(f"/v1/deletion-requests/{request['id']}").raise_for_status().json()
            number = done["version"]
            report = http.get(f"/v1/models/{model_id}/versions/{number}/audit").raise_for_status().json()
            versions.append(version_row(report, seconds))
            forgotten.append((f"v{number} ({size} IDs)", ids))
            _log(f"version {number}: {report['verdict']} — {report['headline']}")
        comparison = compare_with_retrains(http, home, info, model_id, number, forgotten, args.retrains) \
            if args.retrains else None
        return {
            "machine": _machine(),
            "command": shlex.join(["python", "bench/evidence.py", *argv]),
            "reference_models": args.reference_models,
            "seed": args.seed,
            "versions": versions,
            "tuning": tuned,
            "retrain_comparison": comparison,
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log_file.close()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated positive integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated positive integers, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[4, 40, 400], help="IDs per successive request (4,40,400)")
    parser.add_argument("--reference-models", type=int, default=0, choices=[0, 2, 4, 8, 16],
                        help="reference models to train first, for RMIA (0 = the loss attack alone)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="which IDs are requested")
    parser.add_argument("--retrains", type=int, default=5,
                        help="models retrained without every forgotten sample to compare the last version with "
                             "(0 = none)")
    parser.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist", help="the IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    try:
        result = run(args, argv)
    except (BenchError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    _log(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
