"""Intervals and decisions that know their sample size: exact binomial intervals for accuracies and rates,
bootstrap intervals for AUCs and paired differences, Student-t intervals for paired per-seed differences
of methods, and a three-way decision (pass, fail, inconclusive)
of an interval against a band, with the number of samples that would let an undecided interval decide.

Every function is seeded or exact, so the same inputs always give the same report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, rankdata
from scipy.stats import t as student_t

CONFIDENCE = 0.95  # two-sided confidence of every interval in a report
BOOTSTRAP_RESAMPLES = 1000  # enough for the 2.5% and 97.5% percentiles to move by well under a point
MAX_SAMPLES_NEEDED = 10_000_000  # past this "samples needed" is reported as unreachable (None)

EXACT = "exact (Clopper-Pearson)"
BOOTSTRAP = f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples"
# Below this many positives a percentile bootstrap is too narrow (resamples of 4 values can only repeat
# them), so the AUC's interval is widened to Hoeffding's, which holds at any n: the AUC is the mean of the
# positives' placements (share of negatives below each), values in [0, 1].
SMALL_SET = 30
BOOTSTRAP_OR_HOEFFDING = f"{BOOTSTRAP}; below {SMALL_SET} positives widened to Hoeffding's bound"
PAIRED_BOOTSTRAP = f"paired percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval (same unit: percent throughout a report)."""

    value: float
    low: float
    high: float
    method: str

    def as_dict(self) -> dict[str, float | str]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "method": self.method}


