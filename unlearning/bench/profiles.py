"""Benchmark profiles: the data, the architecture, the recipes and the sizes of one benchmark run."""

from __future__ import annotations

from dataclasses import dataclass, field

from unlearning.specs import (
    AMUN_METHODS,
    ArchSpec,
    AttackConfig,
    AugmentSpec,
    DatasetSpec,
    StopConfig,
    TrainConfig,
    UnlearnConfig,
)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
BASELINES = ("ft", "rl", "ga", "bs", "l1_sparse", "salun")


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: DatasetSpec
    arch: ArchSpec
    recipe: TrainConfig  # the original model's recipe, also used to retrain and for reference models
    unlearn: UnlearnConfig  # shared by every method; lr and step come from tuning, eps_init from the radius study
    lr_grid: tuple[float, ...]  # tried with the remaining data (each try costs epochs over D_R)
    # tried without it: cheap (D_F and D_A only), and the baselines there need much gentler rates
    lr_grid_no_retain: tuple[float, ...] = (0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 1e-4)
    step_grid: tuple[int, ...] = (1, 5)  # StepLR step sizes tuned with the rate (the paper's {1, 5})
    tuning_runs: int = 2  # runs per tuned setting, scored on their mean
    max_acc_drop: float = 1.0  # utility constraint: validation accuracy within this many points of the original
    salun_ratios: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)  # SalUn's mask ratio, searched at the tuned schedule
    # AMUN's fine-tuning mix, tuned with the schedule: with D_F (the paper's default) and without (D_R u D_A)
    forget_mixes: tuple[bool, ...] = (True, False)
    eps_rules: tuple[str, ...] = ("quantile", "median", "fixed")  # starting-radius rules the radius study compares
    radius_lr: tuple[float, float] = (0.05, 0.05)  # AMUN's rate in the radius study: with D_R, without
    train_size: int | None = None  # class-balanced subset of the train split; None = all of it
    test_size: int | None = None  # likewise for the test split, which is halved: validation | evaluation
    forget_fraction: float = 0.1
    retain_multiple: float = 4.0  # subsampled mode: remaining samples per epoch, as a multiple of |D_F|
    retain_min: int = 1024  # subsampled mode: but at least this many (8 batches of 128), for small requests
    reference_models: int = 4  # offline RMIA, trained in complementary pairs on halves of the train split
    seeds: tuple[int, ...] = (0, 1, 2)  # one forget set (and run) per seed
    retain_eval_size: int = 2000  # sample of D_R that accuracy and MIS are measured on
    methods: tuple[str, ...] = AMUN_METHODS + BASELINES
    stop: StopConfig = field(default_factory=StopConfig)  # the stopping rule's setting for the "+stop" rows
    # every method without the remaining data runs, and is tuned, under the service's utility guard (validation
    # accuracy within max_acc_drop of the original's, the best passing point returned): nothing would repair a
    # damaged model, and under the 1-point constraint alone every such setting tuned to a rate that changes
    # nothing (the cpu profile's first tuning: lr 1e-4 for AMUN, at a gap equal to the original's)
    guard_no_retain: StopConfig | None = field(default_factory=lambda: StopConfig(tolerance=None, checks_per_epoch=1))
    # the stream: many small successive requests, as a deletion service receives them
    stream_requests: int = 10
    stream_fraction: float = 0.01  # of the training data, per request
    stream_seeds: tuple[int, ...] = (0, 1, 2)
    stream_tuning_requests: int = 3  # the tuning stream, drawn from the tuning subset
    stream_tuning_runs: int = 1  # a tuning stream of 3 requests already averages over 3 requests
    stream_lr_grid: tuple[float, ...] = (0.05, 0.02, 0.01, 0.005)  # with the remaining data
    stream_baselines: tuple[str, ...] = BASELINES
    # the baselines' streams in the mode whose cost matches subsampled AMUN's: what a cheap stream is
    # compared with ("full" costs 10 epochs of D_R a request; sized for 90 minutes on 2 cores)
    stream_baseline_modes: tuple[str, ...] = ("subsampled",)
    # every stream request runs with the utility guard, as the service's jobs do; one check an epoch (each
    # check predicts the held-out half)
    stream_stop: StopConfig | None = field(default_factory=lambda: StopConfig(tolerance=None, checks_per_epoch=1))
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
    step_grid=(1,),
    tuning_runs=1,
    salun_ratios=(0.3, 0.5),
    eps_rules=("quantile", "median"),
    train_size=300,
    forget_fraction=0.1,
    retain_min=64,
    reference_models=2,
    seeds=(0, 1),
    retain_eval_size=300,
    methods=("amun", "amun_salun", "rl", "ft"),
    stream_requests=2,
    stream_fraction=0.02,
    stream_seeds=(0,),
    stream_tuning_requests=2,
    stream_lr_grid=(0.05,),
    stream_baselines=("rl",),
    notes="pipeline check only: numbers from a few hundred 8x8 digits mean nothing",
)

# The paper's regime on 2 CPU cores: the original fits its training data (no random crop: with it this
# small CNN stops at 96.5% train accuracy), 5 seeds so that paired differences have intervals, and each
# section (table, stream) within 90 minutes.
CPU = Profile(
    name="cpu",
    dataset=DatasetSpec("idx", FASHION_MNIST),
    arch=ArchSpec("small_cnn", num_classes=10, in_channels=1, image_size=28, width=16),
    recipe=TrainConfig(epochs=60, lr=0.05, batch_size=128, schedule="cosine",
                       augment=AugmentSpec(crop_padding=0, hflip=True)),
    unlearn=UnlearnConfig(**_FT, augment=AugmentSpec(crop_padding=0, hflip=True)),
    lr_grid=(0.05, 0.02, 0.01, 0.005),
    train_size=4000,
    test_size=4000,
    seeds=(0, 1, 2, 3, 4),
    notes="Fashion-MNIST subset, small CNN fitting its training data; each section sized for 90 minutes on 2 CPU cores",
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
    step_grid=(1,),
    tuning_runs=1,
    salun_ratios=(0.5,),
    eps_rules=("quantile", "median"),
    reference_models=2,
    retain_eval_size=5000,
    retain_min=4096,
    stream_seeds=(0,),
    stream_lr_grid=(0.05, 0.01),
    stream_baselines=("rl", "salun"),
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

