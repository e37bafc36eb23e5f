"""The stopping rule: its AUC criterion, the minimum of epochs, and the held-out accuracy guard."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from unlearning.imageset import ImageSet
from unlearning.loop import Part, Schedule, fit
from unlearning.methods import run_unlearning
from unlearning.specs import AugmentSpec, SpecError, StopConfig, UnlearnConfig
from unlearning.stopping import PARENT, StoppingRule

NOAUG = AugmentSpec(crop_padding=0, hflip=False)


def _blobs(n: int, seed: int) -> ImageSet:
    """Three overlapping Gaussian classes in 16 dimensions, shaped as 1x4x4 images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 3.0 * torch.eye(3, 16)[y] + 1.5 * torch.randn(n, 16, generator=g)
    return ImageSet(x.view(n, 1, 4, 4), y, np.array([f"{seed}-{i}" for i in range(n)]))


@pytest.fixture(scope="module")
def memorised():
    """(model, its 60 training samples, 300 unseen ones): the model fits its training set, so a
    loss-threshold attack tells them apart (AUC about 0.67) and there is something to unlearn."""
    train, holdout = _blobs(60, 0), _blobs(300, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3))
    _fit(model, [Part(train.x, train.y, augment=False)], lr=0.05, epochs=60, batch_size=20)
    return model, train, holdout


def _fit(model, parts, *, lr, epochs, batch_size=5, on_check=None, checks_per_epoch=1):
    return fit(model, parts, epochs=epochs, batch_size=batch_size, schedule=Schedule(lr, "constant"), momentum=0.9,
               weight_decay=0.0, augment=NOAUG, generator=torch.Generator().manual_seed(0), on_check=on_check,
               checks_per_epoch=checks_per_epoch)


def _recording(rule):
    """The rule as fit's hook, keeping a copy of the weights seen at each check."""
    snapshots = []

    def on_check(epoch, fraction, model):
        snapshots.append(copy.deepcopy(model.state_dict()))
        return rule(epoch, fraction, model)

    return on_check, snapshots


def _same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_guard_trips_on_collapsing_accuracy_and_restores_the_best_passing_check(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=None, max_acc_drop=1.0, checks_per_epoch=4), forget, holdout, model)
    on_check, snapshots = _recording(rule)
    # gradient ascent on D_F at a high rate, with nothing to repair it: held-out accuracy collapses
    _fit(model, [Part(forget.x, forget.y, sign=-1.0, augment=False)], lr=1.0, epochs=5, on_check=on_check,
         checks_per_epoch=4)
    assert rule.guard_tripped and rule.stopped
    assert not rule.checks[-1].passes and rule.checks[-1].acc < rule.parent_acc - 1.0
    passing = [i for i, c in enumerate(rule.checks) if c.passes]
    assert passing, "the case needs passing checks before the collapse"
    best = min(passing, key=lambda i: abs(rule.checks[i].auc - 0.5))
    assert rule.returned_point() == best
    rule.restore_best(model)
    assert _same_weights(model.state_dict(), snapshots[best])
    assert not _same_weights(model.state_dict(), snapshots[-1])


def test_guard_falls_back_to_the_parent_when_no_check_passes(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=None, max_acc_drop=0.0, checks_per_epoch=4), forget, holdout, model)
    _fit(model, [Part(forget.x, forget.y, sign=-1.0, augment=False)], lr=10.0, epochs=5, on_check=rule,
         checks_per_epoch=4)
    assert rule.guard_tripped and rule.returned_point() == PARENT
    assert not any(c.passes for c in rule.checks)
    # early in the run only a collapse stops it, at the first check that falls that far
    assert rule.checks[-1].acc < rule.parent_acc - rule.cfg.collapse_drop
    assert all(c.acc >= rule.parent_acc - rule.cfg.collapse_drop for c in rule.checks[:-1])
    rule.restore_best(model)
    assert _same_weights(model.state_dict(), parent.state_dict())


