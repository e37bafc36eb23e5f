"""Tenants and their API keys: who may call the service, with which scopes."""
