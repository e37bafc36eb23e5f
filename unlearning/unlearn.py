"""What every unlearning method shares: its result, the fine-tuning call, the remaining-data part and
the saliency mask of SalUn.

Every method has the signature of `Unlearner`: it takes the model to unlearn (changed in place), the
forget set D_F, the remaining set D_R (None without retain access), its config, and optionally a
held-out set for the stopping rule; it returns an `UnlearnResult`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from unlearning.imageset import ImageSet
from unlearning.loop import EpochStartHook, FitStats, Part, Schedule, fit
from unlearning.progress import Progress, report
from unlearning.specs import UnlearnConfig
from unlearning.stopping import StoppingRule
from unlearning.train import seeded_generator


@dataclass
class UnlearnResult:
    model: nn.Module
    seconds: dict[str, float]  # wall seconds per phase: "attack", "fine-tune"
    samples_seen: int = 0  # fine-tuning forward+backward passes over single samples
    attack_passes: int = 0  # forward+backward passes over single samples spent building D_A
    epochs_run: int = 0
    stopped_early: bool = False  # the stopping rule ended the run (its AUC criterion, or the guard)
    stop_trace: list[float] = field(default_factory=list)  # loss-threshold AUC at each check of the stopping rule
    # the stopping rule's checks in order: epoch (0-based), fraction of it done, auc, held-out acc, passes
    stop_checks: list[dict[str, Any]] = field(default_factory=list)
    guard_tripped: bool = False  # held-out accuracy fell below the guard's margin: the run stopped there
    parent_holdout_acc: float | None = None  # the guard's reference: held-out accuracy before fine-tuning
    # index into stop_checks of the point the returned weights are from; -1 = the parent's (no check
    # passed the guard); None without a stopping rule
    stop_point: int | None = None
    adversarial: dict[str, Any] | None = None  # summary of D_A (AMUN)


class Unlearner(Protocol):
    def __call__(
        self,
        model: nn.Module,
        forget: ImageSet,
        retain: ImageSet | None,
        cfg: UnlearnConfig,
        *,
        holdout: ImageSet | None = None,
        progress: Progress | None = None,
    ) -> UnlearnResult: ...


def check_retain(cfg: UnlearnConfig, retain: ImageSet | None) -> ImageSet | None:
    """The remaining data the method may use: None without retain access, an error if it is needed but absent."""
    if not cfg.retain_access:
        return None
    if retain is None or len(retain) == 0:
        raise ValueError(f"method {cfg.method!r} with retain_access=True needs a non-empty remaining set")
    return retain


def retain_part(retain: ImageSet, n_forget: int, cfg: UnlearnConfig) -> Part:
    """D_R with true labels; in the subsampled mode a fresh draw of retain_multiple x |D_F| per epoch (at
    least retain_min)."""
    per_epoch = None
    if cfg.retain_multiple is not None:
        per_epoch = min(len(retain), max(1, round(cfg.retain_multiple * n_forget), cfg.retain_min or 0))
    return Part(retain.x, retain.y, augment=True, per_epoch=per_epoch)


def finetune(
    model: nn.Module,
    parts: list[Part],
    cfg: UnlearnConfig,
    forget: ImageSet,
    *,
    holdout: ImageSet | None = None,
    masks: dict[nn.Parameter, torch.Tensor] | None = None,
    l1_alpha=None,
    on_epoch_start: EpochStartHook | None = None,
    progress: Progress | None = None,
) -> tuple[FitStats, StoppingRule | None, float]:
    """The paper's fine-tuning: SGD with momentum, StepLR, plain mean CE, model in train mode."""
    rule = None
    if cfg.stop is not None:
        if holdout is None:
            raise ValueError("the stopping rule (cfg.stop) needs a held-out set of unseen samples")
        rule = StoppingRule(cfg.stop, forget, holdout, parent=model)  # the model before fine-tuning
    start = time.perf_counter()
    stats = fit(
        model,
        parts,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        schedule=Schedule(cfg.lr, "step", cfg.step_size, cfg.gamma),
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        augment=cfg.augment,
        generator=seeded_generator(cfg.seed),
        masks=masks,
        l1_alpha=l1_alpha,
        on_epoch_start=on_epoch_start,
        on_check=rule,
        checks_per_epoch=cfg.stop.checks_per_epoch if cfg.stop is not None else 1,
        progress=progress,
    )
    if rule is not None:
        rule.restore_best(model)
    return stats, rule, time.perf_counter() - start


def result_from(model, stats: FitStats, rule: StoppingRule | None, seconds: dict[str, float], **extra) -> UnlearnResult:
    return UnlearnResult(
        model=model,
        seconds=seconds,
        samples_seen=stats.samples_seen,
        epochs_run=stats.epochs_run,
        stopped_early=rule is not None and rule.stopped,
        stop_trace=rule.trace if rule is not None else [],
        stop_checks=[dataclasses.asdict(c) for c in rule.checks] if rule is not None else [],
        guard_tripped=rule is not None and rule.guard_tripped,
        parent_holdout_acc=rule.parent_acc if rule is not None else None,
        stop_point=rule.returned_point() if rule is not None else None,
        **extra,
    )


def saliency_mask(
    model: nn.Module, forget: ImageSet, ratio: float, *, batch_size: int = 256, progress: Progress | None = None
) -> dict[nn.Parameter, torch.Tensor]:
    """SalUn's weight saliency: 1 for the `ratio` share of weights with the largest |grad of -CE on D_F|.

    Computed once on the model before unlearning (eval mode, as SalUn does); weights outside the mask
    are frozen for the whole run.
    """
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    device = params[0].device
    n_batches = (len(forget) + batch_size - 1) // batch_size
    for b in range(n_batches):
        xb = forget.x[b * batch_size:(b + 1) * batch_size].to(device)
        yb = forget.y[b * batch_size:(b + 1) * batch_size].to(device)
        loss = -F.cross_entropy(model(xb), yb)
        for g, pg in zip(grads, torch.autograd.grad(loss, params)):
            g.add_(pg)
        report(progress, "saliency", b + 1, n_batches)
    model.train(was_training)
    flat = torch.cat([g.abs().flatten() for g in grads])
    k = max(1, int(round(ratio * flat.numel())))
    threshold = torch.topk(flat, k, sorted=False).values.min()
    return {p: (g.abs() >= threshold).to(p.dtype) for p, g in zip(params, grads)}
