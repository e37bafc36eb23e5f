"""The paper's baselines (AMUN.md section 5), one file per method, all with the `Unlearner` signature."""
