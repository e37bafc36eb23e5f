"""The paper's tuning procedure: choose each method's learning rate (tune_lr), or its rate and StepLR step
together (tune_schedule), on a separate forget subset, against a model retrained without that subset, by
the smallest average gap. Where no retrain is affordable, tune_reference_free runs the same grid scored by
a loss-threshold attack against held-out data, guarded by held-out accuracy. Run once per model; the
chosen values are stored with the grid and the scores that chose them, so a hyper-parameter is data with
a provenance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn as nn

from unlearning.audit.evaluate import evaluate, gaps
from unlearning.audit.metrics import accuracy, cross_entropy_per_sample, loss_threshold_auc, predict_logits
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.methods import run_unlearning
from unlearning.progress import Progress, report
from unlearning.specs import UnlearnConfig


@dataclass
class LrChoice:
    method: str
    retain_access: bool
    subsampled: bool
    grid: list[float]
    avg_gap_mis: list[float]  # one per grid value, measured on the tuning subset (inf: training diverged)
    lr: float  # the chosen value
    tuning_forget_size: int


def tune_lr(
    model: nn.Module,
    base: UnlearnConfig,
    grid: list[float],
    *,
    forget: ImageSet,
    retain: ImageSet,
    retain_eval: ImageSet,
    test: ImageSet,
    reference: dict[str, float],
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
) -> LrChoice:
    """Try every lr of `grid` for `base`'s method and setting; keep the one closest to `reference`.

    `forget` is the tuning subset (never an evaluated one), `reference` the metrics of a model retrained
    without it, measured with the same `retain_eval` and `test` sets.
    """
    if not grid:
        raise ValueError("the learning-rate grid is empty")
    scores = []
    for lr in grid:
        cfg = dataclasses.replace(base, lr=lr)
        try:
            result = run_unlearning(model, forget, retain if cfg.retain_access else None, cfg,
                                    holdout=holdout, progress=progress)
            metrics, _ = evaluate(result.model, forget, retain_eval, test)
        except TrainingDiverged:
            scores.append(float("inf"))
            continue
        scores.append(gaps(metrics, reference)["avg_gap_mis"])
    if all(np.isinf(scores)):
        raise TrainingDiverged(f"{base.method}: training diverged at every learning rate of {list(grid)}")
    best = int(np.argmin(scores))
    return LrChoice(base.method, base.retain_access, base.retain_multiple is not None, list(grid), scores,
                    grid[best], len(forget))


K = TypeVar("K", bound=Hashable)
Scorer = Callable[[UnlearnConfig], tuple[float, float]]  # one run of a setting -> (avg_gap_mis, test_acc)


@dataclass
class ScheduleSetting:
    """One (lr, step_size) of the grid, run once per seed."""

    lr: float
    step_size: int
    seeds: list[int]  # the runs done, in order; a diverged run ends the setting's runs
    avg_gap_mis: list[float]  # per finished run
    test_acc: list[float]  # per finished run, percent, on the tuning test set (the validation half)
    mean_gap_mis: float | None  # None when a run diverged
    mean_test_acc: float | None
    diverged: bool
    near_divergence: bool = False  # the next-larger rate with the same step diverged
    feasible: bool = False
    reason: str | None = None  # why it is infeasible; None when feasible


@dataclass
class ScheduleChoice:
    """The chosen (lr, step_size) with the whole grid and what it was measured on (dataclasses.asdict -> JSON)."""

    method: str
    retain_access: bool
    subsampled: bool
    stopping: bool  # the runs used the stopping rule (base.stop)
    lrs: list[float]
    step_sizes: list[int]
    runs: int  # runs per setting, seeds base_seed + k
    base_seed: int
    original_test_acc: float  # the utility constraint's reference, percent
    max_acc_drop: float  # a setting may lose at most this many points of mean test accuracy against it
    tuning_forget_size: int
    grid: list[ScheduleSetting]  # every setting, in the order tried (step sizes outer, rates inner)
    lr: float  # the choice
    step_size: int
    # False when no setting met the constraints: the choice is then the non-diverged setting with the
    # smallest accuracy drop, and a report must say that the utility constraint could not be met
    constraint_met: bool


def tune_schedule(
    model: nn.Module,
    base: UnlearnConfig,
    lrs: list[float],
    step_sizes: list[int],
    *,
    forget: ImageSet,
    retain: ImageSet,
    retain_eval: ImageSet,
    test: ImageSet,
    reference: dict[str, float],
    original_test_acc: float | None = None,
    runs: int = 2,
    max_acc_drop: float = 1.0,
    holdout: ImageSet | None = None,
    progress: Progress | None = None,
    score: Scorer | None = None,
) -> ScheduleChoice:
    """Try every (lr, step_size) for `base`'s method and setting, `runs` times each (seeds base.seed + k);
    keep the feasible one with the smallest mean average gap to `reference`.

    `score` replaces the one-request run (unlearn `forget`, measure its gap to `reference`): the stream
    benchmark scores a setting on a whole stream of small requests instead.

    The schedule matters as much as the rate (AMUN.md section 9), and one run's gap is noise at tuning
    size, so settings are scored on the mean of their runs. A setting is infeasible when
    - a run diverged, or the setting with the next-larger rate (same step) diverged: a rate that close to
      divergence may diverge on the real forget set or another seed;
    - its mean accuracy on `test` (the validation half) is more than `max_acc_drop` points below
      `original_test_acc` (measured from `model` on `test` when not given): a gap can look good on a
      damaged model.
    When no setting is feasible the least damaging non-diverged one is chosen and `constraint_met` is
    False (the benchmark must still run, and the report says so); when every setting diverged it raises.
    """
    if not lrs or not step_sizes:
        raise ValueError(f"the schedule grid is empty: lrs {list(lrs)}, step_sizes {list(step_sizes)}")
    if len(set(lrs)) != len(lrs) or len(set(step_sizes)) != len(step_sizes):
        raise ValueError(f"the schedule grid repeats a value: lrs {list(lrs)}, step_sizes {list(step_sizes)}")
    if min(step_sizes) < 1:
        raise ValueError(f"step sizes must be at least 1 epoch, got {list(step_sizes)}")
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if original_test_acc is None:
        original_test_acc = accuracy(predict_logits(model, test.x), test.y)
    grid = []
    for step in step_sizes:
        for lr in lrs:
            grid.append(_run_setting(model, dataclasses.replace(base, lr=lr, step_size=step), runs, forget=forget,
                                     retain=retain, retain_eval=retain_eval, test=test, reference=reference,
                                     holdout=holdout, progress=progress, score=score))
    if all(s.diverged for s in grid):
        raise TrainingDiverged(f"{base.method}: training diverged at every setting of lrs {list(lrs)} "
                               f"x step sizes {list(step_sizes)}")
    _mark_feasible(grid, original_test_acc, max_acc_drop)
    feasible = [s for s in grid if s.feasible]
    if feasible:
        best = min(feasible, key=lambda s: s.mean_gap_mis)
    else:  # the least damaging setting that ran, away from divergence where one is; ties: the smaller gap
        ran = [s for s in grid if not s.diverged]
        pool = [s for s in ran if not s.near_divergence] or ran
        best = min(pool, key=lambda s: (-s.mean_test_acc, s.mean_gap_mis))
    return ScheduleChoice(
        method=base.method, retain_access=base.retain_access, subsampled=base.retain_multiple is not None,
        stopping=base.stop is not None, lrs=list(lrs), step_sizes=list(step_sizes), runs=runs,
        base_seed=base.seed, original_test_acc=original_test_acc, max_acc_drop=max_acc_drop,
        tuning_forget_size=len(forget), grid=grid, lr=best.lr, step_size=best.step_size,
        constraint_met=bool(feasible),
    )


def _run_setting(model, cfg: UnlearnConfig, runs: int, *, forget, retain, retain_eval, test, reference,
                 holdout, progress, score: Scorer | None = None) -> ScheduleSetting:
    def one_request(run_cfg: UnlearnConfig) -> tuple[float, float]:
        result = run_unlearning(model, forget, retain if run_cfg.retain_access else None, run_cfg,
                                holdout=holdout, progress=progress)
        metrics, _ = evaluate(result.model, forget, retain_eval, test)
        return gaps(metrics, reference)["avg_gap_mis"], metrics["test_acc"]

    seeds, scores, accs = [], [], []
    for k in range(runs):
        run_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
        seeds.append(run_cfg.seed)
        try:
            gap, acc = (score or one_request)(run_cfg)
        except TrainingDiverged:
            return ScheduleSetting(cfg.lr, cfg.step_size, seeds, scores, accs, None, None, diverged=True)
        scores.append(gap)
        accs.append(acc)
    return ScheduleSetting(cfg.lr, cfg.step_size, seeds, scores, accs, float(np.mean(scores)), float(np.mean(accs)),
                           diverged=False)


def best_of(choices: Mapping[K, ScheduleChoice]) -> tuple[K, ScheduleChoice]:
    """The best of several tuned schedules of one method that differ in something the grid does not vary
    (AMUN's mix, with or without D_F): one that met the utility constraint first, then the smaller mean
    score of its chosen setting, then the higher accuracy; on a tie the first given (the default) wins."""
    if not choices:
        raise ValueError("no tuned schedules to choose from")

    def rank(item: tuple[K, ScheduleChoice]) -> tuple[bool, float, float]:
        choice = item[1]
        best = next(g for g in choice.grid if g.lr == choice.lr and g.step_size == choice.step_size)
        score = math.inf if best.mean_gap_mis is None else best.mean_gap_mis
        acc = -math.inf if best.mean_test_acc is None else best.mean_test_acc
        return (not choice.constraint_met, score, -acc)

    return min(choices.items(), key=rank)


def _mark_feasible(grid: list[ScheduleSetting], original_test_acc: float, max_acc_drop: float) -> None:
    diverged = {(s.lr, s.step_size) for s in grid if s.diverged}
    for s in grid:
        larger = [t.lr for t in grid if t.step_size == s.step_size and t.lr > s.lr]
        s.near_divergence = bool(larger) and (min(larger), s.step_size) in diverged
        if s.diverged:
            s.reason = "diverged"
        elif s.near_divergence:
            s.reason = f"next to divergence: lr {min(larger)} with the same step diverged"
        elif s.mean_test_acc < original_test_acc - max_acc_drop:
            s.reason = (f"mean test accuracy {s.mean_test_acc:.2f} is more than {max_acc_drop} points below "
                        f"the original's {original_test_acc:.2f}")
        s.feasible = s.reason is None


# ---- the guarded reference-free rule: the same grid, scored without a retrained model ----

# what the reference-free rule scores a run by: |loss-threshold AUC (forget vs held-out) - 50|, in percent
# points. In its ScheduleChoice, avg_gap_mis and mean_gap_mis hold this score, and test_acc, mean_test_acc
# and original_test_acc are accuracies on the held-out set (the parent's for the last).
REFERENCE_FREE_METRIC = "loss_auc_gap"
RETRAIN_METRIC = "avg_gap_mis"  # tune_schedule's: the average gap to the retrained reference, MIS-based
# a run's share of the progress bar before its fine-tuning starts (attack, saliency mask)
_PREPARE_SHARE = 0.1

RunKey = tuple[float, int, int]  # (lr, step_size, seed) of one run of a setting
RunOutcome = tuple[float, float] | None  # (score, accuracy) of a finished run; None: it diverged
# called after every run with its config and outcome: a caller can keep the outcome (and stop between runs)
OnRun = Callable[[UnlearnConfig, RunOutcome], None]


def loss_auc_gap(model: nn.Module, forget: ImageSet, holdout: ImageSet) -> tuple[float, float]:
    """(|loss-threshold AUC of `forget` vs `holdout` - 50|, accuracy on `holdout`), both in percent.

    A retrained model cannot tell its forget set from unseen data (AUC 50); the stopping rule measures the
    same attack at its checks. Non-finite outputs mean the run diverged."""
    f_logits = predict_logits(model, forget.x)
    h_logits = predict_logits(model, holdout.x)
    if not (torch.isfinite(f_logits).all() and torch.isfinite(h_logits).all()):
        raise TrainingDiverged("the model's outputs are not finite: its training diverged")
    h_y = holdout.y.cpu()
    f_loss = cross_entropy_per_sample(f_logits, forget.y.cpu())
    auc = loss_threshold_auc(f_loss, cross_entropy_per_sample(h_logits, h_y))
    return abs(100.0 * auc - 50.0), accuracy(h_logits, h_y)


def tune_reference_free(
    model: nn.Module,
    base: UnlearnConfig,
    lrs: list[float],
    step_sizes: list[int],
    *,
    forget: ImageSet,
    retain: ImageSet | None,
    holdout: ImageSet,
    runs: int = 2,
    max_acc_drop: float = 1.0,
    progress: Progress | None = None,
    done: Mapping[RunKey, RunOutcome] | None = None,
    on_run: OnRun | None = None,
) -> ScheduleChoice:
    """tune_schedule's grid and rules without a retrained reference: every (lr, step_size) is run `runs` times
    (seeds base.seed + k) on the tuning subset `forget` and scored by the mean loss_auc_gap against
    `holdout`; the feasible setting with the smallest mean score is chosen (ties: the smaller lr, then the
    smaller step size, the gentler change).

    The AUC alone accepts a damaged model (high loss on D_F and on unseen data alike), so the guard is the
    constraint: a setting is infeasible when its mean held-out accuracy is more than `max_acc_drop` points
    below the parent's (`model` on `holdout`), when a run diverged, or when the next-larger rate with the
    same step diverged. Without a feasible setting the least damaging one is chosen and constraint_met is
    False, as in tune_schedule. Progress is one phase, "tune", over the whole grid.

    `done` holds outcomes of runs finished earlier (a job that was handed back and resumed), which are not
    run again; `on_run` is told every new outcome.
    """
    if len(holdout) == 0:
        raise ValueError("the reference-free rule needs a non-empty held-out set")
    parent_acc = accuracy(predict_logits(model, holdout.x), holdout.y)
    score = _grid_scorer(model, base, lrs, step_sizes, runs, forget=forget, retain=retain, holdout=holdout,
                         progress=progress, measure=lambda unlearned: loss_auc_gap(unlearned, forget, holdout),
                         done=done, on_run=on_run)
    choice = tune_schedule(model, base, lrs, step_sizes, forget=forget, retain=retain, retain_eval=holdout,
                           test=holdout, reference={}, original_test_acc=parent_acc, runs=runs,
                           max_acc_drop=max_acc_drop, holdout=holdout, progress=progress, score=score)
    feasible = [s for s in choice.grid if s.feasible]
    if feasible:  # tune_schedule breaks ties by grid order; here the gentler setting wins
        best = min(feasible, key=lambda s: (s.mean_gap_mis, s.lr, s.step_size))
        choice = dataclasses.replace(choice, lr=best.lr, step_size=best.step_size)
    return choice


def tune_against_retrain(
    model: nn.Module,
    base: UnlearnConfig,
    lrs: list[float],
    step_sizes: list[int],
    *,
    forget: ImageSet,
    retain: ImageSet | None,
    retain_eval: ImageSet,
    holdout: ImageSet,
    reference: dict[str, float],
    runs: int = 2,
    max_acc_drop: float = 1.0,
    progress: Progress | None = None,
    done: Mapping[RunKey, RunOutcome] | None = None,
    on_run: OnRun | None = None,
) -> ScheduleChoice:
    """tune_schedule itself (the paper's procedure: the gap to `reference`, the metrics of a model retrained
    without `forget`), with `holdout` as its validation set, and one "tune" progress phase over the grid;
    `done` and `on_run` as in tune_reference_free."""
    def measure(unlearned: nn.Module) -> tuple[float, float]:
        metrics, _ = evaluate(unlearned, forget, retain_eval, holdout)
        return gaps(metrics, reference)["avg_gap_mis"], metrics["test_acc"]

    score = _grid_scorer(model, base, lrs, step_sizes, runs, forget=forget, retain=retain, holdout=holdout,
                         progress=progress, measure=measure, done=done, on_run=on_run)
    return tune_schedule(model, base, lrs, step_sizes, forget=forget, retain=retain, retain_eval=retain_eval,
                         test=holdout, reference=reference, runs=runs, max_acc_drop=max_acc_drop, holdout=holdout,
                         progress=progress, score=score)


def _grid_scorer(model, base: UnlearnConfig, lrs, step_sizes, runs: int, *, forget, retain, holdout, progress,
                 measure, done: Mapping[RunKey, RunOutcome] | None, on_run: OnRun | None) -> Scorer:
    """tune_schedule's scorer: one run of a setting on `forget`, measured by `measure(unlearned model)`, its
    progress reported as its share of the grid (step sizes outer, rates inner, seeds innermost); a run in
    `done` is not run again."""
    n_runs = len(lrs) * len(step_sizes) * max(runs, 1)

    def score(cfg: UnlearnConfig) -> tuple[float, float]:
        position = (step_sizes.index(cfg.step_size) * len(lrs) + lrs.index(cfg.lr)) * runs + cfg.seed - base.seed
        key = (cfg.lr, cfg.step_size, cfg.seed)
        if done is not None and key in done:
            outcome = done[key]
        else:
            try:
                result = run_unlearning(model, forget, retain if cfg.retain_access else None, cfg, holdout=holdout,
                                        progress=_within_run(progress, position, n_runs))
                outcome = measure(result.model)
            except TrainingDiverged:
                outcome = None
            if on_run is not None:
                on_run(cfg, outcome)
        report(progress, "tune", 1000 * (position + 1), 1000 * n_runs)
        if outcome is None:
            raise TrainingDiverged(f"lr {cfg.lr}, step size {cfg.step_size}, seed {cfg.seed} diverged")
        return outcome

    return score


def _within_run(progress: Progress | None, position: int, n_runs: int) -> Progress | None:
    """A run's own progress as part of the whole grid's: preparation first, then its fine-tuning."""
    if progress is None:
        return None

    def inner(phase: str, done: int, total: int) -> None:
        fraction = done / total if total > 0 else 1.0
        if phase == "fine-tune":
            within = _PREPARE_SHARE + (1 - _PREPARE_SHARE) * fraction
        else:
            within = _PREPARE_SHARE * fraction
        report(progress, "tune", round(1000 * (position + within)), 1000 * n_runs)

    return inner
