"""Every operation of the API through the client against the real server: typed answers, and errors that
carry the problem body and read as one sentence."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import FORGOTTEN_BY_V2, Served
from unlearning_client import (
    AsyncClient,
    AuditReport,
    Client,
    Conflict,
    DeletionRequest,
    Forbidden,
    JobKind,
    JobStatus,
    NotFound,
    RequestStatus,
    Unauthorized,
    ValidationFailed,
    VersionStatus,
    WaitTimeout,
)

# ---- operations ----


def test_health_and_metrics_answer(api: Client) -> None:
    assert (api.health().status, api.health().database) == ("ok", "ok")
    assert "http_requests_total" in api.metrics() or "# HELP" in api.metrics()


def test_the_registered_model_its_dataset_and_its_versions_read_back_typed(api: Client, served: Served) -> None:
    model = api.get_model(served.model.id)
    assert model.id == served.model.id and model.latest_version == 2
    dataset = api.get_dataset(model.dataset_id)
    assert (dataset.format, dataset.num_train, dataset.input_shape) == ("npz", 300, [1, 8, 8])
    version = api.get_version(model.id, 2)
    assert version.status == VersionStatus.ready and version.audit_available
    assert version.lineage.parent_version == 1 and served.request_id in version.lineage.request_ids
    assert version.checkpoint is not None and len(version.checkpoint.sha256) == 64
    assert [v.number for v in api.list_versions(model.id).items] == [1, 2]
    assert any(m.id == model.id for m in api.iter_models())


def test_a_submission_is_accepted_read_back_listed_in_events_and_cancelled(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    accepted = api.submit_deletion_request(served.model.id, fresh_ids(2) * 2, subject_request_id="ticket-1",
                                           regulation="gdpr")  # fmt: skip
    assert accepted.status == RequestStatus.queued and accepted.new_sample_count == 2
    assert accepted.duplicate_count == 2 and accepted.due_at is not None
    read = api.get_deletion_request(accepted.id)
    assert (read.subject_request_id, read.regulation, read.job_id) == ("ticket-1", "gdpr", accepted.job_id)
    cancelled = api.cancel_deletion_request(accepted.id)
    assert cancelled.status == RequestStatus.cancelled
    types = [event.type for event in api.iter_deletion_request_events(accepted.id)]
    assert types[0] == "deletion_request.received" and "deletion_request.cancelled" in types


def test_samples_forgotten_before_answer_200_with_nothing_to_do(api: Client, served: Served) -> None:
    accepted = api.submit_deletion_request(served.model.id, FORGOTTEN_BY_V2[:3])
    assert accepted.status == RequestStatus.completed and accepted.new_sample_count == 0
    assert accepted.already_forgotten.count == 3
    assert {entry.version for entry in accepted.already_forgotten.listed} == {2}


def test_waiting_for_a_finished_request_returns_it_and_for_a_waiting_one_times_out(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    done = api.wait_for_deletion_request(served.request_id, timeout_s=5)
    assert isinstance(done, DeletionRequest) and done.status == RequestStatus.completed and done.version == 2
    waiting = api.submit_deletion_request(served.model.id, fresh_ids(1))  # no worker runs it here
    with pytest.raises(WaitTimeout, match=f"deletion request {waiting.id} is still queued after 0 s"):
        api.wait_for_deletion_request(waiting.id, timeout_s=0)


def test_reference_model_and_tuning_jobs_are_queued_read_and_cancelled(api: Client, served: Served) -> None:
    references = api.train_reference_models(served.model.id, 2)
    assert (references.kind, references.status) == (JobKind.reference_models, JobStatus.queued)
    tuning = api.tune_model(served.model.id, lrs=[0.01, 0.02], runs=1)
    assert tuning.kind == JobKind.tuning and api.get_job(tuning.id).status == JobStatus.queued
    for job in (references, tuning):
        assert api.cancel_job(job.id).status == JobStatus.cancelled


def test_api_keys_are_created_listed_and_revoked(api: Client, served: Served) -> None:
    created = api.create_api_key("workflow", ["read"])
    assert created.key.startswith(created.prefix)
    assert created.id in {key.id for key in api.iter_api_keys()}
    api.revoke_api_key(created.id)
    assert next(k for k in api.list_api_keys().items if k.id == created.id).revoked_at is not None
    with Client(served.url, created.key) as revoked, pytest.raises(Unauthorized):
        revoked.get_model(served.model.id)


def test_the_audit_its_page_its_samples_and_the_keys_read_back(api: Client, served: Served) -> None:
    report = api.get_audit(served.model.id, 2)
    assert isinstance(report, AuditReport) and report.verdict in ("pass", "fail", "inconclusive")
    assert report.schema_.startswith("unlearning.audit.report/") and report.raw["verdict"] == report.verdict
    assert report.checks and all(check.result in ("pass", "fail", "inconclusive") for check in report.checks)
    assert "<html" in api.get_audit_page(served.model.id, 2).lower()
    samples = api.get_audit_samples(served.model.id, 2)
    assert {sample.id for sample in samples.samples} >= set(FORGOTTEN_BY_V2)
    assert api.get_audit_samples_csv(served.model.id, 2).startswith("id,set,score,p_value,indistinguishable")
    signing = api.get_signing_key()
    assert (signing.algorithm, signing.jwk.crv, signing.jwk.kid) == ("Ed25519", "Ed25519", signing.key_id)
    assert api.get_webhook_secret().secret.startswith("whsec_")


def test_the_async_client_runs_the_same_operations(served: Served, tmp_path: Path,
                                                   fresh_ids: Callable[[int], list[str]]) -> None:  # fmt: skip
    async def flow() -> None:
        async with AsyncClient(served.url, served.key) as api:
            model, health = await asyncio.gather(api.get_model(served.model.id), api.health())
            assert health.status == "ok" and model.latest_version == 2
            assert [v.number async for v in api.iter_versions(model.id, page_size=1)] == [1, 2]
            accepted = await api.submit_deletion_request(model.id, fresh_ids(1))
            assert (await api.get_deletion_request(accepted.id)).status == RequestStatus.queued
            assert (await api.cancel_deletion_request(accepted.id)).status == RequestStatus.cancelled
            checkpoint = (await api.get_version(model.id, 2)).checkpoint
            downloaded = await api.download_checkpoint(model.id, 2, tmp_path / "v2.safetensors")
            assert checkpoint is not None and downloaded.sha256 == checkpoint.sha256
            with pytest.raises(NotFound):
                await api.get_job(uuid.uuid4())

    asyncio.run(flow())


# ---- errors ----


def test_a_missing_resource_is_not_found_with_the_problem_body(api: Client) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as raised:
        api.get_model(missing)
    error = raised.value
    assert (error.status, error.title, error.detail) == (404, "Not Found", f"no model {missing}")
    assert error.problem["instance"] == f"/v1/models/{missing}"
    assert str(error) == (
        f"404 Not Found: no model {missing} (GET {api.base_url}/v1/models/{missing}, request id {error.request_id})"
    )


def test_unknown_sample_ids_are_a_validation_failure_naming_each_one(api: Client, served: Served) -> None:
    with pytest.raises(ValidationFailed) as raised:
        api.submit_deletion_request(served.model.id, ["digit-0100", "no-such-sample"])
    error = raised.value
    assert [e["location"] for e in error.errors] == [["body", "sample_ids", 1]]
    lines = str(error).splitlines()
    assert lines[0].startswith("422 Unknown sample ids: 1 sample ID(s) are not in the training split")
    assert lines[1] == "  body.sample_ids.1: unknown sample ID 'no-such-sample'"


def test_cancelling_a_completed_request_is_a_conflict(api: Client, served: Served) -> None:
    with pytest.raises(Conflict, match=r"^409 .*is completed; only a request that has not started"):
        api.cancel_deletion_request(served.request_id)


def test_an_unknown_key_is_unauthorized_and_a_read_key_may_not_write(api: Client, served: Served) -> None:
    with Client(served.url, "ulk_not-a-key") as stranger, pytest.raises(Unauthorized) as raised:
        stranger.get_model(served.model.id)
    assert raised.value.status == 401
    reader_key = api.create_api_key("reader", ["read"]).key
    with Client(served.url, reader_key) as reader, pytest.raises(Forbidden, match="lacks the 'write' scope"):
        reader.submit_deletion_request(served.model.id, ["digit-0100"])


def test_fields_a_newer_service_adds_are_kept_not_refused() -> None:
    body = {
        "id": str(uuid.uuid4()), "model_id": str(uuid.uuid4()), "status": "erased", "sample_count": 1,
        "new_sample_count": 1, "already_forgotten_count": 0, "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-01-05T10:00:00Z", "legal_basis": "art. 17(1)(b)", "on_hold": False,
    }  # fmt: skip
    request = DeletionRequest.model_validate(body)
    assert request.status == "erased"
    assert request.model_extra == {"legal_basis": "art. 17(1)(b)", "on_hold": False}
