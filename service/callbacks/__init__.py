"""Signed webhook callbacks (Standard Webhooks) sent from a transactional outbox."""
