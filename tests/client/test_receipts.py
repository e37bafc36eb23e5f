"""Erasure through the client alone, against the real server: a model whose window is "at once", a request,
the sweep the service's workers run, then the destroyed checkpoint answers Gone, the request shows erased_at,
and its receipt verifies with the published key and fails after a one-byte change."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import Served
from unlearning_client import Client, Conflict, ErasureReceipt, Gone, SignatureError, verify_receipt


def _erase_a_request(api: Client, served: Served, ids: list[str]) -> tuple[Any, Any]:
    """A model of its own, made "at once", with one completed request; (model, request) before any sweep."""
    from tests.service import tiny
    from unlearning.specs import to_dict
    from worker.jobs import Outcome, run_job

    dataset_id = api.get_model(served.model.id).dataset_id
    model = api.register_model(f"tiny-erasure-{ids[0]}", dataset_id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                               unlearn_config=tiny.UNLEARN)  # fmt: skip
    assert api.update_model(model.id, retention_seconds=0).retention_seconds == 0
    accepted = api.submit_deletion_request(model.id, ids, subject_request_id="ticket-erasure")
    assert run_job(accepted.job_id, settings=served.settings, device="cpu") == Outcome.succeeded
    return model, api.get_deletion_request(accepted.id)


def _sweep(served: Served) -> Any:
    from service.db import session_factory
    from service.erasure.service import sweep

    return sweep(session_factory(served.database_url), settings=served.settings)


def _document(receipt: ErasureReceipt) -> dict[str, Any]:
    return json.loads(receipt.model_dump_json())


def test_a_receipt_is_refused_with_what_remains_until_the_sweep_then_verifies(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]], tmp_path: Path
) -> None:
    ids = fresh_ids(4)
    model, request = _erase_a_request(api, served, ids)
    assert request.erased_at is None
    with pytest.raises(Conflict, match="version 1's checkpoint"):
        api.get_receipt(request.id)

    assert request.id in _sweep(served).receipts

    assert api.get_deletion_request(request.id).erased_at is not None
    with pytest.raises(Gone, match="destroyed"):
        api.download_checkpoint(model.id, 1, tmp_path / "v1.safetensors")
    assert not (tmp_path / "v1.safetensors").exists()
    summary = verify_receipt(api.get_receipt(request.id), api.get_signing_key(), request_id=str(request.id))
    assert summary["request"]["subject_request_id"] == "ticket-erasure" and summary["request"]["sample_count"] == 4
    assert [(item["kind"], item["version"]) for item in summary["destroyed"]] == [("model_version", 1)]


def test_a_receipt_fails_after_a_one_byte_change_and_a_certificate_is_no_receipt(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    _, request = _erase_a_request(api, served, fresh_ids(2))
    _sweep(served)
    receipt = _document(api.get_receipt(request.id))
    key = api.get_signing_key()

    altered = copy.deepcopy(receipt)
    altered["summary"]["request"]["sample_count"] = 3  # "2" became "3": one byte of the signed form
    with pytest.raises(SignatureError, match="does not match"):
        verify_receipt(altered, key)
    with pytest.raises(SignatureError, match="not request"):
        verify_receipt(receipt, key, request_id=str(served.request_id))
    with pytest.raises(SignatureError, match="not an erasure receipt"):
        verify_receipt(api.get_certificate(served.model.id, 2), key)
