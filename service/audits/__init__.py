"""Audit reports and signed certificates of model versions, and the public signing key."""
