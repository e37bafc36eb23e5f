"""MIS, the "MIA-efficacy" of SalUn: how much of the forget set a confidence-only SVC calls unseen.

Constants as in SalUn (Fan et al., ICLR 2024), evaluation/SVC_MIA.py, which the AMUN paper reuses
(AMUN.md section 6): SVC(C=3, gamma="auto", kernel="rbf") on one feature, the softmax probability of
the true label; trained with |D_T| remaining samples as members (1) and D_T as non-members (0); the
score is the share of D_F predicted non-member, in percent.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

SVC_C = 3.0  # SalUn's SVC_fit_predict
SVC_GAMMA = "auto"  # = 1 / n_features = 1 for the single confidence feature
SVC_KERNEL = "rbf"


def _probs(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one true-class probability per sample), got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{name} must hold probabilities in [0, 1], got range [{np.nanmin(arr)}, {np.nanmax(arr)}]")
    return arr


def mis_score(forget_prob: np.ndarray, retain_prob: np.ndarray, test_prob: np.ndarray, seed: int = 0) -> float:
    """Percentage of forget samples an SVC, fit on retain (members) vs test (non-members), calls non-member.

    Deviation from SalUn: it takes the *first* |D_T| samples of D_R as members; here they are drawn at
    random (seeded, without replacement; all of D_R if it is smaller), so the score does not depend on
    the order in which the remaining set happens to be stored.
    """
    forget = _probs(forget_prob, "forget_prob")
    retain = _probs(retain_prob, "retain_prob")
    test = _probs(test_prob, "test_prob")
    rng = np.random.default_rng(seed)
    n_members = min(len(test), len(retain))
    members = retain[rng.choice(len(retain), size=n_members, replace=False)]
    x = np.concatenate([members, test])[:, None]  # n, 1
    labels = np.concatenate([np.ones(n_members), np.zeros(len(test))])
    clf = SVC(C=SVC_C, gamma=SVC_GAMMA, kernel=SVC_KERNEL)
    clf.fit(x, labels)
    return 100.0 * float(np.mean(clf.predict(forget[:, None]) == 0))
