"""A stopping rule that needs no retrained reference.

After each fine-tuning epoch a loss-threshold attack compares the forget set with held-out samples the
model never saw. A retrained model cannot tell them apart (AUC 0.5), so unlearning stops once the attack
is within `tolerance` of 0.5, or once it has overshot (D_F now looks less familiar than unseen data,
which an attacker can detect too); the model then returned is the epoch closest to 0.5.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from unlearning.audit.metrics import cross_entropy_per_sample, loss_threshold_auc, predict_logits
from unlearning.imageset import ImageSet
from unlearning.specs import StopConfig


class StoppingRule:
    def __init__(self, cfg: StopConfig, forget: ImageSet, holdout: ImageSet) -> None:
        if len(forget) == 0 or len(holdout) == 0:
            raise ValueError("the stopping rule needs a non-empty forget set and held-out set")
        self.cfg = cfg
        self.forget = forget
        self.holdout = holdout
        self.trace: list[float] = []  # AUC after each epoch
        self.stopped = False
        self._best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    def auc(self, model: nn.Module) -> float:
        f_loss = cross_entropy_per_sample(predict_logits(model, self.forget.x), self.forget.y.cpu())
        h_loss = cross_entropy_per_sample(predict_logits(model, self.holdout.x), self.holdout.y.cpu())
        return loss_threshold_auc(f_loss, h_loss)

    def __call__(self, epoch: int, model: nn.Module) -> bool:
        auc = self.auc(model)
        self.trace.append(auc)
        distance = abs(auc - 0.5)
        if self._best is None or distance < self._best[0]:
            self._best = (distance, epoch, copy.deepcopy(model.state_dict()))
        if epoch + 1 < self.cfg.min_epochs:
            return False
        if distance <= self.cfg.tolerance or auc < 0.5 - self.cfg.tolerance:
            self.stopped = True
        return self.stopped

    def restore_best(self, model: nn.Module) -> None:
        """After a stop, leave the model at the epoch whose AUC came closest to 0.5."""
        if self.stopped and self._best is not None and self._best[1] != len(self.trace) - 1:
            model.load_state_dict(self._best[2])
