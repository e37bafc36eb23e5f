"""Per-sample evidence: log-odds scores, p-values against never-seen data, and what a set's p-values say."""

import numpy as np
import pytest
import torch

from unlearning.audit import evidence as ev


def test_log_odds_of_the_true_class_match_the_softmax_and_stay_finite_when_it_saturates():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 60.0, 0.0]])
    y = torch.tensor([0, 1])
    scores = ev.log_odds_confidence(logits, y)
    p = torch.softmax(logits.double(), dim=1)[0, 0].item()
    assert scores[0] == pytest.approx(np.log(p / (1 - p)))
    assert np.isfinite(scores[1]) and scores[1] == pytest.approx(60.0 - np.log(2.0))


def test_p_values_count_held_out_scores_at_least_as_high():
    null = np.arange(99.0)  # 0 .. 98
    p = ev.p_values(np.array([98.0, 49.0, -1.0, 1000.0]), null)
    assert p.tolist() == [2 / 100, 51 / 100, 1.0, 1 / 100]


def test_p_values_of_never_seen_samples_are_uniform_so_about_alpha_are_flagged():
    rng = np.random.default_rng(0)
    null = rng.normal(size=2000)
    p = ev.p_values(rng.normal(size=20000), null)
    assert np.mean(p < ev.ALPHA) == pytest.approx(ev.ALPHA, abs=0.01)


def test_set_evidence_of_remembered_samples_flags_many_and_of_unseen_few():
    rng = np.random.default_rng(1)
    null = rng.normal(size=1000)
    remembered = ev.set_evidence(rng.normal(2.0, 1.0, size=400), null)
    unseen = ev.set_evidence(rng.normal(size=400), null)
    assert remembered.share.high < 70 and remembered.binomial_p < 1e-6 and remembered.auc.low > 85
    assert unseen.share.low > 90 and unseen.binomial_p > 0.01 and unseen.auc.low < 50 < unseen.auc.high


def test_a_retrained_model_passes_about_as_often_as_the_level_says_and_the_original_fails_when_large():
    # The set-level rule the report applies: pass when the exact interval of the indistinguishable share lies
    # above 90%, fail when below. Never-seen samples (a retrained model) must almost never fail; member-like
    # samples (the original) must fail once the set is large enough, and a 4-sample set never decides.
    from unlearning.audit import stats

    rng = np.random.default_rng(2)
    null = rng.normal(size=1000)

    def result(scores):  # set_evidence's share, without the AUC's bootstrap
        kept = int(np.sum(ev.p_values(scores, null) >= ev.ALPHA))
        return stats.decide(stats.proportion(kept, len(scores)), 90.0, None)

    retrained = [result(rng.normal(size=400)) for _ in range(200)]
    assert retrained.count("fail") <= 200 * 0.05 and retrained.count("pass") > 150
    assert [result(rng.normal(1.5, 1.0, size=400)) for _ in range(20)] == ["fail"] * 20
    assert {result(rng.normal(size=4)) for _ in range(50)} == {"inconclusive"}


def test_per_sample_rows_name_every_sample_and_its_set():
    rows = ev.per_sample_rows(np.array(["a", "b"]), ["current", "v2"], np.array([1.0, 2.0]), np.array([0.5, 0.01]))
    assert rows == [
        {"id": "a", "set": "current", "score": 1.0, "p_value": 0.5, "indistinguishable": True},
        {"id": "b", "set": "v2", "score": 2.0, "p_value": 0.01, "indistinguishable": False},
    ]
