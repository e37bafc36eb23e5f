"""Tuning the rate with the schedule: mean of runs, the utility constraint, and settings next to divergence.

Unlearning and evaluation are replaced by a table of outcomes per (lr, step_size, seed), so each rule of
the choice is tested on its own, in milliseconds."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from unlearning import tuning
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.specs import UnlearnConfig

BASE = UnlearnConfig(method="amun", retain_access=False, seed=10)
ORIGINAL_ACC = 90.0
DIVERGES = "diverges"


def _tune(monkeypatch, table, lrs, step_sizes, **kwargs):
    """tune_schedule where a run's (avg_gap_mis, test_acc) is table[(lr, step_size, seed)], or
    table[(lr, step_size)] for every seed; DIVERGES raises as a diverged run does."""
    calls = []

    def fake_run(model, forget, retain, cfg, *, holdout=None, progress=None):
        calls.append((cfg.lr, cfg.step_size, cfg.seed))
        outcome = table.get((cfg.lr, cfg.step_size, cfg.seed), table.get((cfg.lr, cfg.step_size)))
        if outcome == DIVERGES:
            raise TrainingDiverged("the loss became nan")
        return SimpleNamespace(model=outcome)

    monkeypatch.setattr(tuning, "run_unlearning", fake_run)
    monkeypatch.setattr(tuning, "evaluate", lambda outcome, *_: ({"gap": outcome[0], "test_acc": outcome[1]}, None))
    monkeypatch.setattr(tuning, "gaps", lambda metrics, reference: {"avg_gap_mis": metrics["gap"]})
    kwargs.setdefault("original_test_acc", ORIGINAL_ACC)
    choice = tuning.tune_schedule(nn.Flatten(), BASE, lrs, step_sizes, forget=_images(7), retain=_images(3),
                                  retain_eval=_images(3), test=_images(3), reference={}, **kwargs)
    return choice, calls


def _images(n: int) -> ImageSet:
    return ImageSet(torch.zeros(n, 1, 8, 8), torch.zeros(n, dtype=torch.long), np.array([str(i) for i in range(n)]))


def _setting(choice, lr, step):
    return next(s for s in choice.grid if (s.lr, s.step_size) == (lr, step))


def test_settings_are_scored_on_the_mean_of_their_runs(monkeypatch):
    table = {
        (0.1, 1, 10): (0.2, 90.0), (0.1, 1, 11): (3.0, 90.0),  # the best single run, a poor mean (1.6)
        (0.01, 1): (1.0, 90.0),  # steady: mean 1.0
    }
    choice, calls = _tune(monkeypatch, table, [0.1, 0.01], [1])
    assert (choice.lr, choice.step_size) == (0.01, 1) and choice.constraint_met
    assert _setting(choice, 0.1, 1).avg_gap_mis == [0.2, 3.0]
    assert _setting(choice, 0.1, 1).mean_gap_mis == pytest.approx(1.6)
    assert sorted(calls) == [(0.01, 1, 10), (0.01, 1, 11), (0.1, 1, 10), (0.1, 1, 11)]  # seeds base.seed + k


def test_the_utility_constraint_excludes_the_best_scoring_setting_when_it_costs_accuracy(monkeypatch):
    table = {
        (0.1, 5): (0.5, 88.5),  # the smallest gap, but 1.5 points of test accuracy lost
        (0.1, 1): (1.2, 89.5),  # 0.5 points lost: allowed
        (0.01, 1): (2.0, 90.0), (0.01, 5): (1.5, 90.0),
    }
    choice, _ = _tune(monkeypatch, table, [0.1, 0.01], [1, 5], max_acc_drop=1.0)
    assert (choice.lr, choice.step_size) == (0.1, 1)
    excluded = _setting(choice, 0.1, 5)
    assert not excluded.feasible and "mean test accuracy 88.50" in excluded.reason
    assert _setting(choice, 0.1, 1).feasible and _setting(choice, 0.1, 1).reason is None


def test_a_setting_next_to_a_divergence_is_rejected(monkeypatch):
    table = {
        (0.1, 1): DIVERGES,
        (0.05, 1): (0.5, 90.0),  # the best score, one rate step from divergence
        (0.01, 1): (1.0, 90.0),
        (0.1, 5): (2.0, 90.0), (0.05, 5): (1.5, 90.0), (0.01, 5): (3.0, 90.0),  # nothing diverged at step 5
    }
    choice, _ = _tune(monkeypatch, table, [0.01, 0.1, 0.05], [1, 5])  # the order of the grid does not matter
    assert (choice.lr, choice.step_size) == (0.01, 1)
    diverged, near = _setting(choice, 0.1, 1), _setting(choice, 0.05, 1)
    assert diverged.diverged and diverged.mean_gap_mis is None and diverged.reason == "diverged"
    assert near.near_divergence and not near.feasible and "next to divergence: lr 0.1" in near.reason
    assert _setting(choice, 0.05, 5).feasible and _setting(choice, 0.01, 1).feasible


def test_one_diverged_run_makes_the_setting_diverged(monkeypatch):
    table = {(0.1, 1, 10): (0.1, 90.0), (0.1, 1, 11): DIVERGES, (0.01, 1): (1.0, 90.0)}
    choice, _ = _tune(monkeypatch, table, [0.1, 0.01], [1])
    assert _setting(choice, 0.1, 1).diverged and choice.lr == 0.01


def test_without_a_feasible_setting_the_least_damaging_is_chosen_and_flagged(monkeypatch):
    table = {(0.1, 1): (0.5, 80.0), (0.01, 1): (2.0, 87.0), (0.001, 1): (3.0, 86.0)}
    choice, _ = _tune(monkeypatch, table, [0.1, 0.01, 0.001], [1])
    assert not choice.constraint_met and (choice.lr, choice.step_size) == (0.01, 1)
    assert not any(s.feasible for s in choice.grid)


def test_every_setting_diverging_is_an_error(monkeypatch):
    with pytest.raises(TrainingDiverged, match="every setting"):
        _tune(monkeypatch, {(0.1, 1): DIVERGES, (0.1, 5): DIVERGES}, [0.1], [1, 5])


def test_the_choice_and_its_whole_grid_serialise_to_json(monkeypatch):
    table = {(0.1, 1): DIVERGES, (0.01, 1): (1.0, 90.0)}
    choice, _ = _tune(monkeypatch, table, [0.1, 0.01], [1])
    data = json.loads(json.dumps(dataclasses.asdict(choice), allow_nan=False))
    assert data["lr"] == 0.01 and len(data["grid"]) == 2 and data["grid"][0]["reason"] == "diverged"
    assert data["original_test_acc"] == ORIGINAL_ACC and data["runs"] == 2 and data["tuning_forget_size"] == 7


def test_the_original_accuracy_is_measured_when_not_given(monkeypatch):
    # nn.Flatten of 8x8 zero images: every row of logits is 0, its argmax class 0, the label of every sample
    choice, _ = _tune(monkeypatch, {(0.1, 1): (1.0, 98.5)}, [0.1], [1], original_test_acc=None)
    assert choice.original_test_acc == 100.0 and not choice.constraint_met  # 1.5 points below 100


@pytest.mark.parametrize("lrs, steps, runs, message", [
    ([], [1], 2, "grid is empty"),
    ([0.1, 0.1], [1], 2, "repeats a value"),
    ([0.1], [0], 2, "at least 1 epoch"),
    ([0.1], [1], 0, "runs must be at least 1"),
])
def test_a_bad_grid_is_refused(monkeypatch, lrs, steps, runs, message):
    with pytest.raises(ValueError, match=message):
        _tune(monkeypatch, {}, lrs, steps, runs=runs)


def test_a_scorer_replaces_the_one_request_run(monkeypatch):
    def no_single_request(*args, **kwargs):
        raise AssertionError("the one-request run must not be used when a scorer is given")

    monkeypatch.setattr(tuning, "run_unlearning", no_single_request)
    scored = []

    def stream_score(cfg):
        scored.append((cfg.lr, cfg.seed))
        return (1.0 if cfg.lr == 0.01 else 3.0), ORIGINAL_ACC

    choice = tuning.tune_schedule(nn.Flatten(), BASE, [0.1, 0.01], [1], forget=_images(7), retain=_images(3),
                                  retain_eval=_images(3), test=_images(3), reference={},
                                  original_test_acc=ORIGINAL_ACC, score=stream_score)
    assert scored == [(0.1, 10), (0.1, 11), (0.01, 10), (0.01, 11)]
    assert (choice.lr, choice.step_size) == (0.01, 1)
