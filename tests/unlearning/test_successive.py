import numpy as np
import pytest

import unlearning.successive as successive
from unlearning.specs import AttackConfig, AugmentSpec, UnlearnConfig

CFG = UnlearnConfig(method="amun", retain_access=True, epochs=1, batch_size=64,
                    augment=AugmentSpec(1, False), attack=AttackConfig(eps_init=0.2, steps=5))


def _requests(digits, k=3, size=20):
    ids = np.random.default_rng(1).permutation(digits.train.ids)
    return [ids[i * size:(i + 1) * size] for i in range(k)]


def test_each_request_trains_without_every_sample_forgotten_before(tiny_model, digits, monkeypatch):
    seen = []
    real = successive.run_unlearning

    def spy(model, forget, retain, cfg, **kw):
        seen.append((set(forget.ids.tolist()), set(retain.ids.tolist())))
        return real(model, forget, retain, cfg, **kw)

    monkeypatch.setattr(successive, "run_unlearning", spy)
    requests = _requests(digits)
    outcomes = list(successive.successive_unlearn(tiny_model, digits.train, requests, CFG))
    assert len(outcomes) == 3
    for k, (forget_ids, retain_ids) in enumerate(seen):
        forgotten_so_far = set(np.concatenate(requests[: k + 1]).tolist())
        assert not retain_ids & forgotten_so_far
        assert len(retain_ids) == len(digits.train) - len(forgotten_so_far) == outcomes[k].retain_size
        assert forget_ids == set(requests[k].tolist())


def test_model_carries_over_from_request_to_request(tiny_model, digits):
    outcomes = list(successive.successive_unlearn(tiny_model, digits.train, _requests(digits, k=2), CFG))
    first, second = (o.result.model for o in outcomes)
    assert first is not second
    # the second request started from the first's weights, not from the original
    assert second is not tiny_model and outcomes[1].forgotten_before.tolist() == outcomes[0].forget_ids.tolist()


def test_a_request_that_repeats_a_forgotten_sample_is_refused(tiny_model, digits):
    r = _requests(digits, k=1)[0]
    with pytest.raises(ValueError, match="already forgotten"):
        list(successive.successive_unlearn(tiny_model, digits.train, [r, r[:3]], CFG))


def test_amun_variant_reuses_adversarial_examples_of_the_original(tiny_model, digits, monkeypatch):
    calls = []
    real = successive.closest_adversarial

    def spy(model, *a, **kw):
        calls.append(model)
        return real(model, *a, **kw)

    monkeypatch.setattr(successive, "closest_adversarial", spy)
    list(successive.successive_unlearn(tiny_model, digits.train, _requests(digits, k=2), CFG, variant="amun"))
    assert calls == [tiny_model, tiny_model]
