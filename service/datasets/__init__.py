"""Datasets a tenant's models were trained on: registered from inside the data root, validated by loading."""
