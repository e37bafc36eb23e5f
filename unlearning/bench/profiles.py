"""Benchmark profiles: the data, the architecture, the recipes and the sizes of one benchmark run."""

from __future__ import annotations

from dataclasses import dataclass, field

from unlearning.specs import ArchSpec, AttackConfig, AugmentSpec, DatasetSpec, StopConfig, TrainConfig, UnlearnConfig

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
BASELINES = ("ft", "rl", "ga", "bs", "l1_sparse", "salun")
AMUN_METHODS = ("amun", "amun_salun")


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: DatasetSpec
    arch: ArchSpec
    recipe: TrainConfig  # the original model's recipe, also used to retrain and for reference models
    unlearn: UnlearnConfig  # shared by every method; lr comes from tuning, eps_init from calibration
    lr_grid: tuple[float, ...]  # tried with the remaining data (each try costs epochs over D_R)
    # tried without it: cheap (D_F and D_A only), and the baselines there need much gentler rates
    lr_grid_no_retain: tuple[float, ...] = (0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 1e-4)
    train_size: int | None = None  # class-balanced subset of the train split; None = all of it
    test_size: int | None = None  # likewise for the test split, which is halved: validation | evaluation
    forget_fraction: float = 0.1
    successive_requests: int = 5
    successive_fraction: float = 0.02
    retain_multiple: float = 4.0  # subsampled mode: remaining samples per epoch, as a multiple of |D_F|
    reference_models: int = 4  # offline RMIA, trained in complementary pairs on halves of the train split
    seeds: tuple[int, ...] = (0, 1, 2)  # one forget set (and run) per seed
    retain_eval_size: int = 2000  # sample of D_R that accuracy and MIS are measured on
    methods: tuple[str, ...] = AMUN_METHODS + BASELINES
    stop: StopConfig = field(default_factory=StopConfig)  # the stopping rule's setting for the "+stop" rows
    notes: str = ""


_FT = dict(epochs=10, batch_size=128, momentum=0.9, weight_decay=5e-4, step_size=1, gamma=0.1)

SMOKE = Profile(
    name="smoke",
    dataset=DatasetSpec("digits", ""),
    arch=ArchSpec("small_cnn", num_classes=10, in_channels=1, image_size=8, width=8),
    recipe=TrainConfig(epochs=10, lr=0.05, batch_size=64, schedule="cosine",
                       augment=AugmentSpec(crop_padding=0, hflip=False)),
    unlearn=UnlearnConfig(**{**_FT, "epochs": 2, "batch_size": 64}, augment=AugmentSpec(crop_padding=0, hflip=False),
                          attack=AttackConfig(steps=10, calibration_samples=20)),
    lr_grid=(0.05,),
    lr_grid_no_retain=(0.05, 0.005),
    train_size=300,
    forget_fraction=0.1,
    successive_requests=2,
    successive_fraction=0.05,
    reference_models=2,
    seeds=(0, 1),
    retain_eval_size=300,
    notes="pipeline check only: numbers from a few hundred 8x8 digits mean nothing",
)

CPU = Profile(
    name="cpu",
    dataset=DatasetSpec("idx", FASHION_MNIST),
    arch=ArchSpec("small_cnn", num_classes=10, in_channels=1, image_size=28, width=16),
    recipe=TrainConfig(epochs=60, lr=0.05, batch_size=128, schedule="cosine",
                       augment=AugmentSpec(crop_padding=2, hflip=True)),
    unlearn=UnlearnConfig(**_FT, augment=AugmentSpec(crop_padding=2, hflip=True)),
    lr_grid=(0.2, 0.1, 0.05, 0.02),
    train_size=4000,
    test_size=4000,
    notes="Fashion-MNIST subset, small CNN; sized for about an hour on 2 CPU cores",
)

# Meant for about 8 minutes on one H100: all 60,000 training images, a narrow ResNet-18 (width 32), short
# recipes (8 epochs to train, 5 to unlearn) and a two-point lr grid; the run trains ~300 epochs' worth of
# models in all. Its first device run (bench/results/gpu-attempt.md) measured ~4-5 s per epoch whatever
# the width, so as it stands it takes about an hour: the per-step cost must be found before re-sizing.
_FT_GPU = dict(_FT, epochs=5, batch_size=256)
GPU = Profile(
    name="gpu",
    dataset=DatasetSpec("idx", FASHION_MNIST),
    arch=ArchSpec("resnet18_cifar", num_classes=10, in_channels=1, image_size=28, width=32),
    recipe=TrainConfig(epochs=8, lr=0.1, batch_size=256, schedule="cosine",
                       augment=AugmentSpec(crop_padding=4, hflip=True)),
    unlearn=UnlearnConfig(**_FT_GPU, augment=AugmentSpec(crop_padding=4, hflip=True),
                          attack=AttackConfig(batch_size=4096)),
    lr_grid=(0.05, 0.01),
    lr_grid_no_retain=(0.05, 0.01, 0.001, 1e-4),
    reference_models=2,
    retain_eval_size=5000,
    notes="full Fashion-MNIST, CIFAR-style ResNet-18 of width 32; first device run: about an hour, not 8 minutes",
)

PROFILES = {p.name: p for p in (SMOKE, CPU, GPU)}


def cifar10_profile(path: str) -> Profile:
    """The GPU profile on CIFAR-10 python batches at `path` (the paper's setting, shorter recipe)."""
    return Profile(
        **{**GPU.__dict__, "name": "gpu-cifar10", "dataset": DatasetSpec("cifar10", path),
           "arch": ArchSpec("resnet18_cifar", num_classes=10, in_channels=3, image_size=32, width=64),
           "notes": "CIFAR-10, CIFAR-style ResNet-18"},
    )

