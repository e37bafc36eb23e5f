"""Command line of the benchmark: run a profile (or one section of it) and write
bench/results/<profile>.{json,md,png}.

Each section's raw results go to <profile>.<section>.json; the profile's result files are then rebuilt
from every section file present, so sections run by separate commands merge into one result. Trained
models are cached (bench/cache), so the sections share the original, its references and T's retrain.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from unlearning.bench import report
from unlearning.bench.profiles import PROFILES, cifar10_profile
from unlearning.bench.run import SECTIONS, Bench
from unlearning.progress import TerminalBar


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    desc = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} using {torch.get_num_threads()} threads"
    if device.type == "cuda":
        desc += f", GPU {torch.cuda.get_device_name(device)}"
    return desc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearning.bench", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke",
                        help="smoke: seconds, for tests; cpu: Fashion-MNIST subset, about an hour on 2 cores; "
                             "gpu: full Fashion-MNIST with ResNet-18")
    parser.add_argument("--cifar10", metavar="DIR",
                        help="with --profile gpu: run on the CIFAR-10 python batches in DIR instead")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for the results")
    parser.add_argument("--cache", type=Path, default=Path("bench/cache"),
                        help="folder caching trained originals, retrains and reference models")
    parser.add_argument("--no-cache", action="store_true",
                        help="train every model in this run, so every retrain time is measured now")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--no-resume", action="store_true",
                        help="tune everything again, even what an interrupted run's partial file holds")
    parser.add_argument("--section", choices=("all",) + SECTIONS, default="all",
                        help="tune: the radius study and every setting's schedule; table: 10%% forgetting per "
                             "seed (needs tune's results); stream: the successive small requests; all: the three "
                             "in order (default)")
    args = parser.parse_args(argv)

    profile = PROFILES[args.profile]
    if args.cifar10:
        if args.profile != "gpu":
            parser.error("--cifar10 goes with --profile gpu")
        profile = cifar10_profile(args.cifar10)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    sections = SECTIONS if args.section == "all" else (args.section,)

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    command = "python -m unlearning.bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    # one partial file per section run, so sections running side by side do not overwrite each other's
    partial = args.out / (f"{profile.name}.partial.json" if args.section == "all"
                          else f"{profile.name}.{args.section}.partial.json")

    def snapshot(out: dict) -> None:
        """The results so far, so a run stopped early (a time limit, a lost machine) keeps what it measured."""
        args.out.mkdir(parents=True, exist_ok=True)
        partial.write_text(report.to_json({**_without_panels(out), "command": command, "complete": False}))

    if device.type == "cuda":
        # fixed input shapes throughout: let cuDNN pick the fastest convolution algorithms once
        torch.backends.cudnn.benchmark = True
    # a table or stream run on its own takes what the tune section chose (while a tune run is still
    # going, its partial results already hold the radius study's choice)
    earlier: dict = {}
    if "tune" not in sections:
        for name in (f"{profile.name}.tune.json", f"{profile.name}.tune.partial.json"):
            if (args.out / name).exists():
                found = json.loads((args.out / name).read_text())
                earlier = {k: found[k] for k in ("attack", "tuning") if found.get(k)}
                if earlier:
                    log(f"tuning results from {name}: {', '.join(earlier)}")
                    break
    # a tune run picks up where an interrupted one of the same profile stopped (its partial file)
    resume: dict = {}
    if "tune" in sections and partial.exists() and not args.no_resume:
        found = json.loads(partial.read_text())
        resume = {k: found[k] for k in ("attack", "tuning") if found.get(k)}
        if resume:
            log(f"resuming from {partial.name}: {', '.join(resume)}"
                + (f" ({len(resume['tuning']['schedule'])} settings tuned)" if "tuning" in resume else ""))
    bench = Bench(profile, device=str(device), cache_dir=None if args.no_cache else args.cache,
                  progress=(lambda label: None) if args.quiet else (lambda label: TerminalBar(label)), log=log,
                  snapshot=snapshot, earlier=earlier, resume=resume)
    try:
        out = bench.run(sections)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = {"machine": machine(device), "command": command, "seconds": out["total_seconds"]}
    for section in sections:
        raw = {**_without_panels(out), **stamp, "section": section}
        raw = {k: v for k, v in raw.items() if _OWNER.get(k, section) == section}
        (args.out / f"{profile.name}.{section}.json").write_text(report.to_json(raw))
    if "panels" in out:
        report.save_panels(out["panels"], args.out / f"{profile.name}.panels.npz")
    result = report.merge(profile, args.out)
    for path in report.write(result, args.out):
        log(f"wrote {path}")
    partial.unlink(missing_ok=True)
    return 0


# the keys each section's file holds; the rest (the original's figures, machine, command) every file has
SECTION_KEYS = {
    "tune": ("attack", "tuning"),
    "table": ("runs", "retrain_vs_retrain_runs"),
    "stream": ("stream_tuning", "stream_runs"),
}
_OWNER = {key: section for section, keys in SECTION_KEYS.items() for key in keys}


def _without_panels(out: dict) -> dict:
    return {k: v for k, v in out.items() if k != "panels"}


if __name__ == "__main__":
    sys.exit(main())
