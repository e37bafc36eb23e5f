"""Intervals and three-way decisions: exact binomial intervals, bootstrap AUC and paired intervals, samples needed."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from unlearning.audit import stats


def test_exact_interval_of_a_proportion_is_clopper_pearson():
    ci = stats.proportion(4, 4)
    assert ci.value == 100.0 and ci.high == 100.0
    assert ci.low == pytest.approx(100 * 0.025 ** (1 / 4))  # the closed form for k = n
    zero = stats.proportion(0, 23)
    assert zero.low == 0.0 and zero.high == pytest.approx(100 * (1 - 0.025 ** (1 / 23)))


def test_proportion_refuses_impossible_counts():
    with pytest.raises(ValueError, match="n must be at least 1"):
        stats.proportion(0, 0)
    with pytest.raises(ValueError, match=r"successes must lie in \[0, 3\]"):
        stats.proportion(4, 3)


def test_binomial_excess_p_is_the_upper_tail():
    assert stats.binomial_excess_p(0, 10, 0.05) == 1.0
    assert stats.binomial_excess_p(4, 4, 0.05) == pytest.approx(0.05**4)


def test_bootstrap_auc_matches_sklearn_and_brackets_it():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.5, 1, 200), rng.normal(0, 1, 300)
    ci = stats.auc(pos, neg)
    expected = 100 * roc_auc_score(np.r_[np.ones(200), np.zeros(300)], np.r_[pos, neg])
    assert ci.value == pytest.approx(expected)
    assert ci.low < ci.value < ci.high and 5 < ci.high - ci.low < 20


def test_bootstrap_auc_counts_ties_half():
    ci = stats.auc(np.ones(30), np.ones(40))
    assert ci.value == ci.low == ci.high == 50.0


def test_bootstrap_auc_is_reproducible_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    neg = rng.normal(0, 1, 500)
    small, large = stats.auc(rng.normal(0, 1, 4), neg), stats.auc(rng.normal(0, 1, 400), neg)
    assert stats.auc(np.arange(4.0), neg) == stats.auc(np.arange(4.0), neg)
    assert (small.high - small.low) > 3 * (large.high - large.low)


def test_bootstrap_interval_covers_the_true_auc_about_95_percent_of_the_time():
    # the true AUC of N(d, 1) against N(0, 1) is Phi(d / sqrt 2); a wrong bootstrap would miss it often
    from scipy.stats import norm

    d, truth, rng = 0.5, 100 * norm.cdf(0.5 / np.sqrt(2)), np.random.default_rng(2)
    covered = sum(
        ci.low <= truth <= ci.high
        for ci in (stats.auc(rng.normal(d, 1, 60), rng.normal(0, 1, 200), seed=s, resamples=400) for s in range(100))
    )
    assert 88 <= covered <= 100


def test_paired_difference_of_identical_models_is_exactly_zero():
    correct = np.r_[np.ones(90), np.zeros(10)]
    ci = stats.paired_difference(correct, correct)
    assert (ci.value, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_paired_difference_sees_a_drop():
    before, after = np.ones(500), np.r_[np.ones(450), np.zeros(50)]
    ci = stats.paired_difference(before, after)
    assert ci.value == pytest.approx(10.0) and 6 < ci.low < 10 < ci.high < 14


def test_paired_auc_difference_of_one_model_with_itself_is_zero_and_of_a_shift_positive():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    same = stats.paired_auc_difference(pos, neg, pos, neg)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    shifted = stats.paired_auc_difference(pos + 1.0, neg, pos, neg)
    assert shifted.low > 10


@pytest.mark.parametrize(
    ("low", "high", "bounds", "result"),
    [
        (92.0, 99.0, (90.0, None), "pass"),
        (40.0, 100.0, (90.0, None), "inconclusive"),
        (60.0, 85.0, (90.0, None), "fail"),
        (45.0, 55.0, (40.0, 60.0), "pass"),
        (20.0, 90.0, (40.0, 60.0), "inconclusive"),
        (61.0, 70.0, (40.0, 60.0), "fail"),
        (-1.0, 2.0, (None, 3.0), "pass"),
    ],
)
def test_decide_passes_inside_fails_outside_and_is_inconclusive_across(low, high, bounds, result):
    assert stats.decide(stats.Interval((low + high) / 2, low, high, "x"), *bounds) == result


def test_samples_needed_for_a_share_is_the_first_n_that_decides():
    needed = stats.samples_needed_for_share(100.0, 90.0, None)
    assert needed == 36  # 36 of 36 gives a lower bound just above 90%, 35 of 35 just below
    assert stats.proportion(36, 36).low >= 90.0 > stats.proportion(35, 35).low
    assert stats.samples_needed_for_share(90.0, 90.0, None) is None  # on the bound: no n decides


def test_samples_needed_for_an_interval_scales_with_the_inverse_square_of_the_margin():
    iv = stats.Interval(55.0, 30.0, 80.0, "x")  # half-width 25, 5 points from the nearest edge
    assert stats.samples_needed_for_interval(iv, 4, 40.0, 60.0) == 4 * 25
    assert stats.samples_needed_for_interval(stats.Interval(60.0, 50.0, 70.0, "x"), 10, 40.0, 60.0) is None


def test_auc_interval_of_a_handful_of_samples_is_valid_not_the_bootstrap_alone():
    # four positives all below every negative: the bootstrap can only repeat them (interval [0, 0]); four
    # samples cannot rule out chance that firmly, so the interval reaches far up (Hoeffding at n = 4)
    ci = stats.auc(np.array([-4.0, -3.0, -2.0, -1.0]), np.arange(200.0))
    assert ci.value == 0.0 and ci.low == 0.0 and ci.high > 60
    assert "Hoeffding" in ci.method
    assert "Hoeffding" in stats.auc(np.arange(4.0), np.arange(200.0)).method


def test_paired_mean_difference_is_the_student_t_interval_of_the_per_seed_differences():
    # differences 2, 3, 1: mean 2, standard deviation (ddof 1) 1, t(0.975, 2 df) = 4.3027 (the table's 4.303)
    ci = stats.paired_mean_difference(np.array([3.0, 5.0, 4.0]), np.array([1.0, 2.0, 3.0]))
    half = 4.302652729749462 * 1.0 / np.sqrt(3)
    assert ci.value == pytest.approx(2.0)
    assert (ci.low, ci.high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert ci.low < 0 < ci.high  # three noisy seeds: not a difference
    assert "Student t with 2 df (ddof 1)" in ci.method


def test_paired_mean_difference_excludes_zero_for_a_steady_difference():
    # differences 2, 2.5, 1.5, 2, 3: mean 2.2, sd sqrt(1.3 / 4), t(0.975, 4 df) = 2.7764
    ci = stats.paired_mean_difference(np.array([2.0, 2.5, 1.5, 2.0, 3.0]), np.zeros(5))
    half = 2.7764451051977934 * np.sqrt(1.3 / 4) / np.sqrt(5)
    assert (ci.value, ci.low, ci.high) == (pytest.approx(2.2), pytest.approx(2.2 - half), pytest.approx(2.2 + half))
    assert ci.low > 0


def test_paired_mean_difference_refuses_one_seed_unpaired_inputs_and_nan():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.paired_mean_difference(np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="must be paired"):
        stats.paired_mean_difference(np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="non-finite"):
        stats.paired_mean_difference(np.array([1.0, np.nan]), np.array([0.0, 1.0]))