def test_the_auc_criterion_waits_for_min_epochs_full_epochs(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    # every check meets this tolerance, so only min_epochs holds the rule back
    rule = StoppingRule(StopConfig(tolerance=0.49, min_epochs=3, max_acc_drop=None, checks_per_epoch=2),
                        forget, holdout, model)
    stats = _fit(model, [Part(forget.x, forget.y, augment=False)], lr=1e-3, epochs=6, on_check=rule,
                 checks_per_epoch=2)
    assert rule.stopped and not rule.guard_tripped
    assert stats.epochs_run == 3 and len(rule.checks) == 6
    assert (rule.checks[-1].epoch, rule.checks[-1].fraction) == (2, 1.0)


def test_the_rule_does_not_stop_while_the_auc_is_far_from_half(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=0.03, min_epochs=1, checks_per_epoch=2), forget, holdout, model)
    on_check, snapshots = _recording(rule)
    stats = _fit(model, [Part(forget.x, forget.y, augment=False)], lr=1e-3, epochs=4, on_check=on_check,
                 checks_per_epoch=2)
    assert not rule.stopped and stats.epochs_run == 4 and len(rule.checks) == 8
    assert all(c.auc > 0.6 for c in rule.checks)
    rule.restore_best(model)  # no stop: the model stays as trained
    assert rule.returned_point() == 7 and _same_weights(model.state_dict(), snapshots[-1])


def test_a_guard_without_an_auc_criterion_runs_every_epoch_while_it_passes(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=None, min_epochs=1, max_acc_drop=5.0), forget, holdout, model)
    stats = _fit(model, [Part(forget.x, forget.y, augment=False)], lr=1e-3, epochs=3, on_check=rule,
                 checks_per_epoch=2)
    assert not rule.stopped and stats.epochs_run == 3 and all(c.passes for c in rule.checks)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tolerance=0.5), "tolerance must lie in"),
    (dict(min_epochs=0), "min_epochs must be at least 1"),
    (dict(max_acc_drop=-1.0), "max_acc_drop must lie in"),
    (dict(max_acc_drop=float("nan")), "max_acc_drop must lie in"),
    (dict(checks_per_epoch=0), "checks_per_epoch must be at least 1"),
    (dict(tolerance=None, max_acc_drop=None), "can never stop"),
])
def test_stop_config_refuses_bad_values(kwargs, message):
    with pytest.raises(SpecError, match=message):
        StopConfig(**kwargs)


def test_the_default_stop_config_guards_and_does_not_stop_after_the_first_epoch():
    cfg = StopConfig()
    assert cfg.min_epochs > 1 and cfg.max_acc_drop is not None and cfg.checks_per_epoch > 1


def test_an_unlearning_run_whose_guard_trips_says_so_and_keeps_held_out_accuracy(tiny_model, digits):
    forget = digits.train.subset(np.arange(30))
    cfg = UnlearnConfig(method="ga", retain_access=False, epochs=5, lr=0.5, batch_size=16, augment=NOAUG,
                        stop=StopConfig(tolerance=None, max_acc_drop=1.0, checks_per_epoch=2))
    result = run_unlearning(tiny_model, forget, None, cfg, holdout=digits.test)
    assert result.guard_tripped and result.stopped_early
    assert result.stop_trace == [c["auc"] for c in result.stop_checks]
    assert not result.stop_checks[-1]["passes"]
    from unlearning.audit.metrics import accuracy, predict_logits
    acc = accuracy(predict_logits(result.model, digits.test.x), digits.test.y)
    assert acc >= result.parent_holdout_acc - 1.0
    kept = result.stop_point
    assert kept == -1 or acc == pytest.approx(result.stop_checks[kept]["acc"])


def test_a_dip_before_min_epochs_is_not_kept_but_does_not_stop_the_run(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=None, max_acc_drop=1.0, min_epochs=3, collapse_drop=None), forget,
                        holdout, model)
    acc = iter([80.0, 95.0, 99.5])  # a dip in epoch 1, a recovery later

    def measure(m):
        return 0.6, next(acc)

    rule.measure = measure
    rule.parent_acc = 100.0
    assert rule(0, 1.0, model) is False  # 20 points down at epoch 1: a dip, no stop
    assert rule(1, 1.0, model) is False and not rule.guard_tripped
    assert rule(2, 1.0, model) is False  # 99.5 passes
    rule.restore_best(model)
    assert not rule.guard_tripped and rule.returned_point() == 2
    assert [c.passes for c in rule.checks] == [False, False, True]


def test_a_run_shorter_than_min_epochs_ending_below_the_margin_trips_the_guard_at_the_end(memorised):
    parent, forget, holdout = memorised
    model = copy.deepcopy(parent)
    rule = StoppingRule(StopConfig(tolerance=None, max_acc_drop=1.0, min_epochs=3, collapse_drop=None), forget,
                        holdout, model)
    accs = iter([99.5, 90.0])
    rule.measure = lambda m: (0.6, next(accs))
    rule.parent_acc = 100.0
    assert rule(0, 1.0, model) is False and rule(1, 1.0, model) is False
    rule.restore_best(model)
    assert rule.guard_tripped and rule.returned_point() == 0