def proportion(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """successes / n in percent with its exact (Clopper-Pearson) interval: valid at any n, even 1."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(100.0 * successes / n, 100.0 * float(ci.low), 100.0 * float(ci.high), EXACT)


def binomial_excess_p(successes: int, n: int, rate: float) -> float:
    """One-sided exact binomial test: P(X >= successes) for X ~ Binomial(n, rate).

    Small when more samples are flagged than `rate` would flag by chance."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return float(binomtest(int(successes), int(n), rate, alternative="greater").pvalue)


def _aucs(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC-AUC per row (Mann-Whitney U / (n_pos n_neg), ties count half) of pos (B, P) vs neg (B, Q)."""
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # B, P + Q; average ranks for ties
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


class _WeightedAuc:
    """AUCs of one score set under many resampling weights, in O(B (P + Q)) without re-sorting.

    With positives weighted w (a resample's counts) and negatives weighted v, the AUC is
    sum_i w_i (sum of v over negatives below pos_i + half of v over ties) / (P Q); after one sort of the
    negatives both sums are differences of one cumulative sum of v, read at each positive's position."""

    def __init__(self, pos: np.ndarray, neg: np.ndarray) -> None:
        self.order = np.argsort(neg, kind="stable")
        ranked = neg[self.order]
        self.below = np.searchsorted(ranked, pos, side="left")  # P: negatives strictly below
        self.at_or_below = np.searchsorted(ranked, pos, side="right")  # P: ... or tied
        self.p, self.q = len(pos), len(neg)

    def __call__(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        """w (B, P) counts of positives, v (B, Q) counts of negatives in their original order -> (B,)."""
        cum = np.zeros((len(v), self.q + 1))
        np.cumsum(v[:, self.order], axis=1, out=cum[:, 1:])
        less, tied_or_less = cum[:, self.below], cum[:, self.at_or_below]  # B, P
        return (w * (less + 0.5 * (tied_or_less - less))).sum(axis=1) / (self.p * self.q)


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """b bootstrap resamples of n items as counts per item (b, n): each row sums to n."""
    draws = rng.integers(0, n, (b, n)) + n * np.arange(b)[:, None]  # row r's draws land in [r n, (r + 1) n)
    return np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high)


def _chunks(resamples: int, p: int, q: int):
    chunk = max(1, 4_000_000 // (p + q))  # bounded memory for large sets
    for start in range(0, resamples, chunk):
        yield min(chunk, resamples - start)


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr


def auc(positives: np.ndarray, negatives: np.ndarray, *, seed: int = 0,
        resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE) -> Interval:  # fmt: skip
    """ROC-AUC in percent of `positives` (higher score = more member-like) against `negatives`, with a
    stratified percentile-bootstrap interval (each group resampled with replacement at its own size), widened
    to Hoeffding's bound when there are fewer than SMALL_SET positives."""
    pos = _finite(positives, "positives")
    neg = _finite(negatives, "negatives")
    value = float(_aucs(pos[None], neg[None])[0])
    weighted = _WeightedAuc(pos, neg)
    rng = np.random.default_rng(seed)
    boot = np.concatenate([weighted(_counts(rng, b, len(pos)), _counts(rng, b, len(neg)))
                           for b in _chunks(resamples, len(pos), len(neg))])  # fmt: skip
    low, high = _percentiles(boot, confidence)
    if len(pos) < SMALL_SET:
        half = math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * len(pos)))
        low, high = max(0.0, min(low, value - half)), min(1.0, max(high, value + half))
    return Interval(100.0 * value, 100.0 * low, 100.0 * high, BOOTSTRAP_OR_HOEFFDING)


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int = 0,
                      resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE) -> Interval:  # fmt: skip
    """mean(a) - mean(b) in percent for paired per-sample outcomes (e.g. 1 = correct), with a paired
    percentile-bootstrap interval: both models are scored on the same resampled samples."""
    a = _finite(a, "a")
    b = _finite(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must be paired (same length), got {len(a)} and {len(b)}")
    diff = a - b
    rng = np.random.default_rng(seed)
    boot = np.concatenate([(_counts(rng, b, len(diff)) @ diff) / len(diff)
                           for b in _chunks(resamples, len(diff), 0)])  # fmt: skip
    low, high = _percentiles(boot, confidence)
    return Interval(100.0 * float(diff.mean()), 100.0 * low, 100.0 * high, PAIRED_BOOTSTRAP)


def paired_mean_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """mean(a_i - b_i) over paired runs (one per seed: e.g. a baseline's gap and AMUN's on the same forget
    set), in the inputs' unit, with a Student-t interval (n - 1 degrees of freedom, ddof-1 standard
    deviation). With a handful of seeds a bootstrap could only repeat the few differences seen; the t
    interval is the honest width. A method is better only where the interval excludes 0."""
    a = _finite(a, "a")
    b = _finite(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must be paired (one value per seed each), got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        raise ValueError(f"a paired interval needs at least 2 seeds (n - 1 degrees of freedom), got {n}")
    diff = a - b
    mean = float(diff.mean())
    half = float(student_t.ppf(0.5 + confidence / 2.0, n - 1)) * float(diff.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half,
                    f"paired per-seed mean difference, Student t with {n - 1} df (ddof 1), n = {n}")


PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


def decide(interval: Interval, low: float | None, high: float | None) -> str:
    """pass when the whole interval lies inside [low, high] (None = unbounded), fail when it lies wholly
    outside, inconclusive when it straddles a bound: the data cannot tell which side it is on."""
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    if lo <= interval.low and interval.high <= hi:
        return PASS
    if interval.high < lo or interval.low > hi:
        return FAIL
    return INCONCLUSIVE


def samples_needed_for_share(share: float, low: float | None, high: float | None,
                             confidence: float = CONFIDENCE) -> int | None:  # fmt: skip
    """The smallest n at which a share (percent) observed as now would have an exact interval that decides
    against [low, high] (see decide). None when the share sits on a bound or no n up to
    MAX_SAMPLES_NEEDED would do."""
    if share in (low, high):
        return None
    p = share / 100.0
    return _smallest(lambda n: decide(proportion(round(p * n), n, confidence), low, high) != INCONCLUSIVE)


def samples_needed_for_interval(interval: Interval, n: int, low: float | None, high: float | None) -> int | None:
    """About how many samples an interval from n samples would need to decide against [low, high],
    assuming its half-width shrinks as 1 / sqrt(n) around the same estimate. None when the estimate sits
    on a bound (no sample size decides it)."""
    edges = [edge for edge in (low, high) if edge is not None]
    distance = min(abs(interval.value - edge) for edge in edges)
    half = max(interval.value - interval.low, interval.high - interval.value)
    if distance == 0.0:
        return None
    if half <= distance:
        return n
    needed = math.ceil(n * (half / distance) ** 2)
    return needed if needed <= MAX_SAMPLES_NEEDED else None


def _smallest(decided) -> int | None:
    # decided(n) is (nearly) monotone in n for a fixed share: double to bracket, then bisect.
    hi = 1
    while not decided(hi):
        hi *= 2
        if hi > MAX_SAMPLES_NEEDED:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid
    return hi


def paired_auc_difference(pos_a: np.ndarray, neg_a: np.ndarray, pos_b: np.ndarray, neg_b: np.ndarray, *,
                          seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                          confidence: float = CONFIDENCE) -> Interval:  # fmt: skip
    """AUC(a) - AUC(b) in percent points, where a and b score the same samples (two models, one set of
    positives and negatives), with a paired bootstrap: each resample draws the same samples for both."""
    pos_a, neg_a = _finite(pos_a, "pos_a"), _finite(neg_a, "neg_a")
    pos_b, neg_b = _finite(pos_b, "pos_b"), _finite(neg_b, "neg_b")
    if len(pos_a) != len(pos_b) or len(neg_a) != len(neg_b):
        raise ValueError("a and b must score the same samples (equal lengths)")
    value = float(_aucs(pos_a[None], neg_a[None])[0] - _aucs(pos_b[None], neg_b[None])[0])
    auc_a, auc_b = _WeightedAuc(pos_a, neg_a), _WeightedAuc(pos_b, neg_b)
    rng = np.random.default_rng(seed)
    boot = []
    for b in _chunks(resamples, len(pos_a), len(neg_a)):
        w, v = _counts(rng, b, len(pos_a)), _counts(rng, b, len(neg_a))
        boot.append(auc_a(w, v) - auc_b(w, v))
    low, high = _percentiles(np.concatenate(boot), confidence)
    return Interval(100.0 * value, 100.0 * low, 100.0 * high, PAIRED_BOOTSTRAP)
