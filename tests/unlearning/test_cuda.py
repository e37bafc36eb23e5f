"""The CUDA path: data, attack and fine-tuning stay on the GPU. Skipped on machines without one."""

import numpy as np
import pytest
import torch

from unlearning.attack import closest_adversarial
from unlearning.methods import run_unlearning
from unlearning.specs import AttackConfig, AugmentSpec, UnlearnConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_amun_runs_on_the_gpu_and_returns_a_gpu_model(tiny_model, digits):
    model = tiny_model.to("cuda")
    train = digits.train.to("cuda")
    forget, retain = train.subset(np.arange(40)), train.subset(np.arange(40, len(train)))
    cfg = UnlearnConfig(method="amun", epochs=1, batch_size=64, augment=AugmentSpec(1, False),
                        attack=AttackConfig(eps_init=0.2, steps=10))
    result = run_unlearning(model, forget, retain, cfg)
    assert next(result.model.parameters()).is_cuda
    tiny_model.to("cpu")


def test_attack_on_gpu_matches_its_contract(tiny_model, digits):
    model = tiny_model.to("cuda")
    x, y = digits.train.x[:64].cuda(), digits.train.y[:64].cuda()
    adv = closest_adversarial(model, x, y, AttackConfig(eps_init=0.1))
    assert adv.x.is_cuda and adv.flipped.all()
    with torch.no_grad():
        assert torch.equal(model.eval()(adv.x).argmax(1), adv.y)
    assert ((adv.x - x).flatten(1).norm(dim=1) <= adv.eps + 1e-5).all()
    tiny_model.to("cpu")


def test_training_keeps_data_and_model_on_the_gpu(digits, tiny_arch):
    from unlearning.specs import TrainConfig
    from unlearning.train import train_model

    train = digits.train.to("cuda")
    result = train_model(tiny_arch, train, TrainConfig(epochs=2, batch_size=64, augment=AugmentSpec(1, True)),
                         device="cuda")
    assert next(result.model.parameters()).is_cuda
    with torch.no_grad():
        assert result.model.eval()(train.x[:8]).is_cuda


def test_the_smoke_benchmark_runs_end_to_end_on_the_gpu(tmp_path):
    from unlearning.bench.__main__ import main

    assert main(["--profile", "smoke", "--device", "cuda", "--out", str(tmp_path), "--no-cache", "--quiet"]) == 0
    assert "GPU" in (tmp_path / "smoke.json").read_text()
    assert not (tmp_path / "smoke.partial.json").exists()
