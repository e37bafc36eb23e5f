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


def test_fit_on_the_gpu_draws_augmentation_on_the_device_and_masks_exactly(monkeypatch):
    import torch.nn as nn

    from unlearning import imageset
    from unlearning.loop import Part, Schedule, fit

    devices = []
    real = imageset.augment_batch

    def spy(x, spec, generator=None):
        devices.append((x.device.type, generator.device.type))
        return real(x, spec, generator)

    monkeypatch.setattr("unlearning.loop.augment_batch", spy)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).cuda()
    masks = {p: (torch.rand_like(p) < 0.5).float() for p in net.parameters()}
    before = [p.detach().clone() for p in net.parameters()]
    part = Part(torch.rand(64, 1, 8, 8, device="cuda"), torch.randint(0, 3, (64,), device="cuda"))
    fit(net, [part], epochs=2, batch_size=16, schedule=Schedule(0.05), momentum=0.9, weight_decay=5e-4,
        augment=AugmentSpec(1, True), generator=torch.Generator().manual_seed(0), masks=masks)
    assert devices and set(devices) == {("cuda", "cuda")}
    for p, p0 in zip(net.parameters(), before):
        assert torch.equal(p[masks[p] == 0], p0[masks[p] == 0])
