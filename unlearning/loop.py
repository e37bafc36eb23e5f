"""The one SGD loop behind training, AMUN and every baseline.

Every method is "fine-tune on a mix of labelled parts": a part is a tensor set with a loss sign
(+1 cross-entropy, -1 gradient ascent), a flag for the training augmentation and, for the retain
subsampled mode, a per-epoch sample size. One shuffled loader runs over the concatenation, as in the
paper. An optional mask freezes weights exactly (no gradient, weight decay or momentum reaches them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from unlearning.imageset import augment_batch
from unlearning.progress import Progress, report
from unlearning.specs import AugmentSpec


class TrainingDiverged(ValueError):
    """The loss became non-finite: the learning rate is too high for this method and model."""


@dataclass
class Part:
    x: torch.Tensor  # N, C, H, W in [0, 1]
    y: torch.Tensor  # N labels the loss is taken against
    sign: float = 1.0  # +1: minimise CE; -1: gradient ascent on CE
    augment: bool = True  # apply the training augmentation (real images yes, adversarial examples no)
    per_epoch: int | None = None  # draw this many samples afresh each epoch (subsampled mode); None = all


@dataclass
class Schedule:
    lr: float
    kind: str = "step"  # "step" | "cosine" | "constant"
    step_size: int = 1  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor

    def lr_at(self, epoch: int, frac: float, epochs: int) -> float:
        """Learning rate at a point of training: epoch index plus the fraction of it done."""
        if self.kind == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * (epoch + frac) / epochs))
        return self.lr


class MaskedSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay, where a 0 in a parameter's mask freezes that weight exactly.

    Weight decay is added to the gradient before the mask, so masked weights get neither gradient nor
    decay, their momentum buffer stays 0 and their value is bit-identical after every step. Without
    masks it is plain SGD (PyTorch's, no dampening, no Nesterov).
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float,
                 masks: dict[nn.Parameter, torch.Tensor] | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.masks = masks or {}

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                mask = self.masks.get(p)
                if mask is not None:
                    d.mul_(mask)
                if group["momentum"]:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d
                    else:
                        buf.mul_(group["momentum"]).add_(d)
                    d = buf
                p.add_(d, alpha=-group["lr"])


@dataclass
class FitStats:
    epochs_run: int = 0
    steps: int = 0
    samples_seen: int = 0  # forward+backward passes over single samples
    epoch_loss: list[float] = field(default_factory=list)


EpochHook = Callable[[int, nn.Module], bool]  # (epoch index, model) -> True to stop after this epoch


def fit(
    model: nn.Module,
    parts: list[Part],
    *,
    epochs: int,
    batch_size: int,
    schedule: Schedule,
    momentum: float,
    weight_decay: float,
    augment: AugmentSpec,
    generator: torch.Generator,
    masks: dict[nn.Parameter, torch.Tensor] | None = None,
    l1_alpha: Callable[[int], float] | None = None,
    on_epoch_end: EpochHook | None = None,
    progress: Progress | None = None,
    phase: str = "fine-tune",
) -> FitStats:
    """Train `model` in place on the shuffled union of `parts`; returns what was spent."""
    if not parts or all(len(p.y) == 0 for p in parts):
        raise ValueError("nothing to train on: every part is empty")
    device = next(model.parameters()).device
    opt = MaskedSGD(model.parameters(), lr=schedule.lr, momentum=momentum, weight_decay=weight_decay, masks=masks)
    stats = FitStats()
    sizes = [p.per_epoch if p.per_epoch is not None else len(p.y) for p in parts]
    total_steps = epochs * math.ceil(sum(sizes) / batch_size)
    for epoch in range(epochs):
        model.train()
        x, y, sign, aug = _draw_epoch(parts, generator, device)
        order = torch.randperm(len(y), generator=generator).to(device)
        n_batches = math.ceil(len(y) / batch_size)
        loss_sum = 0.0
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb, yb, sb, ab = x[idx], y[idx], sign[idx], aug[idx]
            if ab.any():
                xb = torch.where(ab[:, None, None, None], augment_batch(xb, augment, generator), xb)
            for group in opt.param_groups:
                group["lr"] = schedule.lr_at(epoch, b / n_batches, epochs)
            loss = (sb * F.cross_entropy(model(xb), yb, reduction="none")).mean()
            if l1_alpha is not None:
                loss = loss + l1_alpha(epoch) * sum(p.abs().sum() for p in model.parameters())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"the loss became {value} at epoch {epoch + 1}, step {b + 1} "
                                       f"(lr {schedule.lr}); lower the learning rate")
            loss_sum += value * len(idx)
            stats.steps += 1
            stats.samples_seen += len(idx)
            report(progress, phase, stats.steps, total_steps)
        stats.epochs_run = epoch + 1
        stats.epoch_loss.append(loss_sum / len(y))
        if on_epoch_end is not None and on_epoch_end(epoch, model):
            break
    model.eval()
    return stats


def _draw_epoch(parts: list[Part], generator: torch.Generator, device: torch.device):
    """Concatenate the parts for one epoch, drawing a fresh subsample of each part that asks for one."""
    xs, ys, signs, augs = [], [], [], []
    for p in parts:
        x, y = p.x, p.y
        if p.per_epoch is not None and p.per_epoch < len(y):
            pick = torch.randperm(len(y), generator=generator)[: p.per_epoch].to(x.device)
            x, y = x[pick], y[pick]
        xs.append(x.to(device))
        ys.append(y.to(device))
        signs.append(torch.full((len(y),), float(p.sign), device=device))
        augs.append(torch.full((len(y),), p.augment, dtype=torch.bool, device=device))
    return torch.cat(xs), torch.cat(ys), torch.cat(signs), torch.cat(augs)
