"""run_job in-process on a tiny model: claim, unlearn, store, audit and record in one transaction; successive
versions; leases that expire, are held by another worker or are lost; cancellation; failures."""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

import unlearning.attack
import unlearning.tuning
import worker.jobs
from service.app import create_app
from service.db import make_engine, session_factory
from service.jobs import service as jobs
from service.settings import Settings
from service.storage import ObjectStore, StorageError
from service.tables import Job, JobStatus
from tests.service import tiny
from tests.service.factories import TenantKey, count_rows
from unlearning.models import load_checkpoint
from worker.executor import run_once
from worker.jobs import Outcome, run_job

IDS = [tiny.sample_id(i) for i in range(40)]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _run(settings: Settings, job_id: str, **kwargs: Any) -> Outcome:
    return run_job(uuid.UUID(job_id), settings=settings, device="cpu", **kwargs)


def _sql(database_url: str, statement: str, **params: Any) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result.mappings()) if result.returns_rows else []
    finally:
        engine.dispose()


def _get(client: TestClient, tenant: TenantKey, path: str) -> dict[str, Any]:
    response = client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_run_job_makes_version_2_whose_checkpoint_matches_its_sha256_and_loads(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:20]).json()

    assert _run(settings, request["job_id"]) == Outcome.succeeded

    version = _get(client, tenant, f"/v1/models/{model['id']}/versions/2")
    assert (version["status"], version["forgotten_count"]) == ("ready", 20)
    lineage = version["lineage"]
    assert (lineage["parent_version"], lineage["request_ids"], lineage["method"]) == (1, [request["id"]], "amun")
    assert lineage["job_id"] == request["job_id"] and lineage["seed"] == 0
    download = client.get(version["checkpoint"]["download_url"], headers=tenant.headers)
    assert hashlib.sha256(download.content).hexdigest() == version["checkpoint"]["sha256"]
    checkpoint = load_checkpoint(download.content)
    assert checkpoint.extra["version"] == 2 and checkpoint.config["method"] == "amun"
    assert _get(client, tenant, f"/v1/deletion-requests/{request['id']}")["version"] == 2
    job = _get(client, tenant, f"/v1/jobs/{request['job_id']}")
    assert (job["status"], job["percent"], job["result_version"], job["parent_version"]) == ("succeeded", 100.0, 2, 1)
    metrics = version["metrics"]
    assert metrics["forget_conf"] < metrics["parent_forget_conf"]


def test_version_2_has_its_audit_report_page_and_a_certificate(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:20]).json()
    _run(settings, request["job_id"])
    base = f"/v1/models/{model['id']}/versions/2"
    version = _get(client, tenant, base)
    report = _get(client, tenant, f"{base}/audit")
    assert report["context"]["output_sha256"] == version["checkpoint"]["sha256"]
    assert report["context"]["request_ids"] == [request["id"]] and report["data"]["current"]["n"] == 20
    page = client.get(f"{base}/audit.html", headers=tenant.headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in page.text
    signed = settings.model_copy(update={"signing_key": SecretStr(base64.b64encode(bytes(32)).decode())})
    with TestClient(create_app(signed)) as signing_client:
        certificate = _get(signing_client, tenant, f"{base}/certificate")
    assert certificate["summary"]["sha256"] == version["checkpoint"]["sha256"]


def test_every_forgotten_sample_has_its_evidence_as_json_and_csv(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:6]).json()
    _run(settings, first["job_id"])
    second = tiny.submit(client, tenant, model["id"], IDS[6:10]).json()
    _run(settings, second["job_id"])
    base = f"/v1/models/{model['id']}/versions/3"
    listing = _get(client, tenant, f"{base}/audit/samples")
    assert (listing["version"], listing["score"], listing["alpha"]) == (3, "log_odds_confidence", 0.05)
    rows = listing["samples"]
    assert sorted(r["id"] for r in rows if r["set"] == "current") == sorted(IDS[6:10])
    assert sorted(r["id"] for r in rows if r["set"] == "v2") == sorted(IDS[:6])
    assert all(0 < r["p_value"] <= 1 and r["indistinguishable"] == (r["p_value"] >= 0.05) for r in rows)
    csv_answer = client.get(f"{base}/audit/samples.csv", headers=tenant.headers)
    assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    lines = csv_answer.text.splitlines()
    assert lines[0] == "id,set,score,p_value,indistinguishable" and len(lines) == 1 + len(rows)
    first_row = lines[1].split(",")
    assert first_row[:2] == [rows[0]["id"], rows[0]["set"]] and float(first_row[3]) == rows[0]["p_value"]
    original = client.get(f"/v1/models/{model['id']}/versions/1/audit/samples.csv", headers=tenant.headers)
    assert original.status_code == 404 and "registered original" in original.json()["detail"]
    report = _get(client, tenant, f"{base}/audit")
    assert report["verdict"] == "inconclusive"  # 4 samples, and 10 in all, are too few to decide
    assert [h["version"] for h in report["history"]] == [2, 3]


