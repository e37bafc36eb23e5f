"""Per-sample membership evidence: a score for every forgotten sample, its p-value against held-out data the
model never saw, and what the p-values of a whole set say.

A data subject's request is about its own samples, and population attacks (one threshold for all) overstate
how much was forgotten (AMUN.md section 10). So each forgotten sample gets a membership score (higher =
more member-like) and the p-value of that score under the null hypothesis "this sample is like data the
model never saw", computed against the scores of held-out test samples:

    p(x) = (1 + #{z in held-out : score(z) >= score(x)}) / (1 + |held-out|)

which is a valid (conservative) p-value whenever x is exchangeable with the held-out samples: for a model
that never trained on x, P(p(x) <= a) <= a. A sample is "indistinguishable from never-seen data at level
alpha" when p(x) >= alpha. Over a set, never-seen data leaves about (1 - alpha) of the samples
indistinguishable; the set-level test is the exact binomial one on the share flagged (p < alpha), with a
Clopper-Pearson interval on the share indistinguishable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unlearning.audit import stats

ALPHA = 0.05  # per-sample level: p < ALPHA flags a sample as member-like

LOG_ODDS = "log_odds_confidence"
RMIA = "rmia"
SCORE_DESCRIPTIONS = {
    LOG_ODDS: "log-odds of the true-class confidence, log(p_y / (1 - p_y)), calibrated against the held-out test "
    "samples (a loss attack: same ranking as the cross-entropy loss)",
    RMIA: "RMIA score (share of population points the sample out-ranks by a likelihood ratio above gamma), "
    "calibrated against the held-out test samples",
}


def log_odds_confidence(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """log(p_y / (1 - p_y)) per sample (N,), float64, computed from the logits without forming p_y.

    log p_y - log(1 - p_y) = z_y - logsumexp_{j != y} z_j, which stays finite where p_y rounds to 1 (a
    memorised sample) and spreads the confident end of the distribution that a [0, 1] axis squeezes."""
    z = torch.as_tensor(logits).detach().cpu().double()
    labels = torch.as_tensor(y).detach().cpu().long()
    if z.ndim != 2 or labels.ndim != 1 or len(labels) != len(z) or len(z) == 0:
        raise ValueError(f"need logits (N, C) and labels (N,), N >= 1; got {tuple(z.shape)} and {tuple(labels.shape)}")
    if z.shape[1] < 2:
        raise ValueError("log-odds need at least two classes")
    rows = torch.arange(len(z))
    true = z[rows, labels]
    others = z.clone()
    others[rows, labels] = -torch.inf
    return (true - torch.logsumexp(others, dim=1)).numpy()


def p_values(scores: np.ndarray, null_scores: np.ndarray) -> np.ndarray:
    """p-value of each score (higher = more member-like) against scores of known non-members (N,)."""
    scores = np.asarray(scores, dtype=np.float64)
    null = np.sort(np.asarray(null_scores, dtype=np.float64))
    if len(null) == 0:
        raise ValueError("null_scores is empty: p-values need held-out samples")
    if not (np.all(np.isfinite(scores)) and np.all(np.isfinite(null))):
        raise ValueError("scores must be finite")
    at_least = len(null) - np.searchsorted(null, scores, side="left")  # held-out scores >= each score
    return (1.0 + at_least) / (1.0 + len(null))


@dataclass(frozen=True)
class SetEvidence:
    """What the per-sample p-values of one forgotten set say, against never-seen data."""

    n: int
    indistinguishable: int  # samples with p >= alpha
    share: stats.Interval  # indistinguishable / n in percent, exact interval
    binomial_p: float  # P(flagged >= observed) if the set were never-seen data: small = members remain
    auc: stats.Interval  # forget-vs-held-out AUC of the same score, bootstrap interval

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "indistinguishable": self.indistinguishable,
            "indistinguishable_pct": self.share.as_dict(),
            "expected_pct_if_never_seen": 100.0 * (1.0 - ALPHA),
            "binomial_p": self.binomial_p,
            "auc": self.auc.as_dict(),
        }


def set_evidence(scores: np.ndarray, null_scores: np.ndarray, *, seed: int = 0,
                 auc: stats.Interval | None = None) -> SetEvidence:  # fmt: skip
    """Summarise a set's per-sample p-values against the held-out scores, and its scores' AUC against them
    (`auc` when the caller already has it)."""
    p = p_values(scores, null_scores)
    n = len(p)
    kept = int(np.sum(p >= ALPHA))
    return SetEvidence(
        n=n,
        indistinguishable=kept,
        share=stats.proportion(kept, n),
        binomial_p=stats.binomial_excess_p(n - kept, n, ALPHA),
        auc=auc if auc is not None else stats.auc(scores, null_scores, seed=seed),
    )


def per_sample_rows(ids: np.ndarray, sets: list[str], scores: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """One row per forgotten sample: its ID, the set that forgot it, score, p-value, indistinguishable."""
    return [
        {"id": str(sid), "set": label, "score": float(score), "p_value": float(pv), "indistinguishable": bool(pv >= ALPHA)}
        for sid, label, score, pv in zip(ids.tolist(), sets, scores.tolist(), p.tolist())
    ]
