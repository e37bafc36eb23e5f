"""Deletion requests: training-sample IDs a data subject wants forgotten, checked, coalesced into jobs."""
