"""Jobs: unlearning runs (one at a time per model, later requests coalesced), reference-model training and
tuning, started on a model; their state machine, and the plan a worker reads before it computes."""
