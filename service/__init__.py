"""The HTTP service of machine unlearning: API, authentication, the ledger and its event chain."""
