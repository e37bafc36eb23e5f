"""The benchmark: every method with and without the remaining data at 10% random forgetting, and a stream
of small successive requests, all measured against models retrained from scratch in the same run.

Order of work (AMUN.md sections 6 and 8), in sections that run on their own and merge into one result:
1. common: train the original model and the RMIA reference models (complementary halves of the train
   split); draw a separate tuning forget subset T and retrain without it;
2. "table": on T, compare the attack's starting-radius rules, then tune every method's schedule (rate
   and step, mean of runs, under a utility constraint); per seed draw D_F from the train split minus T,
   retrain without it twice (the second measures how far two exact retrains lie apart), run every method
   and audit each;
3. "stream" (unlearning/bench/stream.py): per seed, many small requests one after another in three modes.
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

from unlearning.attack import calibrate_eps, starting_radius
from unlearning.audit.evaluate import RmiaAudit, evaluate, gaps
from unlearning.audit.metrics import accuracy, predict_logits
from unlearning.bench import stream
from unlearning.bench.profiles import Profile
from unlearning.data import Dataset, load_dataset, stratified_subset
from unlearning.imageset import ImageSet
from unlearning.loop import TrainingDiverged
from unlearning.methods import run_unlearning
from unlearning.models import checkpoint_bytes, load_checkpoint
from unlearning.progress import Progress
from unlearning.specs import AMUN_METHODS, UnlearnConfig, to_dict
from unlearning.splits import holdout_split, reference_membership, reference_seed
from unlearning.successive import remaining
from unlearning.train import seeded_generator, train_model
from unlearning.tuning import best_of, tune_schedule

ProgressFactory = Callable[[str], Progress | None]
SECTIONS = ("tune", "table", "stream")
VALIDATION_SEED = 12345  # which half of the test split is the validation half


@dataclass
class Trained:
    model: nn.Module
    seconds: float  # wall seconds of its training (as measured when it was trained)
    measured_now: bool  # False when loaded from the cache


class Bench:
    def __init__(self, profile: Profile, *, device: str, cache_dir: Path | None, progress: ProgressFactory,
                 log: Callable[[str], None], snapshot: Callable[[dict[str, Any]], None] | None = None,
                 earlier: dict[str, Any] | None = None, resume: dict[str, Any] | None = None) -> None:
        self.p = profile
        # what an earlier tune run chose ("attack": the radius study, "tuning": the schedules), for a table
        # or stream run on its own
        self.earlier = earlier or {}
        # what an interrupted tune run of this profile finished (its partial file): kept, not run again
        self.resume = resume or {}
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
        self.data = Dataset(train, test, data.classes, data.input_shape)
        self.val_pos, self.eval_pos = holdout_split(len(test), seed=VALIDATION_SEED)
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
        k = self.p.reference_models
        ref_in = reference_membership(len(self.data.train), k)
        models = [self.trained(f"reference {i + 1}/{k}", self.data.train.subset(np.flatnonzero(member)),
                               seed=reference_seed(i)).model for i, member in enumerate(ref_in)]  # fmt: skip
        return RmiaAudit(models, ref_in, self.data.train, self.data.test, self.val_pos)

    def retain_eval(self, retain: ImageSet, seed: int) -> ImageSet:
        n = min(self.p.retain_eval_size, len(retain))
        return retain.subset(np.sort(np.random.default_rng(seed).choice(len(retain), n, replace=False)))

    # ---- the run ----

    def run(self, sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
        """The sections asked for; each one's results under its own keys (see __main__ for the merge)."""
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown benchmark sections {sorted(unknown)}; known: {list(SECTIONS)}")
        started = time.perf_counter()
        self.load()
        train = self.data.train
        original = self.trained("original", train)
        self.original = original.model
        self.log(f"original trained in {original.seconds:.1f} s")
        self.rmia = self.references()
        rng = np.random.default_rng(2024)
        n_forget = round(self.p.forget_fraction * len(train))
        self.tuning_ids = rng.permutation(train.ids)[:n_forget]  # never evaluated on
        self.pool = np.setdiff1d(train.ids, self.tuning_ids)
        self.prepare_tuning()
        out: dict[str, Any] = {"original_seconds": original.seconds, "failures": self.failures,
                               "original_train_acc": self.original_train_acc, "sections": list(sections)}

        def snap() -> None:
            out["total_seconds"] = time.perf_counter() - started
            if self.snapshot:
                self.snapshot(out)

        if "tune" in sections:
            self.base = self.p.unlearn
            out["attack"] = self.resume.get("attack") or self.radius_study()
            snap()  # a stream run started meanwhile reads the radius choice from the partial results
            self.base = self.base_from(out["attack"])

            def snap_tuning(tuning: dict[str, Any]) -> None:
                out["tuning"] = tuning
                snap()

            out["tuning"] = self.tune(snap_tuning)
            snap()
        else:
            self.base = self.base_from(self.earlier.get("attack"))
        self.tuning = out.get("tuning") or self.earlier.get("tuning")
        if "table" in sections:
            if self.tuning is None:
                raise ValueError("the table needs tuned schedules: run --section tune first (it writes "
                                 f"{self.p.name}.tune.json)")
            self.table(snap, out)
        if "stream" in sections:
            out.update(stream.section(self, snap, out))
        out["total_seconds"] = time.perf_counter() - started
        return out

    def base_from(self, attack_choice: dict[str, Any] | None) -> UnlearnConfig:
        """The profile's unlearning config with the radius study's choice of starting radius; without one,
        eps_init is fixed once by the service's rule (the profile's, else calibrated on T), never per request."""
        attack = self.p.unlearn.attack
        if attack_choice is not None:
            c = attack_choice
            attack = dataclasses.replace(attack, eps_rule=c["eps_rule"], eps_init=c["eps_init"],
                                         include_misclassified=c["include_misclassified"])
        attack = starting_radius(attack, None, self.original, self.t_forget.x, self.t_forget.y, seed=0)
        return dataclasses.replace(self.p.unlearn, attack=attack)

    def prepare_tuning(self) -> None:
        """The tuning subset T: its remaining data, a sample of it to measure on, and a model retrained without T."""
        train = self.data.train
        self.t_forget = train.subset(train.positions(self.tuning_ids))
        self.t_retain = remaining(train, self.tuning_ids)
        self.t_retain_eval = self.retain_eval(self.t_retain, seed=999)
        self.t_retrain = self.trained("retrain (tuning)", self.t_retain).model
        self.t_reference, _ = evaluate(self.t_retrain, self.t_forget, self.t_retain_eval, self.val)
        self.original_val_acc = accuracy(predict_logits(self.original, self.val.x), self.val.y)
        self.original_train_acc = accuracy(predict_logits(self.original, train.x), train.y)
        self.log(f"original: {self.original_train_acc:.2f}% train accuracy (eval mode), "
                 f"{self.original_val_acc:.2f}% validation accuracy")

    # ---- the 10% table ----

    def table(self, snap: Callable[[], None], out: dict[str, Any]) -> dict[str, Any]:
        """Every setting per seed at 10% forgetting, written into `out` as it goes (snapshots see it)."""
        n_forget = round(self.p.forget_fraction * len(self.data.train))
        runs, pairs, panels = out.setdefault("runs", []), out.setdefault("retrain_vs_retrain_runs", []), {}
        out["panels"] = panels
        for seed in self.p.seeds:
            forget_ids = np.random.default_rng(seed).permutation(self.pool)[:n_forget]
            rows, pair = self.forget_once(self.original, forget_ids, seed, panels)
            runs += rows
            pairs.append(pair)
            snap()
        return out

    def radius_study(self) -> dict[str, Any]:
        """The attack's starting radius by measurement: each rule (and D_A with or without the samples the
        model already misclassifies), with the distance of the examples it finds and the gap it leads to,
        for AMUN with and without D_R on T. The default rule is the one with the smallest mean gap."""
        studies = []
        variants = [(rule, True) for rule in self.p.eps_rules] + [(self.p.eps_rules[0], False)]
        for rule, include in variants:
            attack = dataclasses.replace(self.base.attack, eps_rule=rule, eps_init=None,
                                         include_misclassified=include)
            eps_init, passes = calibrate_eps(self.original, self.t_forget.x, self.t_forget.y, attack,
                                             generator=seeded_generator(0))
            attack = dataclasses.replace(attack, eps_init=eps_init)
            for access in (True, False):
                cfg = dataclasses.replace(self.base, method="amun", retain_access=access, attack=attack,
                                          lr=self.p.radius_lr[0 if access else 1])
                scores, summaries = [], []
                for k in range(self.p.tuning_runs):
                    result = run_unlearning(self.original, self.t_forget, self.t_retain if access else None,
                                            dataclasses.replace(cfg, seed=k), progress=self.progress(
                                                f"radius {rule}{'' if include else ' -miscl'} {'DR' if access else 'noDR'}"))
                    metrics, _ = evaluate(result.model, self.t_forget, self.t_retain_eval, self.val)
                    scores.append(gaps(metrics, self.t_reference)["avg_gap_mis"])
                    summaries.append(result.adversarial)
                studies.append({"eps_rule": rule, "include_misclassified": include, "retain_access": access,
                                "eps_init": eps_init, "calibration_passes": passes, "lr": cfg.lr,
                                "avg_gap_mis": scores, "mean_gap_mis": float(np.mean(scores)),
                                "delta_norm_mean": float(np.mean([a["delta_norm_mean"] or np.nan for a in summaries])),
                                "first_radius_share": summaries[0]["first_radius_share"],
                                "eps_median": summaries[0]["eps_median"], "usable": summaries[0]["usable"]})
                self.log(f"radius {rule} (misclassified {'in' if include else 'out'}, "
                         f"{'with' if access else 'without'} D_R): eps_init {eps_init:.3g}, "
                         f"||x_adv - x|| {studies[-1]['delta_norm_mean']:.3f}, gap {studies[-1]['mean_gap_mis']:.2f}")
        # choose by the mean over both settings, so one rule serves every request
        by_variant: dict[tuple[str, bool], list[float]] = {}
        for st in studies:
            by_variant.setdefault((st["eps_rule"], st["include_misclassified"]), []).append(st["mean_gap_mis"])
        (rule, include), _ = min(by_variant.items(), key=lambda kv: float(np.mean(kv[1])))
        chosen = next(st for st in studies if st["eps_rule"] == rule and st["include_misclassified"] == include)
        self.base = dataclasses.replace(self.base, attack=dataclasses.replace(
            self.base.attack, eps_rule=rule, include_misclassified=include))
        self.log(f"radius: chose {rule}, misclassified {'in' if include else 'out of'} D_A")
        return {"studies": studies, "eps_rule": rule, "include_misclassified": include,
                "eps_init": chosen["eps_init"],
                "mean_gap_by_variant": {f"{r}/{'with' if i else 'without'}-misclassified": float(np.mean(v))
                                        for (r, i), v in by_variant.items()}}

    def tune(self, snap: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Every setting's (lr, step) on T against its retrain, mean of runs, under the utility constraint;
        SalUn's mask ratio is then searched at the chosen schedule. Settings an interrupted run of the same
        profile already tuned (self.resume) are kept, not run again; `snap` sees the result after each."""
        done = (self.resume.get("tuning") or {}).get("schedule", {})
        choices: dict[str, Any] = {}
        result = {"schedule": choices, "forget_size": len(self.t_forget), "runs": self.p.tuning_runs,
                  "max_acc_drop": self.p.max_acc_drop, "original_val_acc": self.original_val_acc}
        for key, cfg in self.settings():
            if key.endswith("+stop"):
                continue  # the "+stop" rows take their setting's tuned schedule
            if key in done:
                choices[key] = done[key]
                self.log(f"tuned {key}: kept from the interrupted run (lr {done[key]['lr']}, step {done[key]['step_size']})")
                continue
            grid = self.p.lr_grid if cfg.retain_access else self.p.lr_grid_no_retain
            # AMUN's mix is tuned with its schedule: with or without D_F (the gentler mix wants another rate)
            mixes = self.p.forget_mixes if cfg.method in AMUN_METHODS else (cfg.forget_in_mix,)
            by_mix = {mix: tune_schedule(self.original, dataclasses.replace(cfg, forget_in_mix=mix), list(grid),
                                         list(self.p.step_grid), forget=self.t_forget, retain=self.t_retain,
                                         retain_eval=self.t_retain_eval, test=self.val, reference=self.t_reference,
                                         original_test_acc=self.original_val_acc, runs=self.p.tuning_runs,
                                         max_acc_drop=self.p.max_acc_drop, holdout=self.val,
                                         progress=self.progress(f"tune {key}{'' if mix else ' -D_F'}"))
                      for mix in mixes}
            mix, choice = best_of(by_mix)
            entry = dataclasses.asdict(choice)
            entry["forget_in_mix"] = mix
            if len(by_mix) > 1:  # the mix not chosen, whole, so the report can show why
                entry["other_mixes"] = {str(m): dataclasses.asdict(c) for m, c in by_mix.items() if m != mix}
            entry["salun_ratio"] = cfg.salun_ratio
            if cfg.method in ("salun", "amun_salun") and len(self.p.salun_ratios) > 1:
                entry["salun_ratio"], entry["salun_ratio_grid"] = self.tune_ratio(
                    dataclasses.replace(cfg, lr=choice.lr, step_size=choice.step_size, forget_in_mix=mix), key)
            choices[key] = entry
            self.log(f"tuned {key}: lr {choice.lr}, step {choice.step_size}, D_F in the mix {mix}, "
                     f"ratio {entry['salun_ratio']} "
                     f"({'' if choice.constraint_met else 'utility constraint NOT met; '}"
                     f"grid {[(g.lr, g.step_size, None if g.mean_gap_mis is None else round(g.mean_gap_mis, 2)) for g in choice.grid]})")
            if snap is not None:
                snap(result)
        return result

    def tune_ratio(self, cfg: UnlearnConfig, key: str) -> tuple[float, list[dict[str, Any]]]:
        grid = []
        for ratio in self.p.salun_ratios:
            one = tune_schedule(self.original, dataclasses.replace(cfg, salun_ratio=ratio), [cfg.lr],
                                [cfg.step_size], forget=self.t_forget, retain=self.t_retain,
                                retain_eval=self.t_retain_eval, test=self.val, reference=self.t_reference,
                                original_test_acc=self.original_val_acc, runs=self.p.tuning_runs,
                                max_acc_drop=self.p.max_acc_drop, holdout=self.val,
                                progress=self.progress(f"tune {key} ratio {ratio}"))
            (setting,) = one.grid
            grid.append({"salun_ratio": ratio, **dataclasses.asdict(setting)})
        feasible = [g for g in grid if g["feasible"]] or [g for g in grid if not g["diverged"]]
        return min(feasible, key=lambda g: g["mean_gap_mis"])["salun_ratio"], grid

    def settings(self) -> list[tuple[str, UnlearnConfig]]:
        """Every (method, retain access, subsampled) the benchmark runs, with its base config."""
        out = []
        for method in self.p.methods:
            for access in (True, False):
                if not access and method in ("ft", "l1_sparse"):
                    continue  # these methods are defined by the remaining data
                out.append((setting_key(method, access, False), dataclasses.replace(
                    self.base, method=method, retain_access=access,
                    stop=self.base.stop if access else self.p.guard_no_retain)))
            if method in ("amun", "amun_salun"):
                out.append((setting_key(method, True, True), dataclasses.replace(
                    self.base, method=method, retain_access=True, retain_multiple=self.p.retain_multiple,
                    retain_min=self.p.retain_min)))
        if "amun" in self.p.methods:  # the stopping rule, where it matters most: little or no D_R
            for key in (setting_key("amun", False, False), setting_key("amun", True, True)):
                cfg = dict(out)[key]
                out.append((key + "+stop", dataclasses.replace(cfg, stop=self.p.stop)))
        return out

    def config_for(self, key: str) -> UnlearnConfig:
        cfg = dict(self.settings())[key]
        tuned = self.tuning["schedule"][key.removesuffix("+stop")]
        return dataclasses.replace(cfg, lr=tuned["lr"], step_size=tuned["step_size"], salun_ratio=tuned["salun_ratio"],
                                   forget_in_mix=tuned.get("forget_in_mix", cfg.forget_in_mix))

    def forget_once(self, model: nn.Module, forget_ids: np.ndarray, seed: int,
                    panels: dict) -> tuple[list[dict], dict]:
        train = self.data.train
        forget = train.subset(train.positions(forget_ids))
        retain = remaining(train, forget_ids)
        retain_eval = self.retain_eval(retain, seed)
        retrain = self.trained(f"retrain (seed {seed})", retain, seed=seed)
        # a second exact retrain (another initialisation and order): how far apart two retrains lie is the
        # noise floor under every gap of this table
        second = self.trained(f"retrain 2 (seed {seed})", retain, seed=10_000 + seed)
        self.log(f"seed {seed}: retrained in {retrain.seconds:.1f} s and {second.seconds:.1f} s")

        def audit(m: nn.Module):
            t = time.perf_counter()
            metrics, conf = evaluate(m, forget, retain_eval, self.test_eval, rmia=self.rmia, seed=seed)
            return metrics, conf, time.perf_counter() - t

        ref, ref_conf, ref_audit = audit(retrain.model)
        ref2, _, _ = audit(second.model)
        pair = {"seed": seed, **gaps(ref2, ref), "second": ref2}
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
                       "subsampled": cfg.retain_multiple is not None, "stopping": key.endswith("+stop"),
                       "guarded": cfg.stop is not None}
            try:
                result = run_unlearning(model, forget, retain if cfg.retain_access else None, cfg,
                                        holdout=self.val, progress=self.progress(f"seed {seed} {key}"))
                metrics, conf, audit_seconds = audit(result.model)
            except TrainingDiverged as exc:  # reported as such, never silently dropped
                rows.append({**base, **setting, "diverged": True, "seconds": {}, "attack_passes": 0,
                             "speedup_vs_retrain": None, "lr": cfg.lr})
                self.failures.append(f"seed {seed} {key}: diverged ({exc})")
                self.log(self.failures[-1])
                continue
            spent = sum(result.seconds.values())
            rows.append({
                **base, **setting, **metrics, **gaps(metrics, ref),
                "seconds": {**result.seconds, "audit": audit_seconds}, "attack_passes": result.attack_passes,
                "attack_pgd50_passes": result.attack_passes / (50 * len(forget)),
                "speedup_vs_retrain": retrain.seconds / spent if spent > 0 else None,
                "lr": cfg.lr, "step_size": cfg.step_size, "salun_ratio": cfg.salun_ratio,
                "forget_in_mix": cfg.forget_in_mix,
                "epochs_run": result.epochs_run, "adversarial": result.adversarial,
                "stopped_early": result.stopped_early, "guard_tripped": result.guard_tripped,
            })
            self.log(f"seed {seed} {key}: gap(MIS) {rows[-1]['avg_gap_mis']:.2f} "
                     f"gap(RMIA) {rows[-1].get('avg_gap_rmia', float('nan')):.2f} in {spent:.1f} s")
            if seed == self.p.seeds[0] and key == setting_key("amun", True, False):
                panels["amun"] = conf
        if seed == self.p.seeds[0]:
            panels["original"], panels["retrain"] = orig_conf, ref_conf
        return rows, pair


def setting_key(method: str, retain_access: bool, subsampled: bool) -> str:
    return f"{method}/{'subsampled' if subsampled else ('with-DR' if retain_access else 'no-DR')}"
