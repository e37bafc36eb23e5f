"""Model versions: the registered original (1) and every unlearned successor, immutable once ready."""
