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


# ---- the guarded reference-free rule ----

def _tune_free(monkeypatch, table, lrs, step_sizes, **kwargs):
    """tune_reference_free where a run's (loss AUC gap, held-out acc) is table[(lr, step_size, seed)] or
    table[(lr, step_size)]; the parent's held-out accuracy is 50 (zero logits predict class 0, the label of
    half the held-out samples)."""
    calls = []

    def fake_run(model, forget, retain, cfg, *, holdout=None, progress=None):
        calls.append((cfg.lr, cfg.step_size, cfg.seed))
        if progress is not None:
            progress("attack", 1, 1)
            progress("fine-tune", 5, 10)
        outcome = table.get((cfg.lr, cfg.step_size, cfg.seed), table.get((cfg.lr, cfg.step_size)))
        if outcome == DIVERGES:
            raise TrainingDiverged("the loss became nan")
        return SimpleNamespace(model=outcome)

    monkeypatch.setattr(tuning, "run_unlearning", fake_run)
    monkeypatch.setattr(tuning, "loss_auc_gap", lambda outcome, forget, holdout: outcome)
    holdout = ImageSet(torch.zeros(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), np.array(["h0", "h1", "h2", "h3"]))
    choice = tuning.tune_reference_free(nn.Flatten(), BASE, lrs, step_sizes, forget=_images(7), retain=None,
                                        holdout=holdout, **kwargs)
    return choice, calls


def test_the_reference_free_rule_keeps_the_smallest_auc_gap_whose_held_out_accuracy_the_guard_allows(monkeypatch):
    table = {
        (0.1, 1): (1.0, 48.0),  # the smallest gap, but 2 points of held-out accuracy lost against the parent's 50
        (0.05, 1, 10): (2.0, 49.5), (0.05, 1, 11): (4.0, 49.5),  # mean 3.0, within the guard
        (0.01, 1): (8.0, 50.0),
    }
    choice, calls = _tune_free(monkeypatch, table, [0.1, 0.05, 0.01], [1], max_acc_drop=1.0)
    assert (choice.lr, choice.step_size) == (0.05, 1) and choice.constraint_met
    assert choice.original_test_acc == 50.0  # the parent's held-out accuracy is the guard's reference
    assert _setting(choice, 0.05, 1).mean_gap_mis == pytest.approx(3.0)
    assert not _setting(choice, 0.1, 1).feasible and "48.00" in _setting(choice, 0.1, 1).reason
    assert sorted(calls) == sorted((lr, 1, seed) for lr in (0.1, 0.05, 0.01) for seed in (10, 11))


def test_the_reference_free_rule_rejects_a_rate_next_to_a_diverged_one(monkeypatch):
    table = {(0.1, 1): DIVERGES, (0.05, 1): (0.5, 50.0), (0.01, 1): (3.0, 50.0)}
    choice, calls = _tune_free(monkeypatch, table, [0.1, 0.05, 0.01], [1])
    assert choice.lr == 0.01
    assert _setting(choice, 0.1, 1).diverged and _setting(choice, 0.05, 1).near_divergence
    assert calls.count((0.1, 1, 10)) == 1 and (0.1, 1, 11) not in calls  # a diverged run ends its setting


def test_on_a_tie_the_reference_free_rule_takes_the_smaller_rate_then_the_smaller_step(monkeypatch):
    table = {(lr, step): (2.0, 50.0) for lr in (0.1, 0.01) for step in (1, 5)}
    choice, _ = _tune_free(monkeypatch, table, [0.1, 0.01], [5, 1])
    assert (choice.lr, choice.step_size) == (0.01, 1)


def test_without_a_feasible_setting_the_reference_free_rule_flags_the_least_damaging(monkeypatch):
    table = {(0.1, 1): (0.5, 40.0), (0.01, 1): (2.0, 47.0)}
    choice, _ = _tune_free(monkeypatch, table, [0.1, 0.01], [1])
    assert not choice.constraint_met and choice.lr == 0.01


def test_the_reference_free_rule_reports_one_tune_phase_that_only_moves_forward(monkeypatch):
    seen = []
    table = {(0.1, 1): (1.0, 50.0), (0.01, 1): (2.0, 50.0)}
    _tune_free(monkeypatch, table, [0.1, 0.01], [1], runs=2, progress=lambda *a: seen.append(a))
    assert {phase for phase, _, _ in seen} == {"tune"}
    fractions = [done / total for _, done, total in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) == 4 * 3  # 3 reports a run


def test_runs_finished_before_a_resume_are_not_run_again_and_new_ones_are_reported(monkeypatch):
    table = {(0.1, 1): (1.0, 50.0), (0.01, 1): (2.0, 50.0)}
    done = {(0.1, 1, 10): (0.5, 50.0), (0.1, 1, 11): (0.5, 50.0), (0.05, 1, 10): None}  # None: it diverged
    reported = []
    choice, calls = _tune_free(monkeypatch, table, [0.1, 0.05, 0.01], [1], done=done,
                               on_run=lambda cfg, outcome: reported.append(((cfg.lr, cfg.seed), outcome)))
    assert sorted(calls) == [(0.01, 1, 10), (0.01, 1, 11)]
    assert reported == [((0.01, 10), (2.0, 50.0)), ((0.01, 11), (2.0, 50.0))]
    assert _setting(choice, 0.1, 1).mean_gap_mis == 0.5 and _setting(choice, 0.05, 1).diverged
    assert choice.lr == 0.1