def test_a_second_request_makes_version_3_from_version_2_without_the_first_samples(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    real = worker.jobs.run_unlearning

    def spy(model_in, forget, retain, cfg, **kwargs):
        seen.append({"state": {k: v.clone() for k, v in model_in.state_dict().items()},
                     "forget": set(forget.ids.tolist()), "retain": set(retain.ids.tolist())})  # fmt: skip
        return real(model_in, forget, retain, cfg, **kwargs)

    monkeypatch.setattr(worker.jobs, "run_unlearning", spy)
    first = tiny.submit(client, tenant, model["id"], IDS[:10]).json()
    _run(settings, first["job_id"])
    second = tiny.submit(client, tenant, model["id"], IDS[10:20]).json()

    assert _run(settings, second["job_id"]) == Outcome.succeeded

    version = _get(client, tenant, f"/v1/models/{model['id']}/versions/3")
    assert (version["lineage"]["parent_version"], version["forgotten_count"]) == (2, 20)
    v2 = load_checkpoint(client.get(f"/v1/models/{model['id']}/versions/2/checkpoint", headers=tenant.headers).content)
    assert all(torch.equal(seen[1]["state"][k], v) for k, v in v2.model.state_dict().items())  # started from v2
    assert seen[1]["forget"] == set(IDS[10:20])
    assert not seen[1]["retain"] & set(IDS[:20])
    assert len(seen[1]["retain"]) == tiny.N_TRAIN - 20
    report = _get(client, tenant, f"/v1/models/{model['id']}/versions/3/audit")
    assert [entry["label"] for entry in report["models"]["version"]["earlier"]] == ["v2"]


def test_a_job_whose_lease_expired_is_claimed_again(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    assert tiny.claim(database_url, request["job_id"], owner="killed-worker", lease_seconds=-1)  # died at once

    assert _run(settings, request["job_id"], owner="rescuer") == Outcome.succeeded

    job = _get(client, tenant, f"/v1/jobs/{request['job_id']}")
    assert (job["status"], job["attempts"], job["result_version"]) == ("succeeded", 2, 2)
    types = [e["type"] for e in _sql(database_url, "SELECT type FROM event WHERE subject_type = 'job' ORDER BY seq")]
    assert types == ["job.queued", "job.started", "job.reclaimed", "job.succeeded"]


def test_a_second_claim_of_a_running_job_exits_without_effect(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    assert tiny.claim(database_url, request["job_id"], owner="first-worker")
    before = _sql(database_url, "SELECT * FROM job")
    events = count_rows(database_url, "event")

    assert _run(settings, request["job_id"], owner="second-worker") == Outcome.not_claimed

    assert _sql(database_url, "SELECT * FROM job") == before
    assert count_rows(database_url, "event") == events
    assert count_rows(database_url, "model_version") == 1


def test_a_finished_job_delivered_again_is_not_run_again(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    assert _run(settings, request["job_id"]) == Outcome.succeeded
    assert _run(settings, request["job_id"]) == Outcome.not_claimed
    assert count_rows(database_url, "model_version") == 2


def test_the_cancel_flag_stops_the_job_and_releases_its_samples(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    _sql(database_url, "UPDATE job SET cancel_requested = :yes", yes=True)  # what DELETE /v1/jobs/{id} sets

    assert _run(settings, request["job_id"]) == Outcome.cancelled

    assert _get(client, tenant, f"/v1/jobs/{request['job_id']}")["status"] == "cancelled"
    read = _get(client, tenant, f"/v1/deletion-requests/{request['id']}")
    assert (read["status"], read["error"]) == ("failed", "the job was cancelled while it ran")
    assert count_rows(database_url, "forgotten_sample") == 0
    assert count_rows(database_url, "model_version") == 1


def test_a_failing_job_fails_its_requests_and_releases_their_samples(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, data_root: Path,
    database_url: str,
) -> None:  # fmt: skip
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    (data_root / tiny.DATASET_NAME / "train.npz").unlink()  # the data went missing after registration

    assert _run(settings, request["job_id"]) == Outcome.failed

    job = _get(client, tenant, f"/v1/jobs/{request['job_id']}")
    assert job["status"] == "failed" and "train.npz" in job["error"]
    assert str(data_root.resolve()) not in job["error"], job["error"]  # paths are named inside the data root only
    read = _get(client, tenant, f"/v1/deletion-requests/{request['id']}")
    assert read["status"] == "failed" and "train.npz" in read["error"]
    assert str(data_root.resolve()) not in read["error"]
    assert count_rows(database_url, "forgotten_sample") == 0


def test_a_job_error_names_a_stored_object_by_its_place_in_the_storage_not_the_server_path(
    settings: Settings,
) -> None:
    stored = ObjectStore.from_settings(settings).put_bytes(b"a checkpoint")
    assert stored.uri.startswith("file:///")
    error = StorageError(f"object {stored.uri} is missing from storage")
    described = worker.jobs._describe(error, settings)
    place = f"<storage>/sha256/{stored.sha256[:2]}/{stored.sha256}"
    assert described == f"StorageError: object {place} is missing from storage"


def test_a_worker_that_lost_its_lease_records_nothing_and_leaves_only_an_orphan_file(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    real = worker.jobs.audit_version

    def audit_while_another_worker_takes_over(**kwargs: Any) -> Any:
        _sql(database_url, "UPDATE job SET lease_owner = 'other-worker'")
        return real(**kwargs)

    monkeypatch.setattr(worker.jobs, "audit_version", audit_while_another_worker_takes_over)

    assert _run(settings, request["job_id"]) == Outcome.lease_lost

    assert count_rows(database_url, "model_version") == 1
    assert _get(client, tenant, f"/v1/deletion-requests/{request['id']}")["status"] == "auditing"
    stored = [p for p in Path(settings.storage_url).rglob("*") if p.is_file()]
    assert len(stored) == 3  # the original, and the new checkpoint and page nobody refers to


def test_amun_without_a_radius_calibrates_once_and_later_versions_reuse_it(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    real = unlearning.attack.calibrate_eps

    def counting(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append(result[0])
        return result

    monkeypatch.setattr(unlearning.attack, "calibrate_eps", counting)
    config = {**tiny.UNLEARN, "attack": {"steps": 10, "calibration_samples": 10}}
    model = tiny.register_model(client, tenant, data_root, unlearn_config=config)
    for ids in (IDS[:5], IDS[5:10]):
        assert _run(settings, tiny.submit(client, tenant, model["id"], ids).json()["job_id"]) == Outcome.succeeded

    assert len(calls) == 1
    for number in (2, 3):
        lineage = _get(client, tenant, f"/v1/models/{model['id']}/versions/{number}")["lineage"]
        assert lineage["hyper_parameters"]["attack"]["eps_init"] == calls[0]


def test_reference_models_are_stored_and_later_audits_use_rmia(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    recipe = {"epochs": 2, "lr": 0.05, "batch_size": 32, "augment": {"crop_padding": 0, "hflip": False}}
    job = client.post(
        f"/v1/models/{model['id']}/reference-models", json={"k": 2, "recipe": recipe}, headers=tenant.headers
    ).json()
    assert _run(settings, job["id"]) == Outcome.succeeded
    (row,) = _sql(database_url, "SELECT k, num_train FROM reference_set")
    assert (row["k"], row["num_train"]) == (2, tiny.N_TRAIN)

    request = tiny.submit(client, tenant, model["id"], IDS[:20]).json()
    assert _run(settings, request["job_id"]) == Outcome.succeeded

    metrics = _get(client, tenant, f"/v1/models/{model['id']}/versions/2")["metrics"]
    assert metrics["rmia_reference_models"] == 2 and 0 <= metrics["rmia_ft_auc"] <= 100


def test_an_interrupted_worker_releases_the_lease_for_the_next_one(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    stopping = threading.Event()
    stopping.set()  # SIGTERM arrived: the job stops at its first progress step

    assert _run(settings, request["job_id"], owner="leaving", stop=stopping) == Outcome.interrupted
    assert _run(settings, request["job_id"], owner="next") == Outcome.succeeded  # no wait for the lease
    assert _get(client, tenant, f"/v1/jobs/{request['job_id']}")["attempts"] == 1  # the interrupted one is not counted


def test_the_executor_fails_a_job_whose_worker_died_on_every_attempt(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:5]).json()
    for owner in ("w1", "w2", "w3"):  # each claims, then dies: the lease expires at once
        assert tiny.claim(database_url, request["job_id"], owner=owner, lease_seconds=-1)

    outcome = run_once(settings, owner="executor", lease_seconds=60, max_attempts=3, stop=threading.Event())

    assert outcome is None  # nothing left to claim
    job = _get(client, tenant, f"/v1/jobs/{request['job_id']}")
    assert job["status"] == "failed" and "after 3 attempts" in job["error"]
    assert _get(client, tenant, f"/v1/deletion-requests/{request['id']}")["status"] == "failed"
    assert count_rows(database_url, "forgotten_sample") == 0


# ---- tuning, and the utility guard of every unlearning job ----


def _tune(client: TestClient, tenant: TenantKey, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/tuning", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_tuning_job_makes_its_choice_the_models_unlearn_config_with_its_provenance(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str
) -> None:
    job = _tune(client, tenant, model["id"], {"lrs": [0.02, 0.001], "runs": 1})

    assert _run(settings, job["id"]) == Outcome.succeeded

    tuned = _get(client, tenant, f"/v1/models/{model['id']}")
    provenance = tuned["tuning"]
    chosen = provenance["chosen"]
    assert chosen["lr"] in (0.001, 0.02) and chosen["step_size"] == 1
    assert [tuned["unlearn_config"][k] for k in ("lr", "step_size", "forget_in_mix")] == [
        chosen["lr"], chosen["step_size"], chosen["forget_in_mix"]]  # fmt: skip
    # every other field is the manifest's
    assert {k: v for k, v in tuned["unlearn_config"].items() if k not in ("lr", "forget_in_mix")} == {
        k: v for k, v in model["unlearn_config"].items() if k not in ("lr", "forget_in_mix")}  # fmt: skip
    assert provenance["job_id"] == job["id"] and provenance["procedure"] == "reference_free"
    assert provenance["metric"] == "loss_auc_gap" and provenance["previous_config"] == model["unlearn_config"]
    # an AMUN model: the whole grid with D_F in the fine-tuning mix, then without it
    assert provenance["forget_mixes"] == [True, False]
    assert [(s["lr"], s["step_size"], s["forget_in_mix"]) for s in provenance["grid"]] == [
        (0.001, 1, True), (0.02, 1, True), (0.001, 1, False), (0.02, 1, False)]  # fmt: skip
    assert all(len(s["scores"]) == 1 and 0 <= s["mean_score"] <= 50 and s["seeds"] == [0] for s in provenance["grid"])
    best = min((s for s in provenance["grid"] if s["feasible"]), key=lambda s: s["mean_score"], default=None)
    assert best is None or (best["lr"], best["forget_in_mix"]) == (chosen["lr"], chosen["forget_in_mix"])
    assert (provenance["tuning_forget_size"], provenance["tuned_version"], provenance["holdout_size"]) == (20, 1, 225)
    assert provenance["finished_at"] is not None
    finished = _get(client, tenant, f"/v1/jobs/{job['id']}")
    assert (finished["status"], finished["result_version"]) == ("succeeded", None)
    (event,) = _sql(database_url, "SELECT data FROM event WHERE type = 'model.tuned'")
    assert '"procedure":"reference_free"' in str(event["data"]).replace(" ", "").replace("'", '"')

    # a later unlearning job runs with the tuned rate
    request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()
    assert _run(settings, request["job_id"]) == Outcome.succeeded
    lineage = _get(client, tenant, f"/v1/models/{model['id']}/versions/2")["lineage"]
    assert lineage["hyper_parameters"]["lr"] == chosen["lr"]


def test_an_unlearning_job_queued_before_the_tuning_finished_keeps_the_config_it_was_queued_with(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.jobs, "YIELD_AFTER_S", 3600.0)  # the tuning runs to its end first
    request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()
    job = _tune(client, tenant, model["id"], {"lrs": [0.001], "runs": 1})
    assert _run(settings, job["id"]) == Outcome.succeeded
    assert _get(client, tenant, f"/v1/models/{model['id']}")["unlearn_config"]["lr"] == 0.001

    assert _run(settings, request["job_id"]) == Outcome.succeeded

    lineage = _get(client, tenant, f"/v1/models/{model['id']}/versions/2")["lineage"]
    assert lineage["hyper_parameters"]["lr"] == 0.05  # the manifest's, frozen at enqueue


def test_a_tuning_job_hands_its_worker_to_a_waiting_deletion_request_and_resumes_from_its_finished_runs(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[float] = []
    real = unlearning.tuning.run_unlearning

    def counting(model_in, forget, retain, cfg, **kwargs):
        runs.append(cfg.lr)
        return real(model_in, forget, retain, cfg, **kwargs)

    monkeypatch.setattr(unlearning.tuning, "run_unlearning", counting)
    job = _tune(client, tenant, model["id"], {"lrs": [0.01, 0.001], "runs": 1, "forget_mixes": [True]})
    request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()

    def arrives_after_the_first_run(session: Any, *, waited_seconds: float) -> bool:
        # as if the request had come in once the tuning's first run was stored
        tuning, unlearn = (session.get(Job, uuid.UUID(i)) for i in (job["id"], request["job_id"]))
        return bool((tuning.partial or {}).get("runs")) and unlearn.status == JobStatus.queued

    monkeypatch.setattr(jobs, "unlearning_waiting", arrives_after_the_first_run)
    monkeypatch.setattr(worker.jobs, "YIELD_CHECK_S", 0.0)

    assert _run(settings, job["id"]) == Outcome.yielded
    handed_back = _get(client, tenant, f"/v1/jobs/{job['id']}")
    assert (handed_back["status"], handed_back["attempts"]) == ("running", 0)  # the attempt is not counted
    (released,) = _sql(database_url, "SELECT data FROM event WHERE type = 'job.released'")
    assert "a deletion request is waiting" in str(released["data"])
    with session_factory(database_url)() as session:
        assert str(jobs.next_claimable(session)) == request["job_id"]  # the deletion request goes first
    assert _run(settings, request["job_id"]) == Outcome.succeeded

    assert _run(settings, job["id"]) == Outcome.succeeded
    assert runs == [0.001, 0.01]  # the run finished before the hand-over was not run again
    provenance = _get(client, tenant, f"/v1/models/{model['id']}")["tuning"]
    assert [s["lr"] for s in provenance["grid"]] == [0.001, 0.01] and provenance["tuned_version"] == 1


def test_a_tuning_job_given_one_mix_tunes_only_that_one_and_makes_it_the_models(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    job = _tune(client, tenant, model["id"], {"lrs": [0.02], "runs": 1, "forget_mixes": [False]})
    assert _run(settings, job["id"]) == Outcome.succeeded
    tuned = _get(client, tenant, f"/v1/models/{model['id']}")
    assert [s["forget_in_mix"] for s in tuned["tuning"]["grid"]] == [False]
    assert tuned["tuning"]["chosen"]["forget_in_mix"] is False and tuned["unlearn_config"]["forget_in_mix"] is False


def test_the_tuning_subset_leaves_out_every_sample_forgotten_and_stays_out_of_the_remaining_data(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:30]).json()
    assert _run(settings, request["job_id"]) == Outcome.succeeded
    seen: list[tuple[set[str], set[str]]] = []
    real = worker.jobs.tune_reference_free

    def spy(model_in, base, lrs, step_sizes, *, forget, retain, holdout, **kwargs):
        seen.append((set(forget.ids.tolist()), set(retain.ids.tolist())))
        return real(model_in, base, lrs, step_sizes, forget=forget, retain=retain, holdout=holdout, **kwargs)

    monkeypatch.setattr(worker.jobs, "tune_reference_free", spy)
    job = _tune(client, tenant, model["id"], {"lrs": [0.01], "runs": 1, "forget_size": 25, "forget_mixes": [True]})
    assert _run(settings, job["id"]) == Outcome.succeeded

    ((forget, retain),) = seen
    assert len(forget) == 25 and not forget & set(IDS[:30]) and not retain & set(IDS[:30]) and not forget & retain
    assert len(retain) == tiny.N_TRAIN - 30 - 25
    assert _get(client, tenant, f"/v1/models/{model['id']}")["tuning"]["tuned_version"] == 2


def test_the_papers_procedure_tunes_against_a_model_retrained_without_the_tuning_subset(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings
) -> None:
    recipe = {"epochs": 3, "lr": 0.05, "batch_size": 32, "augment": {"crop_padding": 0, "hflip": False}}
    model = tiny.register_model(client, tenant, data_root, unlearn_config={**tiny.UNLEARN, "recipe": recipe})
    job = _tune(client, tenant, model["id"], {"procedure": "retrain", "lrs": [0.02, 0.001], "runs": 1})

    assert _run(settings, job["id"]) == Outcome.succeeded

    provenance = _get(client, tenant, f"/v1/models/{model['id']}")["tuning"]
    assert (provenance["procedure"], provenance["metric"]) == ("retrain", "avg_gap_mis")
    assert {"test_acc", "mis", "forget_acc"} <= set(provenance["reference"])
    assert all(s["mean_score"] >= 0 for s in provenance["grid"])


def test_an_unlearning_job_without_a_stopping_rule_runs_under_the_utility_guard_of_the_settings(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    lenient = settings.model_copy(update={"guard_max_acc_drop": 100.0})  # a guard that never trips
    request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()
    assert tiny.UNLEARN.get("stop") is None

    assert _run(lenient, request["job_id"]) == Outcome.succeeded

    version = _get(client, tenant, f"/v1/models/{model['id']}/versions/2")
    stop = version["lineage"]["hyper_parameters"]["stop"]
    assert (stop["tolerance"], stop["max_acc_drop"]) == (None, 100.0)  # guard only, no AUC criterion
    metrics = version["metrics"]
    assert len(metrics["stop_checks"]) == 2 * 2 and metrics["epochs_run"] == 2  # two checks an epoch, every epoch
    assert metrics["parent_holdout_acc"] is not None and metrics["guard_tripped"] is False
    assert _get(client, tenant, f"/v1/deletion-requests/{request['id']}")["guard_tripped"] is False


def test_a_guard_that_no_point_of_unlearning_passes_fails_the_job_after_a_gentler_try_instead_of_keeping_the_parent(
    client: TestClient, tenant: TenantKey, data_root: Path, settings: Settings, database_url: str
) -> None:
    # gradient ascent at a high rate wrecks held-out accuracy at once; no loss of accuracy is allowed, so
    # every run returns its parent: calling that "completed" would say a deletion happened that did not
    harsh = {**tiny.UNLEARN, "method": "ga", "lr": 0.5}
    model = tiny.register_model(client, tenant, data_root, unlearn_config=harsh)
    strict = settings.model_copy(update={"guard_max_acc_drop": 0.0})
    request = tiny.submit(client, tenant, model["id"], IDS[:10]).json()

    assert _run(strict, request["job_id"]) == Outcome.failed

    answer = _get(client, tenant, f"/v1/deletion-requests/{request['id']}")
    assert answer["status"] == "failed"
    (job,) = _sql(database_url, "SELECT error FROM job WHERE kind = 'unlearn'")
    assert "utility guard stopped unlearning at lr 0.5 and again at 0.25" in job["error"]
    assert "nothing was forgotten" in job["error"]
    assert [v["number"] for v in _get(client, tenant, f"/v1/models/{model['id']}/versions")["items"]] == [1]
