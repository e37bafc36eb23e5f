"""A stopping rule that needs no retrained reference, guarded by held-out accuracy.

At each check a loss-threshold attack compares the forget set with held-out samples the model never saw.
A retrained model cannot tell them apart (AUC 0.5), so unlearning stops once the attack is within
`tolerance` of 0.5, or once it has overshot (D_F now looks less familiar than unseen data, which an
attacker can detect too). That alone accepts a damaged model, whose loss is high on D_F and on unseen
data alike, so every check also measures held-out accuracy: a check passes when it is within
`max_acc_drop` points of the parent's (the model before this fine-tuning). A failing check trips the
guard and stops the run at once (without remaining data nothing would repair the model: a stream of
requests must never collapse). After a stop the model is restored to the best passing point: the passing
check whose AUC came closest to 0.5, or the parent when no check passed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from unlearning.audit.metrics import accuracy, cross_entropy_per_sample, loss_threshold_auc, predict_logits
from unlearning.imageset import ImageSet
from unlearning.specs import StopConfig

PARENT = -1  # StoppingRule.kept when the model was restored to its parent (no check passed the guard)


@dataclass(frozen=True)
class Check:
    epoch: int  # epoch index (0-based), as fit passes it
    fraction: float  # share of that epoch done (1.0 at its end)
    auc: float  # loss-threshold AUC, D_F as members vs held-out samples; 0.5 = indistinguishable
    acc: float  # held-out accuracy, percent
    passes: bool  # within the guard's margin of the parent's held-out accuracy (always, without a guard)


class StoppingRule:
    """The `on_check` hook of fit: call it with (epoch, fraction, model); True means stop now."""

    def __init__(self, cfg: StopConfig, forget: ImageSet, holdout: ImageSet, parent: nn.Module) -> None:
        if len(forget) == 0 or len(holdout) == 0:
            raise ValueError("the stopping rule needs a non-empty forget set and held-out set")
        self.cfg = cfg
        self.forget = forget
        self.holdout = holdout
        self.checks: list[Check] = []
        self.stopped = False  # the rule ended the run (AUC criterion met, or the guard tripped)
        self.guard_tripped = False
        # the parent is the passing point of last resort: its weights are kept until a check passes
        self.parent_auc, self.parent_acc = self.measure(parent)
        self.kept = PARENT  # index into checks of the best passing point so far, or PARENT
        self._best_state = copy.deepcopy(parent.state_dict())

    def measure(self, model: nn.Module) -> tuple[float, float]:
        """(forget-vs-held-out loss AUC, held-out accuracy in percent) of `model`."""
        f_loss = cross_entropy_per_sample(predict_logits(model, self.forget.x), self.forget.y.cpu())
        h_logits = predict_logits(model, self.holdout.x)
        h_y = self.holdout.y.cpu()
        return loss_threshold_auc(f_loss, cross_entropy_per_sample(h_logits, h_y)), accuracy(h_logits, h_y)

    @property
    def trace(self) -> list[float]:
        """The AUC at each check, in order."""
        return [c.auc for c in self.checks]

    def __call__(self, epoch: int, fraction: float, model: nn.Module) -> bool:
        auc, acc = self.measure(model)
        drop_ok = self.cfg.max_acc_drop is None or acc >= self.parent_acc - self.cfg.max_acc_drop
        check = Check(epoch, fraction, auc, acc, drop_ok)
        self.checks.append(check)
        if not check.passes:
            collapsed = self.cfg.collapse_drop is not None and acc < self.parent_acc - self.cfg.collapse_drop
            if collapsed or epoch + fraction >= self.cfg.min_epochs:
                self.guard_tripped = self.stopped = True
                return True
            return False  # a dip while the rate is still high: never a point to return, not yet a reason to stop
        if self.kept == PARENT or abs(auc - 0.5) < abs(self.checks[self.kept].auc - 0.5):
            self.kept = len(self.checks) - 1
            self._best_state = copy.deepcopy(model.state_dict())
        tol = self.cfg.tolerance
        if tol is None or epoch + fraction < self.cfg.min_epochs:
            return False
        self.stopped = abs(auc - 0.5) <= tol or auc < 0.5 - tol
        return self.stopped

    def restore_best(self, model: nn.Module) -> None:
        """After a stop, leave the model at the best passing point (unless it is there already).

        A run shorter than min_epochs can end on a failing check without a stop: that trips the guard too.
        Otherwise the run ended at its last epoch on a passing check, and the model stays as trained."""
        if not self.stopped and self.checks and not self.checks[-1].passes:
            self.guard_tripped = self.stopped = True
        if self.stopped and self.kept != len(self.checks) - 1:
            model.load_state_dict(self._best_state)

    def returned_point(self) -> int:
        """Index into checks of the point the model holds after restore_best, or PARENT."""
        return self.kept if self.stopped else len(self.checks) - 1
