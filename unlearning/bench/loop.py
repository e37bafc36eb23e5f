"""fit() against a bare PyTorch loop: samples per second over the same model, batches and augmentation.

The bare loop is what a PyTorch user would write with no bookkeeping: plain torch.optim.SGD, the loss
never read back, no progress, no divergence check. On CUDA both loops run bf16 autocast with channels_last
activations, so the ratio measures fit()'s own overhead, not a precision choice. The two alternate
(fit, bare, fit, bare, ...) so a machine that speeds up or slows down during the run affects both alike;
each figure is the median over rounds.

    python -m unlearning.bench.loop --profile cpu [--device cuda] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unlearning.bench.profiles import PROFILES, Profile
from unlearning.data import load_dataset, stratified_subset
from unlearning.imageset import ImageSet, augment_batch
from unlearning.loop import Part, Schedule, fit
from unlearning.models import build_model
from unlearning.specs import TrainConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fit_epochs(model, data: ImageSet, cfg: TrainConfig, epochs: int, seed: int) -> int:
    stats = fit(model, [Part(data.x, data.y, augment=True)], epochs=epochs, batch_size=cfg.batch_size,
                schedule=Schedule(cfg.lr, "constant"), momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                augment=cfg.augment, generator=torch.Generator().manual_seed(seed))
    return stats.samples_seen


def _bare_epochs(model, data: ImageSet, cfg: TrainConfig, epochs: int, seed: int) -> int:
    device = data.x.device
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator(device).manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    model.train()
    seen = 0
    for _ in range(epochs):
        order = torch.randperm(len(data.y), generator=gen, device=device)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb = augment_batch(data.x[idx], cfg.augment, gen)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    model.eval()
    return seen


def measure(profile: Profile, device: torch.device, *, rounds: int = 5, epochs: int = 1,
            train_size: int | None = None) -> dict[str, Any]:
    """Median samples/s of fit() and of the bare loop over `rounds` alternating rounds of `epochs` epochs."""
    data = load_dataset(profile.dataset, device=device).train
    size = train_size if train_size is not None else profile.train_size
    if size is not None and size < len(data):
        data = stratified_subset(data, size, seed=0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    models = {"fit": build_model(profile.arch).to(device), "bare": build_model(profile.arch).to(device)}
    runners = {"fit": _fit_epochs, "bare": _bare_epochs}
    for name in ("fit", "bare"):  # warm-up: allocator, cuDNN's algorithm search, lazy initialisation
        runners[name](models[name], data, profile.recipe, 1, seed=99)
    rates: dict[str, list[float]] = {"fit": [], "bare": []}
    for r in range(rounds):
        for name in ("fit", "bare"):
            _sync(device)
            start = time.perf_counter()
            seen = runners[name](models[name], data, profile.recipe, epochs, seed=r)
            _sync(device)
            rates[name].append(seen / (time.perf_counter() - start))
    fit_rate, bare_rate = statistics.median(rates["fit"]), statistics.median(rates["bare"])
    return {
        "device": str(device) if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})",
        "fit_samples_per_s": round(fit_rate, 1),
        "bare_samples_per_s": round(bare_rate, 1),
        "ratio": round(fit_rate / bare_rate, 3),
        "rounds": rounds,
        "epochs_per_round": epochs,
        "train_samples": len(data),
        "batch_size": profile.recipe.batch_size,
        "arch": f"{profile.arch.name} width {profile.arch.width}",
        "per_round": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearning.bench.loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per round")
    parser.add_argument("--train-size", type=int, help="training samples (default: the profile's)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here (default: print only)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1:
        parser.error("--rounds and --epochs must be at least 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    try:
        result = measure(PROFILES[args.profile], device, rounds=args.rounds, epochs=args.epochs,
                         train_size=args.train_size)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
