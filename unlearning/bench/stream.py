"""The stream section: many small requests one after another, the workload a deletion service really has.

Per seed, `stream_requests` successive requests of `stream_fraction` of the training data each run in three
modes (full remaining data, retain-subsampled, none), AMUN-A and the baselines alike; after the last one the
union of every request is audited against a model retrained without all of it. Each request is timed, so
the speed-up over retraining is per request, the price a data subject's erasure actually costs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from unlearning.audit.evaluate import evaluate, gaps
from unlearning.audit.metrics import accuracy, predict_logits
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.specs import UnlearnConfig
from unlearning.successive import remaining, successive_unlearn
from unlearning.tuning import tune_schedule

if TYPE_CHECKING:
    from unlearning.bench.run import Bench

MODES = ("full", "subsampled", "no_retain")
_TABLE_SETTING = {"full": "amun/with-DR", "subsampled": "amun/subsampled", "no_retain": "amun/no-DR"}


def mode_config(base: UnlearnConfig, mode: str, retain_multiple: float, retain_min: int) -> UnlearnConfig:
    """`base` in one of the stream's modes (the remaining data: all of it, a per-epoch sample, none)."""
    if mode == "full":
        return dataclasses.replace(base, retain_access=True, retain_multiple=None, retain_min=None)
    if mode == "subsampled":
        return dataclasses.replace(base, retain_access=True, retain_multiple=retain_multiple, retain_min=retain_min)
    if mode == "no_retain":
        return dataclasses.replace(base, retain_access=False, retain_multiple=None, retain_min=None)
    raise ValueError(f"stream mode {mode!r} is not one of {MODES}")


def request_split(pool: np.ndarray, size: int, count: int, seed: int) -> list[np.ndarray]:
    ids = np.random.default_rng(20_000 + seed).permutation(pool)[: size * count]
    if len(ids) < size * count:
        raise ValueError(f"the pool has {len(pool)} samples, the stream needs {size * count}")
    return [ids[i * size:(i + 1) * size] for i in range(count)]


