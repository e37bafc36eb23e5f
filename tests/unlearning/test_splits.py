import numpy as np
import pytest

from unlearning.splits import holdout_split, reference_membership, reference_seed


@pytest.mark.parametrize("n", [10, 11, 1000])
def test_each_pair_of_reference_models_trains_on_complementary_halves(n):
    membership = reference_membership(n, 6)
    assert membership.shape == (6, n) and membership.dtype == bool
    for pair in range(3):
        first, second = membership[2 * pair], membership[2 * pair + 1]
        assert not (first & second).any() and (first | second).all()
        assert first.sum() == n // 2


@pytest.mark.parametrize("k", [2, 4, 8])
def test_every_sample_is_out_of_exactly_half_the_reference_models(k):
    membership = reference_membership(101, k)
    assert ((~membership).sum(axis=0) == k // 2).all()


def test_pairs_draw_different_halves():
    membership = reference_membership(1000, 4)
    assert not np.array_equal(membership[0], membership[2])


def test_the_halves_are_the_ones_stored_reference_sets_were_trained_on():
    # pair p's half is the first n // 2 of a permutation drawn with rng seed 1000 + p, as it always was: a
    # different draw would make every stored membership matrix disagree with its models
    n = 50
    membership = reference_membership(n, 4)
    for pair in range(2):
        half = np.random.default_rng(1000 + pair).permutation(n)[: n // 2]
        assert np.array_equal(np.flatnonzero(membership[2 * pair]), np.sort(half))


def test_reference_models_train_with_seeds_100_and_up():
    assert [reference_seed(i) for i in range(4)] == [100, 101, 102, 103]


@pytest.mark.parametrize("k", [0, 1, 3])
def test_an_odd_or_too_small_number_of_reference_models_is_refused(k):
    with pytest.raises(ValueError, match="even"):
        reference_membership(10, k)


@pytest.mark.parametrize("n", [9, 10, 2001])
def test_the_held_out_and_scored_halves_partition_the_test_split(n):
    held_out, scored = holdout_split(n, seed=0)
    assert len(held_out) == n // 2 and len(scored) == n - n // 2
    assert np.array_equal(np.sort(np.concatenate([held_out, scored])), np.arange(n))
    assert (np.diff(held_out) > 0).all() and (np.diff(scored) > 0).all()


def test_the_held_out_half_is_reproducible_by_seed_and_differs_between_seeds():
    assert all(np.array_equal(a, b) for a, b in zip(holdout_split(500, seed=7), holdout_split(500, seed=7)))
    assert not np.array_equal(holdout_split(500, seed=0)[0], holdout_split(500, seed=12345)[0])


def test_the_held_out_half_is_the_one_earlier_audits_and_benchmarks_used():
    # the first half of a permutation drawn with the caller's seed: the service's seed 0 and the benchmark's
    # 12345 keep the splits (and so the results) they had
    for seed in (0, 12345):
        order = np.random.default_rng(seed).permutation(300)
        held_out, scored = holdout_split(300, seed=seed)
        assert np.array_equal(held_out, np.sort(order[:150])) and np.array_equal(scored, np.sort(order[150:]))


def test_excluded_samples_are_out_of_every_reference_model_and_the_rest_split_in_halves():
    n, excluded = 101, np.array([0, 5, 17, 99])
    membership = reference_membership(n, 4, excluded=excluded)
    assert not membership[:, excluded].any()
    kept = np.setdiff1d(np.arange(n), excluded)
    assert ((~membership[:, kept]).sum(axis=0) == 2).all()  # every kept sample OUT of exactly k/2
    assert membership[0, kept].sum() == len(kept) // 2


def test_no_exclusions_draw_the_same_halves_as_before_exclusions_existed():
    assert np.array_equal(reference_membership(50, 4, excluded=np.array([], dtype=int)), reference_membership(50, 4))
