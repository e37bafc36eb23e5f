"""RMIA (Zarifzadeh, Liu, Shokri, ICML 2024): the reference-model membership attack of AMUN.md section 6.

The signal of a model on (x, y) is the soft-margin Taylor softmax of its logits; a point's likelihood
ratio compares the audited model's signal with the reference models' average, and its score is the
share of population points (known non-members) it out-ranks by more than a factor gamma.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

MODES = ("offline", "online")

# Signals are probabilities; dividing by one that is zero (or, for the cubic Taylor polynomial, at or
# below zero when a scaled logit falls under its real root near -1.596) would give inf/nan or flip the
# ranking. Flooring signals and reference means at EPS reads such values as "practically zero
# probability" and leaves every signal above 1e-12 untouched.
EPS = 1e-12


@dataclass(frozen=True)
class RmiaResult:
    """What a report states about one RMIA audit."""

    auc_mean: float  # forget-vs-test ROC-AUC in percent, mean over seeds; 50 = forget set looks unseen
    auc_std: float  # its standard deviation over seeds
    n_reference: int  # reference models used (the paper used 128; say how few a service used)
    mode: str  # "offline" or "online"
    gamma: float  # the likelihood-ratio threshold

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if self.n_reference < 1:
            raise ValueError(f"n_reference must be at least 1, got {self.n_reference}")


def soft_margin_taylor(
    logits: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    temperature: float = 2.0,
    margin: float = 0.6,
    order: int = 4,
) -> np.ndarray:
    """RMIA's per-sample signal: t(s_y - m) / (sum_{j != y} t(s_j) + t(s_y - m)), s = z / T (N,), float64.

    t(u) = sum_{k < order} u^k / k!, the Taylor expansion of exp; order 4 gives 1 + u + u^2/2 + u^3/6.
    This is the authors' code (privacy_meter's get_taylor with n=4 is this cubic). An odd-degree t is
    negative below its real root (about -1.596 for order 4), so with T=2 and m=0.6 a true-class logit
    under about -2.0 or another logit under about -3.2 can push P outside (0, 1), even below 0; small
    nets trained without label smoothing or strong weight decay reach such logits routinely. The value is
    returned unclipped, as the reference does, and a RuntimeWarning counts the samples concerned so that a
    report can say so (evaluate.RmiaAudit reports the share as rmia_signal_outside_share).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    z = (logits.detach().cpu().double().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float64))
    labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {z.shape}")
    if labels.ndim != 1 or len(labels) != len(z):
        raise ValueError(f"y must be 1-D with one label per logits row ({len(z)}), got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("logits and y are empty")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1]}), got range [{labels.min()}, {labels.max()}]")

    coeff = np.array([1.0 / math.factorial(k) for k in range(order)])  # order
    powers = np.arange(order)

    def taylor(u: np.ndarray) -> np.ndarray:
        return (u[..., None] ** powers * coeff).sum(axis=-1)

    s = z / temperature  # N, C
    rows = np.arange(len(s))
    t_true = taylor(s[rows, labels] - margin)  # N
    t_all = taylor(s)  # N, C
    t_others = t_all.sum(axis=1) - t_all[rows, labels]  # N
    signal = t_true / (t_others + t_true)  # N
    outside = int(np.sum(~((signal > 0.0) & (signal <= 1.0))))
    if outside:
        warnings.warn(
            f"{outside} of {len(signal)} soft-margin Taylor signals fall outside (0, 1]: the order-{order} "
            f"Taylor polynomial turns negative for logits this low (min logit {z.min():.3g}, T={temperature}, "
            f"m={margin}); the RMIA ratios of these samples are unreliable",
            RuntimeWarning,
            stacklevel=2,
        )
    return signal


