"""The closest-adversarial search of AMUN (Algorithm 1 of the paper; AMUN.md section 2).

For each forget sample, untargeted L2 PGD from the clean image with step eps/10 stops at the first
iterate the model misclassifies; samples still correct after `steps` steps get their radius doubled and
continue from where they are. The whole active set moves together as one batched tensor computation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from unlearning.progress import Progress, report
from unlearning.specs import AttackConfig
from unlearning.train import seeded_generator


@dataclass
class AdversarialSet:
    x: torch.Tensor  # N, C, H, W float adversarial images (x itself where already misclassified)
    y: torch.Tensor  # N the model's (wrong) prediction at x_adv; equals the true label where not flipped
    eps: torch.Tensor  # N radius of the L2 ball x_adv was found in (0 where the clean x was misclassified)
    delta_norm: torch.Tensor  # N ||x_adv - x||_2
    orig_pred: torch.Tensor  # N prediction on the clean image
    flipped: torch.Tensor  # N bool: found a misclassified point within the doubling cap
    misclassified: torch.Tensor  # N bool: the clean image was already misclassified (x_adv = x, eps = 0)
    eps_init: float  # starting radius (given or calibrated)
    eps_rule: str  # AttackConfig.eps_rule: how eps_init was (or, when given, had been) chosen
    calibrated: bool  # eps_init was calibrated by this search (False: it was given)
    include_misclassified: bool  # AttackConfig.include_misclassified: do already-misclassified samples join D_A
    passes: int  # forward+backward passes over single samples, calibration included

    def in_d_a(self) -> torch.Tensor:
        """N bool: the samples whose x_adv joins D_A."""
        if self.include_misclassified:
            return self.flipped
        return self.flipped & ~self.misclassified

    def usable(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples that make D_A: only points the model really misclassifies (the clean image itself
        where it already was, unless include_misclassified is off)."""
        keep = self.in_d_a()
        return self.x[keep], self.y[keep]

    def summary(self) -> dict[str, float | int | str | bool | None]:
        """What a benchmark compares eps rules by, as plain JSON values (None where no sample qualifies)."""
        # Radii and distances are taken over the samples the search attacked and flipped: the already
        # misclassified ones sit at 0 under every rule and would only blur the comparison.
        found = (self.flipped & ~self.misclassified).cpu()
        eps = self.eps.cpu()[found].double().numpy()
        norms = self.delta_norm.cpu()[found].double().numpy()
        searched = int((~self.misclassified).sum())
        at_first = int((found & torch.isclose(self.eps.cpu(), torch.tensor(self.eps_init))).sum())
        quantiles = [float(v) for v in np.quantile(eps, [0.05, 0.25, 0.5, 0.75, 0.95])] if len(eps) else [None] * 5
        q05, q25, q50, q75, q95 = quantiles
        return {
            "samples": len(self.y),
            "usable": int(self.in_d_a().sum()),  # |D_A|
            "never_flipped": int((~self.flipped).sum()),
            "misclassified": int(self.misclassified.sum()),
            "misclassified_excluded": 0 if self.include_misclassified else int(self.misclassified.sum()),
            "eps_init": self.eps_init,
            "eps_rule": self.eps_rule,
            "eps_calibrated": self.calibrated,
            "eps_q05": q05, "eps_q25": q25, "eps_median": q50, "eps_q75": q75, "eps_q95": q95,
            "delta_norm_mean": float(norms.mean()) if len(norms) else None,
            "delta_norm_median": float(np.median(norms)) if len(norms) else None,
            # 1.0: every attacked sample flipped within eps_init, so the doubling never acted
            "first_radius_share": at_first / searched if searched else None,
            "passes": self.passes,
        }


