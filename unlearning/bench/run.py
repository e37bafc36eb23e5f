"""The benchmark: every method with and without the remaining data at 10% random forgetting, and a
sequence of successive requests, all measured against models retrained from scratch in the same run.

Order of work (AMUN.md sections 6 and 8):
1. train the original model and the RMIA reference models (complementary halves of the train split);
2. on a separate tuning forget subset T: calibrate eps_init, retrain without T, pick each method's lr;
3. per seed: draw D_F from the train split minus T, retrain without it, run every method, audit each;
4. per seed: successive requests with AMUN-A (full, subsampled and without D_R), retrain without all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from unlearning.attack import calibrate_eps
from unlearning.audit.evaluate import RmiaAudit, evaluate, gaps
from unlearning.bench.profiles import Profile
from unlearning.data import Dataset, load_dataset, stratified_subset
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.methods import run_unlearning
from unlearning.models import checkpoint_bytes, load_checkpoint
from unlearning.progress import Progress
from unlearning.specs import UnlearnConfig, to_dict
from unlearning.successive import remaining, successive_unlearn
from unlearning.train import seeded_generator, train_model
from unlearning.tuning import tune_lr

ProgressFactory = Callable[[str], Progress | None]


@dataclass
class Trained:
    model: nn.Module
    seconds: float  # wall seconds of its training (as measured when it was trained)
    measured_now: bool  # False when loaded from the cache


class Bench:
    def __init__(self, profile: Profile, *, device: str, cache_dir: Path | None, progress: ProgressFactory,
                 log: Callable[[str], None], snapshot: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.p = profile
        # called with the results so far after each seed, so a run cut short still leaves its measurements
        self.snapshot = snapshot
        self.device = torch.device(device)
        self.cache_dir = cache_dir
        self.progress = progress
        self.log = log
        self.failures: list[str] = []  # runs that could not finish (e.g. diverged), reported with the results

    # ---- data and trained models ----

    def load(self) -> None:
        data = load_dataset(self.p.dataset, device=self.device)
        train, test = data.train, data.test
        if self.p.train_size is not None:
            train = stratified_subset(train, self.p.train_size, seed=0)
        if self.p.test_size is not None:
            test = stratified_subset(test, self.p.test_size, seed=0)
        # validation half: tuning, the stopping rule and RMIA's population; evaluation half: scored D_T
        order = np.random.default_rng(12345).permutation(len(test))
        half = len(test) // 2
        self.data = Dataset(train, test, data.classes, data.input_shape)
        self.val_pos, self.eval_pos = np.sort(order[:half]), np.sort(order[half:])
        self.val, self.test_eval = test.subset(self.val_pos), test.subset(self.eval_pos)
        self.log(f"data: {len(train)} train, {len(self.val)} validation, {len(self.test_eval)} evaluation test samples")

    def trained(self, label: str, data: ImageSet, seed: int = 0) -> Trained:
        """A model trained with the profile's recipe on `data` (from the cache when the same one exists)."""
        recipe = dataclasses.replace(self.p.recipe, seed=seed)
        key = hashlib.sha256(json.dumps([to_dict(self.p.arch), to_dict(recipe)], sort_keys=True).encode()
                             + "\n".join(sorted(data.ids.tolist())).encode()).hexdigest()[:20]
        path = self.cache_dir / self.p.name / f"{key}.safetensors" if self.cache_dir else None
        if path is not None and path.exists():
            ck = load_checkpoint(path, device=self.device)
            return Trained(ck.model.eval(), ck.extra["seconds"], measured_now=False)
        result = train_model(self.p.arch, data, recipe, device=self.device, progress=self.progress(label))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(checkpoint_bytes(result.model, recipe, {"seconds": result.seconds, "label": label}))
        return Trained(result.model.eval(), result.seconds, measured_now=True)

    def references(self) -> RmiaAudit:
        """k reference models on complementary random halves, so every sample is OUT for exactly k/2."""
        n, k = len(self.data.train), self.p.reference_models
        ref_in = np.zeros((k, n), dtype=bool)
        models = []
        for pair in range(k // 2):
            half = np.random.default_rng(1000 + pair).permutation(n)[: n // 2]
            ref_in[2 * pair, half] = True
            ref_in[2 * pair + 1] = ~ref_in[2 * pair]
            for i in (2 * pair, 2 * pair + 1):
                sub = self.data.train.subset(np.flatnonzero(ref_in[i]))
                models.append(self.trained(f"reference {i + 1}/{k}", sub, seed=100 + i).model)
        return RmiaAudit(models, ref_in, self.data.train, self.data.test, self.val_pos)

    def retain_eval(self, retain: ImageSet, seed: int) -> ImageSet:
        n = min(self.p.retain_eval_size, len(retain))
        return retain.subset(np.sort(np.random.default_rng(seed).choice(len(retain), n, replace=False)))

    # ---- the run ----

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.load()
        train = self.data.train
        original = self.trained("original", train)
        self.log(f"original trained in {original.seconds:.1f} s")
        self.rmia = self.references()
        rng = np.random.default_rng(2024)
        n_forget = round(self.p.forget_fraction * len(train))
        tuning_ids = rng.permutation(train.ids)[:n_forget]  # never evaluated on
        pool = np.setdiff1d(train.ids, tuning_ids)
        self.tuning = self.tune(original.model, tuning_ids)
        rows, panels, successive = [], {}, []

        def results() -> dict[str, Any]:
            return {"rows": rows, "successive": successive, "panels": panels, "tuning": self.tuning,
                    "original_seconds": original.seconds, "failures": self.failures,
                    "total_seconds": time.perf_counter() - started}

        for seed in self.p.seeds:
            forget_ids = np.random.default_rng(seed).permutation(pool)[:n_forget]
            rows += self.forget_once(original.model, forget_ids, seed, panels)
            if self.snapshot:
                self.snapshot(results())
        for seed in self.p.seeds:
            successive += self.successive(original.model, pool, seed)
            if self.snapshot:
                self.snapshot(results())
        return results()

    def tune(self, model: nn.Module, tuning_ids: np.ndarray) -> dict[str, Any]:
        """eps_init by the 95% rule and every method's lr, on the tuning subset T only."""
        train = self.data.train
        forget = train.subset(train.positions(tuning_ids))
        retain = remaining(train, tuning_ids)
        retain_eval = self.retain_eval(retain, seed=999)
        eps_init, passes = calibrate_eps(model, forget.x, forget.y, self.p.unlearn.attack,
                                         generator=seeded_generator(0))
        self.log(f"calibrated eps_init = {eps_init:.4g} ({passes} attack passes on "
                 f"{self.p.unlearn.attack.calibration_samples} samples)")
        self.base = dataclasses.replace(
            self.p.unlearn, attack=dataclasses.replace(self.p.unlearn.attack, eps_init=eps_init))
        reference_model = self.trained("retrain (tuning)", retain).model
        reference, _ = evaluate(reference_model, forget, retain_eval, self.val)
        choices = {}
        for key, cfg in self.settings():
            grid = self.p.lr_grid if cfg.retain_access else self.p.lr_grid_no_retain
            choice = tune_lr(model, cfg, list(grid), forget=forget, retain=retain, retain_eval=retain_eval,
                             test=self.val, reference=reference, holdout=self.val,
                             progress=self.progress(f"tune {key}"))
            choices[key] = choice
            self.log(f"tuned {key}: lr {choice.lr} (gaps {[round(g, 2) for g in choice.avg_gap_mis]})")
        return {"eps_init": eps_init, "calibration_passes": passes, "forget_size": len(forget),
                "lr": {k: dataclasses.asdict(c) for k, c in choices.items()}}

    def settings(self) -> list[tuple[str, UnlearnConfig]]:
        """Every (method, retain access, subsampled) the benchmark runs, with its base config."""
        out = []
        for method in self.p.methods:
            for access in (True, False):
                if not access and method in ("ft", "l1_sparse"):
                    continue  # these methods are defined by the remaining data
                out.append((setting_key(method, access, False), dataclasses.replace(
                    self.base, method=method, retain_access=access)))
            if method in ("amun", "amun_salun"):
                out.append((setting_key(method, True, True), dataclasses.replace(
                    self.base, method=method, retain_access=True, retain_multiple=self.p.retain_multiple)))
        if "amun" in self.p.methods:  # the stopping rule, where it matters most: little or no D_R
            for key in (setting_key("amun", False, False), setting_key("amun", True, True)):
                cfg = dict(out)[key]
                out.append((key + "+stop", dataclasses.replace(cfg, stop=self.p.stop)))
        return out

    def config_for(self, key: str) -> UnlearnConfig:
        cfg = dict(self.settings())[key]
        return dataclasses.replace(cfg, lr=self.tuning["lr"][key]["lr"])

    def forget_once(self, model: nn.Module, forget_ids: np.ndarray, seed: int, panels: dict) -> list[dict]:
        train = self.data.train
        forget = train.subset(train.positions(forget_ids))
        retain = remaining(train, forget_ids)
        retain_eval = self.retain_eval(retain, seed)
        retrain = self.trained(f"retrain (seed {seed})", retain, seed=seed)
        self.log(f"seed {seed}: retrained in {retrain.seconds:.1f} s")

        def audit(m: nn.Module):
            t = time.perf_counter()
            metrics, conf = evaluate(m, forget, retain_eval, self.test_eval, rmia=self.rmia, seed=seed)
            return metrics, conf, time.perf_counter() - t

        ref, ref_conf, ref_audit = audit(retrain.model)
        orig, orig_conf, orig_audit = audit(model)
        base = {"seed": seed, "forget_fraction": self.p.forget_fraction, "forget_size": len(forget)}
        rows = [
            {**base, "method": "retrain", "retain_access": True, "subsampled": False, "stopping": False,
             **ref, **gaps(ref, ref),
             "seconds": {"train": retrain.seconds, "audit": ref_audit}, "retrain_measured_now": retrain.measured_now,
             "attack_passes": 0, "speedup_vs_retrain": 1.0},
            {**base, "method": "original", "retain_access": False, "subsampled": False, "stopping": False,
             **orig, **gaps(orig, ref),
             "seconds": {"audit": orig_audit}, "attack_passes": 0, "speedup_vs_retrain": None},
        ]
        for key, _ in self.settings():
            cfg = dataclasses.replace(self.config_for(key), seed=seed)
            setting = {"method": cfg.method, "retain_access": cfg.retain_access,
                       "subsampled": cfg.retain_multiple is not None, "stopping": cfg.stop is not None}
            try:
                result = run_unlearning(model, forget, retain if cfg.retain_access else None, cfg,
                                        holdout=self.val, progress=self.progress(f"seed {seed} {key}"))
                metrics, conf, audit_seconds = audit(result.model)
            except TrainingDiverged as exc:  # reported as such, never silently dropped
                rows.append({**base, **setting, "diverged": True, "seconds": {}, "attack_passes": 0,
                             "speedup_vs_retrain": None, "lr": cfg.lr})
                self.log(f"seed {seed} {key}: diverged ({exc})")
                continue
            spent = sum(result.seconds.values())
            rows.append({
                **base, **setting, **metrics, **gaps(metrics, ref),
                "seconds": {**result.seconds, "audit": audit_seconds}, "attack_passes": result.attack_passes,
                "attack_pgd50_passes": result.attack_passes / (50 * len(forget)),
                "speedup_vs_retrain": retrain.seconds / spent if spent > 0 else None,
                "lr": cfg.lr, "epochs_run": result.epochs_run, "adversarial": result.adversarial,
            })
            self.log(f"seed {seed} {key}: gap(MIS) {rows[-1]['avg_gap_mis']:.2f} "
                     f"gap(RMIA) {rows[-1].get('avg_gap_rmia', float('nan')):.2f} in {spent:.1f} s")
            if seed == self.p.seeds[0] and key == setting_key("amun", True, False):
                panels["amun"] = conf
        if seed == self.p.seeds[0]:
            panels["original"], panels["retrain"] = orig_conf, ref_conf
        return rows

    def successive(self, model: nn.Module, pool: np.ndarray, seed: int) -> list[dict]:
        """AMUN-A over successive requests; every earlier forgotten set is audited after each request."""
        train = self.data.train
        size = round(self.p.successive_fraction * len(train))
        ids = np.random.default_rng(10_000 + seed).permutation(pool)[: size * self.p.successive_requests]
        requests = [ids[i * size:(i + 1) * size] for i in range(self.p.successive_requests)]
        final_retain = remaining(train, ids)
        retrain = self.trained(f"retrain after {len(requests)} requests (seed {seed})", final_retain, seed=seed)
        retain_eval = self.retain_eval(final_retain, seed)
        sets = [train.subset(train.positions(r)) for r in requests]
        ref = [evaluate(retrain.model, s, retain_eval, self.test_eval, rmia=self.rmia, seed=seed)[0] for s in sets]
        out = []
        keys = (setting_key("amun", True, False), setting_key("amun", True, True), setting_key("amun", False, False))
        for key in keys:
            cfg = dataclasses.replace(self.config_for(key), seed=seed)
            outcomes = successive_unlearn(model, train, requests, cfg, variant="amun_a", holdout=self.val,
                                          progress=self.progress(f"seed {seed} successive {key}"))
            try:
                out += self._successive_rows(outcomes, cfg, sets, ref, retain_eval, retrain, seed, size, key)
            except TrainingDiverged as exc:
                self.failures.append(f"seed {seed} successive {key}: diverged ({exc})")
                self.log(self.failures[-1])
        out.append(self._successive_retrain_row(ref, retrain, seed, size, len(requests)))
        return out

    def _successive_rows(self, outcomes, cfg, sets, ref, retain_eval, retrain, seed, size, key) -> list[dict]:
        """One entry per request of one setting, auditing the current and every earlier forgotten set."""
        out = []
        n_requests = len(sets)
        for outcome in outcomes:
            k, result = outcome.index, outcome.result
            # the retrained reference excludes all requests, so gaps are exact only after the last one
            last = k == n_requests - 1
            audits = []
            for j in range(k + 1):
                metrics, _ = evaluate(result.model, sets[j], retain_eval, self.test_eval, rmia=self.rmia, seed=seed)
                audits.append({"request": j, **metrics, **(gaps(metrics, ref[j]) if last else {})})
            spent = sum(result.seconds.values())
            out.append({
                "seed": seed, "request": k, "method": "amun_a", "retain_access": cfg.retain_access,
                "subsampled": cfg.retain_multiple is not None, "stopping": False,
                "forget_fraction": self.p.successive_fraction,
                "forget_size": size, "lr": cfg.lr,
                "current": audits[-1], "earlier": audits[:-1],
                "seconds": result.seconds, "attack_passes": result.attack_passes,
                "attack_pgd50_passes": result.attack_passes / (50 * size),
                "retrain_seconds": retrain.seconds, "retrain_measured_now": retrain.measured_now,
                "speedup_vs_retrain": retrain.seconds / spent if spent > 0 else None,
            })
            self.log(f"seed {seed} successive {key} request {k + 1}: {spent:.1f} s, "
                     f"forget acc {audits[-1]['forget_acc']:.1f}")
        return out

    def _successive_retrain_row(self, ref, retrain, seed, size, n_requests) -> dict:
        return {"seed": seed, "request": n_requests - 1, "method": "retrain", "retain_access": True,
                "subsampled": False, "stopping": False, "forget_fraction": self.p.successive_fraction,
                "forget_size": size, "current": {"request": n_requests - 1, **ref[-1], **gaps(ref[-1], ref[-1])},
                "earlier": [{"request": j, **m, **gaps(m, m)} for j, m in enumerate(ref[:-1])],
                "seconds": {"train": retrain.seconds}, "attack_passes": 0, "speedup_vs_retrain": 1.0}


def setting_key(method: str, retain_access: bool, subsampled: bool) -> str:
    return f"{method}/{'subsampled' if subsampled else ('with-DR' if retain_access else 'no-DR')}"
