"""The unlearning benchmark: `python -m unlearning.bench --profile cpu` (see README)."""
