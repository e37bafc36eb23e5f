"""The job runner: claims jobs from the ledger, runs the core library, stores checkpoints, records results."""
