"""SalUn's MIA-efficacy (MIS) on constructed, separable confidences."""

import numpy as np
import pytest

from unlearning.audit.mis import mis_score

RNG = np.random.default_rng(0)
RETAIN = RNG.uniform(0.95, 1.0, size=2000)  # members: confident
TEST = RNG.uniform(0.25, 0.35, size=200)  # non-members: unsure


def test_forget_set_that_looks_like_training_data_scores_near_zero():
    forget = RNG.uniform(0.95, 1.0, size=300)
    assert mis_score(forget, RETAIN, TEST) <= 2.0


def test_forget_set_that_looks_like_unseen_data_scores_near_hundred():
    forget = RNG.uniform(0.25, 0.35, size=300)
    assert mis_score(forget, RETAIN, TEST) >= 98.0


def test_score_is_the_share_called_non_member_in_percent():
    forget = np.concatenate([np.full(30, 0.99), np.full(10, 0.3)])
    assert mis_score(forget, RETAIN, TEST) == pytest.approx(25.0)


def test_same_seed_gives_the_same_score():
    forget = RNG.uniform(0.0, 1.0, size=500)
    retain = RNG.uniform(0.5, 1.0, size=1000)
    assert mis_score(forget, retain, TEST, seed=3) == mis_score(forget, retain, TEST, seed=3)


def test_retain_smaller_than_test_is_used_whole():
    forget = RNG.uniform(0.25, 0.35, size=50)
    assert mis_score(forget, RETAIN[:50], TEST) >= 98.0


def test_probabilities_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="retain_prob must hold probabilities"):
        mis_score(np.array([0.5]), np.array([1.5, 0.9]), TEST)