def _check_signals(
    target: np.ndarray, ref: np.ndarray, ref_in: np.ndarray, population: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    ref_in = np.asarray(ref_in)
    population = np.asarray(population)
    if target.ndim != 1 or len(target) == 0:
        raise ValueError(f"target must be a non-empty 1-D signal (N,), got shape {target.shape}")
    n = len(target)
    if ref.ndim != 2 or ref.shape[1] != n or ref.shape[0] < 1:
        raise ValueError(f"ref must have shape (k, {n}) with k >= 1 reference models, got {ref.shape}")
    if ref_in.shape != ref.shape:
        raise ValueError(f"ref_in must have the shape of ref {ref.shape}, got {ref_in.shape}")
    if ref_in.dtype != np.bool_:
        raise ValueError(f"ref_in must be a boolean membership matrix, got dtype {ref_in.dtype}")
    for name, arr in (("target", target), ("ref", ref)):
        bad = int(np.sum(~np.isfinite(arr)))
        if bad:
            raise ValueError(f"{name} holds {bad} non-finite signal value(s)")
    if population.ndim != 1 or len(population) == 0:
        raise ValueError(f"population must be a non-empty 1-D index array, got shape {population.shape}")
    if not np.issubdtype(population.dtype, np.integer):
        raise ValueError(f"population must hold integer indices into the N={n} points, got dtype {population.dtype}")
    if population.min() < 0 or population.max() >= n:
        raise ValueError(f"population indices must lie in [0, {n}), got range [{population.min()}, {population.max()}]")
    if len(np.unique(population)) != len(population):
        raise ValueError(f"population holds {len(population) - len(np.unique(population))} duplicate index(es)")
    return target, ref, ref_in, population


def reference_signal(
    ref: np.ndarray, ref_in: np.ndarray, *, mode: str = "offline", offline_a: float = 0.3
) -> np.ndarray:
    """P(x), the reference models' estimate of a point's signal (N,), from ref (k, N) and ref_in (k, N).

    "online": the mean over all references (meant for references of which about half saw each point).
    "offline": the mean over the OUT references, P_out, with the paper's linear fix for the missing IN
    models, P_in ~ a * P_out + (1 - a), hence P = (P_out + P_in) / 2 = ((1 + a) * P_out + (1 - a)) / 2.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    if not 0.0 <= offline_a <= 1.0:
        raise ValueError(f"offline_a must lie in [0, 1], got {offline_a}")
    ref = np.asarray(ref, dtype=np.float64)
    ref_in = np.asarray(ref_in)
    if ref.ndim != 2 or ref.shape[0] < 1:
        raise ValueError(f"ref must have shape (k, N) with k >= 1 reference models, got {ref.shape}")
    if ref_in.shape != ref.shape or ref_in.dtype != np.bool_:
        raise ValueError(
            f"ref_in must be a boolean array of ref's shape {ref.shape}, got {ref_in.dtype} {ref_in.shape}"
        )
    if mode == "online":
        return ref.mean(axis=0)
    out = ~ref_in  # k, N
    n_out = out.sum(axis=0)  # N
    lacking = int(np.sum(n_out == 0))
    if lacking:
        raise ValueError(
            f"{lacking} of {ref.shape[1]} points have no OUT reference model (every reference trained "
            "on them); offline RMIA needs at least one reference model that did not see each point"
        )
    p_out = (ref * out).sum(axis=0) / n_out  # N
    return ((1.0 + offline_a) * p_out + (1.0 - offline_a)) / 2.0


def rmia_scores(
    target: np.ndarray,
    ref: np.ndarray,
    ref_in: np.ndarray,
    population: np.ndarray,
    *,
    mode: str = "offline",
    offline_a: float = 0.3,
    gamma: float = 2.0,
) -> np.ndarray:
    """RMIA score per point (N,): the share of population points z with ratio(x) / ratio(z) > gamma.

    target: (N,) signal of the audited model; ref: (k, N) signals of k reference models on the same
    points; ref_in: (k, N) True where reference model i trained on point j; population: indices of the
    z points (non-members of the audited model). ratio = target / P with P from reference_signal
    (online or offline); population points get the same P as every other point.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    target, ref, ref_in, population = _check_signals(target, ref, ref_in, population)

    p = reference_signal(ref, ref_in, mode=mode, offline_a=offline_a)  # N
    ratio = np.maximum(target, EPS) / np.maximum(p, EPS)  # N, all > 0
    # With every ratio positive, ratio(x) / ratio(z) > gamma  <=>  ratio(z) < ratio(x) / gamma, so one
    # sort of the population and a binary search per point count the z's: O((N + |Z|) log |Z|).
    ratio_z = np.sort(ratio[population])  # |Z|
    counts = np.searchsorted(ratio_z, ratio / gamma, side="left")  # N: z's strictly below the bound
    return counts / len(ratio_z)


def forget_test_auc(
    forget_scores: np.ndarray, test_scores: np.ndarray, seeds: tuple[int, ...] = (0, 1, 2)
) -> tuple[float, float]:
    """ROC-AUC in percent of forget (positives) vs test (negatives) scores: (mean, std over seeds).

    Each seed draws equal-size subsamples (the smaller set's size) without replacement, the AMUN
    protocol; std is the population standard deviation (ddof=0) over the seeds.
    """
    forget = np.asarray(forget_scores, dtype=np.float64)
    test = np.asarray(test_scores, dtype=np.float64)
    for name, arr in (("forget_scores", forget), ("test_scores", test)):
        if arr.ndim != 1 or len(arr) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    if len(seeds) == 0:
        raise ValueError("seeds is empty: at least one subsample is needed")
    n = min(len(forget), len(test))
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    aucs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        f = forget[rng.choice(len(forget), size=n, replace=False)]
        t = test[rng.choice(len(test), size=n, replace=False)]
        aucs.append(100.0 * roc_auc_score(labels, np.concatenate([f, t])))
    return float(np.mean(aucs)), float(np.std(aucs))