def run_stream(bench: Bench, cfg: UnlearnConfig, requests: list[np.ndarray], *, label: str,
               test: ImageSet | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Every request of the stream in order; returns the last model and what each request cost and left."""
    outcomes = successive_unlearn(bench.original, bench.data.train, requests, cfg, variant="amun_a",
                                  holdout=bench.val, progress=bench.progress(label))
    model, per_request = bench.original, []
    for outcome in outcomes:
        model = outcome.result.model
        record = {"request": outcome.index, "seconds": sum(outcome.result.seconds.values()),
                  "guard_tripped": outcome.result.guard_tripped, "epochs_run": outcome.result.epochs_run}
        if test is not None:  # how far the model has worn down so far
            record["test_acc"] = accuracy(predict_logits(model, test.x), test.y)
        per_request.append(record)
    return model, per_request


def stream_settings(bench: Bench) -> list[tuple[str, str, UnlearnConfig]]:
    """(mode, key, base config) of every stream the section runs: AMUN-A in every mode, each baseline in
    the profile's baseline modes (FT and l1-sparse need the remaining data)."""
    p = bench.p
    out = []
    for method in ("amun",) + tuple(p.stream_baselines):
        for mode in (MODES if method == "amun" else p.stream_baseline_modes):
            if mode == "no_retain" and method in ("ft", "l1_sparse"):
                continue
            cfg = mode_config(dataclasses.replace(bench.base, method=method, stop=p.stream_stop), mode,
                              p.retain_multiple, p.retain_min)
            if method == "amun" and bench.tuning is not None:
                # the mix the table's tuning chose for AMUN with the same access to D_R (the stream tunes
                # only the schedule for small requests)
                tuned = bench.tuning["schedule"].get(_TABLE_SETTING[mode], {})
                cfg = dataclasses.replace(cfg, forget_in_mix=tuned.get("forget_in_mix", cfg.forget_in_mix))
            out.append((mode, f"{method}/{mode}", cfg))
    return out


def tune_streams(bench: Bench, settings: list[tuple[str, str, UnlearnConfig]]) -> dict[str, Any]:
    """Each stream setting's (lr, step) on a tuning stream of small requests drawn from T, scored on the
    union of its requests against the model retrained without T (which never saw any of them), mean of
    runs, under the utility constraint: a schedule tuned for one large request does not carry over."""
    p, train = bench.p, bench.data.train
    size = max(1, round(p.stream_fraction * len(train)))
    requests = request_split(bench.tuning_ids, size, p.stream_tuning_requests, seed=-1)
    union = train.subset(train.positions(np.concatenate(requests)))
    reference, _ = evaluate(bench.t_retrain, union, bench.t_retain_eval, bench.val)
    choices = {}
    for mode, key, cfg in settings:
        def score(run_cfg: UnlearnConfig, key=key) -> tuple[float, float]:
            model, _ = run_stream(bench, run_cfg, requests, label=f"tune stream {key}")
            metrics, _ = evaluate(model, union, bench.t_retain_eval, bench.val)
            return gaps(metrics, reference)["avg_gap_mis"], metrics["test_acc"]

        grid = p.stream_lr_grid if cfg.retain_access else p.lr_grid_no_retain
        choice = tune_schedule(bench.original, cfg, list(grid), list(p.step_grid), forget=union, retain=union,
                               retain_eval=bench.t_retain_eval, test=bench.val, reference=reference,
                               original_test_acc=bench.original_val_acc, runs=p.stream_tuning_runs,
                               max_acc_drop=p.max_acc_drop, score=score)
        choices[key] = dataclasses.asdict(choice)
        bench.log(f"tuned stream {key}: lr {choice.lr}, step {choice.step_size}"
                  f"{'' if choice.constraint_met else ' (utility constraint NOT met)'}")
    return {"schedule": choices, "requests": len(requests), "request_size": size}


def section(bench: Bench, snap, out: dict[str, Any]) -> dict[str, Any]:
    """The stream section: tune every stream setting, then run each seed's stream."""
    settings = stream_settings(bench)
    out["stream_tuning"] = tune_streams(bench, settings)
    tuned = [(mode, key, dataclasses.replace(cfg, lr=out["stream_tuning"]["schedule"][key]["lr"],
                                             step_size=out["stream_tuning"]["schedule"][key]["step_size"]))
             for mode, key, cfg in settings]
    out["stream_runs"] = []
    for seed in bench.p.stream_seeds:
        out["stream_runs"] += stream_rows(bench, bench.pool, seed, tuned)
        snap()
    return out


def stream_rows(bench: Bench, pool: np.ndarray, seed: int, settings: list[tuple[str, str, UnlearnConfig]]
                ) -> list[dict[str, Any]]:
    """One row per (mode, method) for this seed's stream, plus the retrained model's own row."""
    p, train = bench.p, bench.data.train
    size = max(1, round(p.stream_fraction * len(train)))
    requests = request_split(pool, size, p.stream_requests, seed)
    union_ids = np.concatenate(requests)
    union = train.subset(train.positions(union_ids))
    final_retain = remaining(train, union_ids)
    retrain = bench.trained(f"retrain after the stream (seed {seed})", final_retain, seed=seed)
    retain_eval = bench.retain_eval(final_retain, seed)

    def audit(model) -> dict[str, Any]:
        return evaluate(model, union, retain_eval, bench.test_eval, rmia=bench.rmia, seed=seed)[0]

    ref = audit(retrain.model)
    base = {"seed": seed, "requests": len(requests), "request_fraction": p.stream_fraction, "request_size": size,
            "test_acc_before": accuracy(predict_logits(bench.original, bench.test_eval.x), bench.test_eval.y)}
    rows = [{**base, "mode": "full", "method": "retrain", "union": {**ref, **gaps(ref, ref)},
             "test_acc_after": ref["test_acc"], "per_request_seconds": [retrain.seconds],
             "speedup_vs_retrain": 1.0, "guard_tripped": False, "retrain_seconds": retrain.seconds}]
    for mode, key, cfg in settings:
        cfg = dataclasses.replace(cfg, seed=seed)
        entry = {**base, "mode": mode, "method": cfg.method, "setting": key, "lr": cfg.lr,
                 "step_size": cfg.step_size, "forget_in_mix": cfg.forget_in_mix, "retrain_seconds": retrain.seconds}
        try:
            model, per_request = run_stream(bench, cfg, requests, label=f"seed {seed} stream {key}",
                                            test=bench.test_eval)
        except TrainingDiverged as exc:
            bench.failures.append(f"seed {seed} stream {key}: diverged ({exc})")
            bench.log(bench.failures[-1])
            rows.append({**entry, "diverged": True})
            continue
        metrics = audit(model)
        seconds = [r["seconds"] for r in per_request]
        mean_seconds = float(np.mean(seconds))
        tripped = [r["request"] for r in per_request if r["guard_tripped"]]
        rows.append({
            **entry, "union": {**metrics, **gaps(metrics, ref)}, "test_acc_after": metrics["test_acc"],
            "per_request_seconds": seconds, "per_request": per_request,
            "speedup_vs_retrain": retrain.seconds / mean_seconds if mean_seconds > 0 else None,
            "guard_tripped": bool(tripped), "guard_tripped_requests": tripped,
        })
        bench.log(f"seed {seed} stream {key}: union gap(MIS) {rows[-1]['union']['avg_gap_mis']:.2f}, "
                  f"test acc {metrics['test_acc']:.2f}, {mean_seconds:.1f} s a request")
    return rows
