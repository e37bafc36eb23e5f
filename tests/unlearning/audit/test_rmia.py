"""RMIA: the soft-margin Taylor signal, the vectorised scores, the forget-vs-test AUC, and an end-to-end
attack on small MLPs that memorise noisy digits."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from unlearning.audit.metrics import predict_logits
from unlearning.audit.rmia import (
    RmiaResult,
    forget_test_auc,
    reference_signal,
    rmia_scores,
    soft_margin_taylor,
)

# ---- the signal ----


def test_soft_margin_taylor_matches_a_hand_computation_on_three_classes():
    # s = z / 2 = (1, 0, -0.5); t(u) = 1 + u + u^2/2 + u^3/6
    t_true = 1 + 0.4 + 0.4**2 / 2 + 0.4**3 / 6  # t(s_y - 0.6) = t(0.4)
    t_others = 1.0 + (1 - 0.5 + 0.25 / 2 - 0.125 / 6)  # t(0) + t(-0.5)
    got = soft_margin_taylor(np.array([[2.0, 0.0, -1.0]]), np.array([0]))
    np.testing.assert_allclose(got, [t_true / (t_others + t_true)], rtol=1e-12)


def test_soft_margin_taylor_matches_a_hand_computation_on_two_classes():
    t_true = 1 - 0.1 + 0.01 / 2 - 0.001 / 6  # s_y - m = 1/2 - 0.6 = -0.1
    got = soft_margin_taylor(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    np.testing.assert_allclose(got, [t_true / (1.0 + t_true)], rtol=1e-6)  # float32 logits


def test_soft_margin_taylor_accepts_torch_and_numpy_alike_and_returns_float64():
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(20, 5, generator=generator) * 4 - 1  # in [-1, 3): well inside the cubic's range
    y = torch.randint(0, 5, (20,), generator=generator)
    from_torch = soft_margin_taylor(logits, y)
    from_numpy = soft_margin_taylor(logits.numpy(), y.numpy())
    assert from_torch.dtype == np.float64 and from_torch.shape == (20,)
    np.testing.assert_allclose(from_torch, from_numpy)


def test_soft_margin_taylor_lies_in_unit_interval_where_the_cubic_is_positive():
    # t > 0 above its root -1.596: true-class logits above 2 * (-1.596 + 0.6), others above 2 * -1.596
    rng = np.random.default_rng(0)
    signal = soft_margin_taylor(rng.uniform(-1.9, 6.0, size=(500, 10)), rng.integers(0, 10, size=500))
    assert np.all((signal > 0) & (signal < 1))


def test_larger_true_class_logit_gives_a_larger_signal():
    logits = np.tile([0.0, 1.0, -1.0, 0.5], (9, 1))
    logits[:, 0] = np.linspace(-1.5, 8.0, 9)
    signal = soft_margin_taylor(logits, np.zeros(9, dtype=np.int64))
    assert np.all(np.diff(signal) > 0)


def test_soft_margin_taylor_warns_when_logits_are_too_negative_for_the_cubic():
    with pytest.warns(RuntimeWarning, match="1 of 2 soft-margin Taylor signals fall outside"):
        soft_margin_taylor(np.array([[2.0, 0.0], [2.0, -20.0]]), np.array([0, 0]))


# ---- the scores ----


def _hand_made(n=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.05, 0.95, size=n)
    ref = rng.uniform(0.05, 0.95, size=(k, n))
    ref_in = np.zeros((k, n), dtype=bool)
    for i in range(0, k, 2):  # pairs of complementary halves: every point is IN for k/2 models
        ref_in[i, rng.permutation(n)[: n // 2]] = True
        ref_in[i + 1] = ~ref_in[i]
    population = np.array([1, 4, 5, 9, 11])
    return target, ref, ref_in, population


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_rmia_scores_equal_a_brute_force_double_loop(mode):
    target, ref, ref_in, population = _hand_made()
    a, gamma = 0.3, 1.2  # gamma near 1 so that the counts are neither all 0 nor all 1
    p = np.empty(len(target))
    for j in range(len(target)):
        if mode == "online":
            p[j] = np.mean(ref[:, j])
        else:
            p_out = np.mean([ref[i, j] for i in range(len(ref)) if not ref_in[i, j]])
            p[j] = ((1 + a) * p_out + (1 - a)) / 2
    ratio = target / p
    expected = np.array([np.mean([ratio[x] / ratio[z] > gamma for z in population]) for x in range(len(target))])
    got = rmia_scores(target, ref, ref_in, population, mode=mode, offline_a=a, gamma=gamma)
    assert len(np.unique(got)) >= 3  # not a degenerate all-or-nothing case
    np.testing.assert_array_equal(got, expected)


def test_offline_reference_signal_applies_the_linear_in_correction():
    ref = np.array([[0.9, 0.2], [0.4, 0.6], [0.5, 0.7]])
    ref_in = np.array([[True, False], [False, False], [False, True]])
    # point 0: P_out = mean(0.4, 0.5) = 0.45; point 1: P_out = mean(0.2, 0.6) = 0.4
    expected = [((1 + 0.3) * 0.45 + 0.7) / 2, ((1 + 0.3) * 0.4 + 0.7) / 2]
    np.testing.assert_allclose(reference_signal(ref, ref_in, mode="offline", offline_a=0.3), expected)


def test_online_reference_signal_averages_all_references():
    ref = np.array([[0.9, 0.2], [0.4, 0.6]])
    ref_in = np.array([[True, False], [False, True]])
    np.testing.assert_allclose(reference_signal(ref, ref_in, mode="online"), [0.65, 0.4])


def test_offline_mode_rejects_points_without_an_out_reference():
    target, ref, ref_in, population = _hand_made()
    ref_in[:, [2, 7]] = True
    with pytest.raises(ValueError, match="2 of 12 points have no OUT reference model"):
        rmia_scores(target, ref, ref_in, population, mode="offline")


def test_rmia_scores_reject_mismatched_shapes_and_bad_population():
    target, ref, ref_in, population = _hand_made()
    with pytest.raises(ValueError, match=r"ref must have shape \(k, 12\)"):
        rmia_scores(target, ref[:, :5], ref_in, population)
    with pytest.raises(ValueError, match="boolean"):
        rmia_scores(target, ref, ref_in.astype(int), population)
    with pytest.raises(ValueError, match=r"population indices must lie in \[0, 12\)"):
        rmia_scores(target, ref, ref_in, np.array([0, 12]))


def test_a_ratio_exactly_gamma_times_a_population_ratio_does_not_count():
    # ratios 1.6, 0.8, 0.4, each exactly twice the next in binary: a ratio of gamma is not "> gamma"
    target = np.array([0.8, 0.4, 0.2])
    ref = np.full((1, 3), 0.5)
    scores = rmia_scores(target, ref, np.zeros((1, 3), dtype=bool), np.array([1, 2]), mode="online", gamma=2.0)
    np.testing.assert_array_equal(scores, [0.5, 0.0, 0.0])  # 1.6 beats only 0.4; 0.8 ties with 2 x 0.4


def test_zero_reference_signal_does_not_divide_by_zero():
    target = np.array([0.5, 0.5, 0.5])
    ref = np.array([[0.0, 0.5, 0.5]])
    scores = rmia_scores(target, ref, np.zeros((1, 3), dtype=bool), np.array([1, 2]), mode="online")
    np.testing.assert_array_equal(scores, [1.0, 0.0, 0.0])


# ---- forget-vs-test AUC and the result record ----


def test_forget_test_auc_is_about_fifty_for_identical_distributions():
    rng = np.random.default_rng(0)
    mean, _ = forget_test_auc(rng.normal(size=2000), rng.normal(size=3000))
    assert mean == pytest.approx(50.0, abs=3.0)


def test_forget_test_auc_is_about_hundred_for_separated_scores():
    rng = np.random.default_rng(0)
    mean, std = forget_test_auc(rng.uniform(0.6, 1.0, size=300), rng.uniform(0.0, 0.4, size=500))
    assert mean == pytest.approx(100.0) and std == pytest.approx(0.0)


def test_forget_test_auc_reports_the_spread_over_seeds():
    rng = np.random.default_rng(0)
    forget, test = rng.normal(0.3, 1, size=100), rng.normal(size=1000)
    _, std = forget_test_auc(forget, test, seeds=(0, 1, 2, 3))
    assert std > 0.0
    assert forget_test_auc(forget, test, seeds=(5,))[1] == 0.0


def test_rmia_result_is_frozen_and_checks_its_mode():
    result = RmiaResult(auc_mean=50.2, auc_std=0.4, n_reference=4, mode="offline", gamma=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.auc_mean = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="mode 'lira'"):
        RmiaResult(auc_mean=50.0, auc_std=0.0, n_reference=4, mode="lira", gamma=2.0)


# ---- end to end: MLPs that memorise ----

N_POOL = 1000  # digits drawn for the pool; the target trains on half of them
N_REF = 4  # reference models: two pairs trained on complementary halves of the pool
N_POPULATION = 100  # target non-members used as the population z


def _train_mlp(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
    # Full-batch AdamW to 100% training accuracy on 20%-noisy labels: the net must memorise the
    # flipped samples, which is what membership inference detects. Label smoothing keeps the logits
    # moderate, where the soft-margin Taylor signal is well behaved.
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.3).backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def attack():
    digits = load_digits()
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(digits.target))[:N_POOL]
    x = torch.tensor(digits.data[pick] / 16.0, dtype=torch.float32)  # N, 64
    labels = digits.target[pick].copy()
    noisy = rng.random(N_POOL) < 0.2
    labels[noisy] = rng.integers(0, 10, size=int(noisy.sum()))
    y = torch.tensor(labels)

    members = rng.permutation(N_POOL)[: N_POOL // 2]
    non_members = np.setdiff1d(np.arange(N_POOL), members)
    rng.shuffle(non_members)
    ref_in = np.zeros((N_REF, N_POOL), dtype=bool)
    for i in range(0, N_REF, 2):
        ref_in[i, rng.permutation(N_POOL)[: N_POOL // 2]] = True
        ref_in[i + 1] = ~ref_in[i]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny full-batch steps: extra threads only add contention on busy cores

    def signal(net):
        return soft_margin_taylor(predict_logits(net, x), y)

    with warnings.catch_warnings():  # a few signals may leave (0, 1]; that warning is tested above
        warnings.simplefilter("ignore", RuntimeWarning)
        target = signal(_train_mlp(x[members], y[members], seed=100))
        ref = np.stack([signal(_train_mlp(x[ref_in[i]], y[ref_in[i]], seed=i)) for i in range(N_REF)])
    torch.set_num_threads(threads)
    population = non_members[:N_POPULATION]
    rest = non_members[N_POPULATION:]
    half = len(rest) // 2
    return {"target": target, "ref": ref, "ref_in": ref_in, "population": population,
            "members": members, "held_out_a": rest[:half], "held_out_b": rest[half:]}


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_rmia_tells_members_from_non_members_of_a_memorising_model(attack, mode):
    scores = rmia_scores(attack["target"], attack["ref"], attack["ref_in"], attack["population"], mode=mode)
    auc, _ = forget_test_auc(scores[attack["members"]], scores[attack["held_out_a"]])
    assert auc > 60.0


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_rmia_cannot_tell_two_disjoint_non_member_sets_apart(attack, mode):
    scores = rmia_scores(attack["target"], attack["ref"], attack["ref_in"], attack["population"], mode=mode)
    auc, _ = forget_test_auc(scores[attack["held_out_a"]], scores[attack["held_out_b"]])
    assert auc == pytest.approx(50.0, abs=12.0)