def closest_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    *,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> AdversarialSet:
    """D_A for (x, y): the closest misclassified point the search finds for every sample."""
    was_training = model.training
    model.eval()  # BatchNorm statistics must not move, and the attack sees the deployed model
    try:
        passes = 0
        eps_init = cfg.eps_init  # given, or set by the "fixed" rule
        calibrated = eps_init is None
        if calibrated:
            eps_init, passes = calibrate_eps(model, x, y, cfg, generator=generator)
        device = next(model.parameters()).device
        out = _Buffers(len(y), x, device)
        finished = 0
        for start in range(0, len(y), cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            for n_done in _search(model, x[sl].to(device), y[sl].to(device), eps_init, cfg, out, start):
                report(progress, "attack", finished + n_done, len(y))
            finished += len(y[sl])
            passes += out.passes
            out.passes = 0
        return AdversarialSet(
            x=out.x_adv, y=out.y_adv, eps=out.eps, delta_norm=(out.x_adv - x.to(device)).flatten(1).norm(dim=1),
            orig_pred=out.orig_pred, flipped=out.flipped, misclassified=out.orig_pred != y.to(device),
            eps_init=float(eps_init), eps_rule=cfg.eps_rule, calibrated=calibrated,
            include_misclassified=cfg.include_misclassified, passes=passes,
        )
    finally:
        model.train(was_training)


def calibrate_eps(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, *, generator: torch.Generator | None = None
) -> tuple[float, int]:
    """eps_init by `cfg.eps_rule`; returns the radius and the attack passes spent.

    "quantile" (the paper's 95% rule) and "median" run the search from a very small radius on
    `calibration_samples` samples of D_F and take that quantile of the radii they needed; "fixed" returns
    its radius without a search. Samples the model already misclassifies say nothing about the radius and
    are left out, whatever include_misclassified says about D_A.
    """
    if cfg.eps_rule == "fixed":
        return float(cfg.eps_init), 0
    device = next(model.parameters()).device
    pick = torch.randperm(len(y), generator=generator)[: cfg.calibration_samples]
    xs, ys = x[pick].to(device), y[pick].to(device)
    out = _Buffers(len(ys), xs, device)
    for _ in _search(model, xs, ys, cfg.calibration_eps, cfg, out, 0):
        pass
    needed = out.eps[out.flipped & (out.eps > 0)].cpu().numpy()
    if len(needed) == 0:
        return cfg.calibration_eps, out.passes
    quantile = 0.5 if cfg.eps_rule == "median" else cfg.calibration_quantile
    # "higher": a radius some sample really needed, one of the search's ladder calibration_eps * 2^k
    return float(np.quantile(needed, quantile, method="higher")), out.passes


def starting_radius(
    cfg: AttackConfig,
    inherited: float | None,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    progress: Progress | None = None,
) -> AttackConfig:
    """`cfg` with AMUN's starting radius fixed once for a run of requests: the config's own eps_init, else the
    `inherited` one (an earlier version's), else calibrated now on (x, y) by cfg.eps_rule with a generator
    seeded by `seed`. Fixing it once keeps successive runs on one radius instead of calibrating each."""
    if cfg.eps_init is not None:
        return cfg
    if inherited is None:
        report(progress, "calibrate", 0, 1)
        inherited, _ = calibrate_eps(model, x, y, cfg, generator=seeded_generator(seed))
        report(progress, "calibrate", 1, 1)
    return replace(cfg, eps_init=float(inherited))


class _Buffers:
    """Per-sample results of a search, filled in place chunk by chunk."""

    def __init__(self, n: int, x: torch.Tensor, device: torch.device) -> None:
        self.x_adv = x.to(device, copy=True)
        self.y_adv = torch.zeros(n, dtype=torch.long, device=device)
        self.eps = torch.full((n,), float("nan"), device=device)
        self.orig_pred = torch.zeros(n, dtype=torch.long, device=device)
        self.flipped = torch.zeros(n, dtype=torch.bool, device=device)
        self.passes = 0


def _search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps0: float, cfg: AttackConfig,
            out: _Buffers, offset: int):
    """Search one chunk; yields the number of finished samples after every step (for progress)."""
    n = len(y)
    x_cur = x.clone()
    eps = torch.full((n,), float(eps0), device=x.device)
    made_in = torch.zeros(n, device=x.device)  # radius of the ball the current iterate was made in (0: clean x)
    active = torch.arange(n, device=x.device)  # chunk positions still correctly classified
    out.y_adv[offset:offset + n] = y  # samples that never flip keep their own label (and are not used)
    first = True
    for level in range(cfg.max_doublings + 1):
        if level > 0:
            eps[active] *= 2  # alpha = eps / 10 follows; the search continues from the current iterate
        for _ in range(cfg.steps):
            xa = x_cur[active].requires_grad_(True)
            logits = model(xa)  # N_active, classes
            pred = logits.argmax(1)
            out.passes += len(active)
            if first:
                out.orig_pred[offset:offset + n] = pred
            wrong = pred != y[active]
            if wrong.any():
                _record(out, offset, active[wrong], xa.detach()[wrong], pred[wrong], made_in[active[wrong]])
            first = False
            keep = ~wrong
            if not keep.any():
                active = active[keep]
                yield n
                return
            loss = F.cross_entropy(logits[keep], y[active[keep]], reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)  # N_active, C, H, W (rows of flipped samples are 0)
            active, grad = active[keep], grad[keep]
            x_cur[active] = _pgd_step(x_cur[active], x[active], grad, eps[active])
            made_in[active] = eps[active]
            yield n - len(active)
    # the iterates after the last radius's final step have not been classified yet
    with torch.no_grad():
        pred = model(x_cur[active]).argmax(1)
    out.passes += len(active)
    wrong = pred != y[active]
    if wrong.any():
        _record(out, offset, active[wrong], x_cur[active[wrong]], pred[wrong], made_in[active[wrong]])
    never = active[~wrong]
    out.eps[never + offset] = eps[never]  # report the largest radius tried for samples that never flipped
    yield n


def _pgd_step(x_cur: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One normalised L2 step of size eps/10, projected onto the eps-ball around x0 and onto [0, 1]."""
    shape = (-1,) + (1,) * (x0.dim() - 1)
    g = grad / (grad.flatten(1).norm(dim=1).view(shape) + 1e-10)
    x_new = x_cur + (eps / 10).view(shape) * g
    delta = x_new - x0
    scale = torch.clamp(eps / (delta.flatten(1).norm(dim=1) + 1e-12), max=1.0)  # min(1, eps / ||delta||)
    return (x0 + delta * scale.view(shape)).clamp(0.0, 1.0)


def _record(out: _Buffers, offset: int, idx: torch.Tensor, x_adv: torch.Tensor, y_adv: torch.Tensor,
            eps: torch.Tensor) -> None:
    pos = idx + offset
    out.x_adv[pos] = x_adv
    out.y_adv[pos] = y_adv
    out.eps[pos] = eps
    out.flipped[pos] = True
