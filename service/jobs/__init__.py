"""Jobs: unlearning runs (one at a time per model, later requests coalesced) and reference-model training."""
