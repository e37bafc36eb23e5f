"""Models: registered with their architecture, unlearning config and original checkpoint (version 1)."""