def test_a_diverged_run_is_reported_as_none(monkeypatch):
    reported = []
    _tune_free(monkeypatch, {(0.1, 1): DIVERGES, (0.01, 1): (1.0, 50.0)}, [0.1, 0.01], [1],
               on_run=lambda cfg, outcome: reported.append((cfg.lr, outcome)))
    assert reported[0] == (0.1, None) and len(reported) == 3  # the diverged setting's second run is skipped


def test_the_loss_auc_gap_is_zero_for_a_model_that_treats_forget_and_held_out_alike():
    forget, holdout = _images(5), _images(6)
    gap, acc = tuning.loss_auc_gap(nn.Flatten(), forget, holdout)  # equal logits: equal losses, AUC 50
    assert gap == pytest.approx(0.0) and acc == 100.0


def test_the_loss_auc_gap_of_a_model_with_non_finite_outputs_is_a_divergence():
    class Nan(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 3), float("nan"))

    with pytest.raises(TrainingDiverged):
        tuning.loss_auc_gap(Nan(), _images(3), _images(3))


def test_the_reference_free_rule_runs_on_a_tiny_model(tiny_model, digits):
    forget = digits.train.subset(np.arange(20))
    holdout = digits.test.subset(np.arange(100))
    base = UnlearnConfig(method="ft", epochs=1, batch_size=64, seed=3,
                         augment=dataclasses.replace(BASE.augment, crop_padding=0, hflip=False))
    choice = tuning.tune_reference_free(tiny_model, base, [0.01, 0.001], [1], forget=forget,
                                        retain=digits.train.subset(np.arange(20, 120)), holdout=holdout, runs=1)
    assert choice.lr in (0.01, 0.001) and len(choice.grid) == 2
    assert all(0.0 <= s.mean_gap_mis <= 50.0 and 0.0 <= s.mean_test_acc <= 100.0 for s in choice.grid)
    json.dumps(dataclasses.asdict(choice), allow_nan=False)


def test_tuning_against_a_retrained_reference_scores_the_gap_and_reports_one_tune_phase(monkeypatch):
    seen = []

    def fake_run(model, forget, retain, cfg, *, holdout=None, progress=None):
        progress("fine-tune", 1, 1)
        return SimpleNamespace(model={0.1: (3.0, 100.0), 0.01: (1.0, 100.0)}[cfg.lr])

    monkeypatch.setattr(tuning, "run_unlearning", fake_run)
    monkeypatch.setattr(tuning, "evaluate", lambda outcome, *_: ({"gap": outcome[0], "test_acc": outcome[1]}, None))
    monkeypatch.setattr(tuning, "gaps", lambda metrics, reference: {"avg_gap_mis": metrics["gap"]})
    choice = tuning.tune_against_retrain(nn.Flatten(), BASE, [0.1, 0.01], [1], forget=_images(7), retain=None,
                                         retain_eval=_images(3), holdout=_images(3), reference={"mis": 1.0},
                                         progress=lambda *a: seen.append(a))
    assert choice.lr == 0.01 and choice.constraint_met and _setting(choice, 0.1, 1).avg_gap_mis == [3.0, 3.0]
    assert {phase for phase, _, _ in seen} == {"tune"} and seen[-1][1] == seen[-1][2]


def _choice(score: float, acc: float, *, met: bool = True):
    from unlearning.tuning import ScheduleChoice, ScheduleSetting

    setting = ScheduleSetting(0.01, 1, [0], [score], [acc], score, acc, diverged=False, feasible=met)
    return ScheduleChoice(method="amun", retain_access=True, subsampled=False, stopping=False, lrs=[0.01],
                          step_sizes=[1], runs=1, base_seed=0, original_test_acc=90.0, max_acc_drop=1.0,
                          tuning_forget_size=10, grid=[setting], lr=0.01, step_size=1, constraint_met=met)


def test_best_of_prefers_a_choice_that_met_the_constraint_then_the_smaller_score_then_the_first():
    from unlearning.tuning import best_of

    assert best_of({True: _choice(3.0, 89.5), False: _choice(1.0, 89.5)})[0] is False  # smaller score
    assert best_of({True: _choice(3.0, 89.5), False: _choice(1.0, 80.0, met=False)})[0] is True  # constraint first
    assert best_of({True: _choice(2.0, 89.0), False: _choice(2.0, 89.5)})[0] is False  # then higher accuracy
    assert best_of({True: _choice(2.0, 89.5), False: _choice(2.0, 89.5)})[0] is True  # a tie: the first given
    with pytest.raises(ValueError, match="no tuned schedules"):
        best_of({})
