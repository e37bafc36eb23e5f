"""`python -m tools.demo_walkthrough` without a service: its one-line errors, and how it picks samples not forgotten
yet.

The whole walkthrough against a running service is one step of the end-to-end test
(tests/worker/test_executor.py); these cover what that run cannot reach, the last one with a fake service
(httpx.MockTransport) that answers a pick of forgotten samples and then fails the request.
"""

from __future__ import annotations

import json
import random
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.demo_walkthrough import DemoCredentials, DemoError, main, read_credentials, walk
from unlearning_client import Client

MODEL_ID = str(uuid.uuid4())
DATASET_ID = str(uuid.uuid4())
NOW = "2026-01-05T10:00:00Z"


def _write_demo(folder: Path, model_id: str = MODEL_ID) -> Path:
    key_file = folder / "demo-api-key"
    key_file.write_text("ulk_demo-secret\n")
    (folder / "demo.json").write_text(json.dumps({"dataset_id": DATASET_ID, "model_id": model_id}))
    return key_file


def test_a_missing_demo_key_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--key-file", str(tmp_path / "demo-api-key")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: no demo key at {tmp_path / 'demo-api-key'}: ")


def test_a_key_without_its_demo_json_is_refused(tmp_path: Path) -> None:
    key_file = _write_demo(tmp_path)
    (tmp_path / "demo.json").unlink()
    with pytest.raises(DemoError, match=r"no .*demo\.json beside the demo key"):
        read_credentials(key_file)


def test_an_unreachable_service_is_one_line_naming_the_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key_file = _write_demo(tmp_path)
    assert main(["--url", f"http://127.0.0.1:{port}", "--key-file", str(key_file), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: service not reachable at http://127.0.0.1:{port} (ConnectError")


def _model() -> dict[str, Any]:
    return {"id": MODEL_ID, "name": "m", "dataset_id": DATASET_ID, "architecture": {}, "method": "amun",
            "unlearn_config": {}, "latest_version": 2, "created_at": NOW}  # fmt: skip


def _dataset() -> dict[str, Any]:
    return {
        "id": DATASET_ID, "name": "d", "format": "digits", "id_scheme": "positional", "retain_access": True,
        "spec": {}, "num_train": 50, "num_test": 10, "classes": [], "input_shape": [1, 8, 8], "created_at": NOW,
    }  # fmt: skip


def _request(request_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "model_id": MODEL_ID, "status": status, "sample_count": 3, "new_sample_count": 0,
            "already_forgotten_count": 0, "created_at": NOW, "updated_at": NOW, **fields}  # fmt: skip


def _accepted(ids: list[str], *, new: int, listed: list[dict[str, Any]]) -> dict[str, Any]:
    return _request(
        str(uuid.uuid4()), "queued" if new else "completed", new_sample_count=new,
        already_forgotten_count=len(ids) - new, job_id=str(uuid.uuid4()) if new else None, duplicate_count=0,
        already_forgotten={"count": len(ids) - new, "listed": listed},
    )  # fmt: skip


def test_a_pick_of_forgotten_samples_is_drawn_again_and_a_failed_request_is_reported(tmp_path: Path) -> None:
    posted: list[list[str]] = []
    request_ids: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok", "database": "ok"})
        if path == f"/v1/models/{MODEL_ID}":
            return httpx.Response(200, json=_model())
        if path == f"/v1/datasets/{DATASET_ID}":
            return httpx.Response(200, json=_dataset())
        if path == f"/v1/models/{MODEL_ID}/deletion-requests":
            ids = json.loads(request.content)["sample_ids"]
            posted.append(ids)
            if len(posted) == 1:  # every one forgotten by version 2: 200, nothing to do
                listed = [{"sample_id": i, "request_id": str(uuid.uuid4()), "version": 2} for i in ids]
                return httpx.Response(200, json=_accepted(ids, new=0, listed=listed))
            in_flight = [{"sample_id": ids[0], "request_id": str(uuid.uuid4()), "version": None}]
            body = _accepted(ids, new=len(ids) - 1, listed=in_flight)
            request_ids.append(body["id"])
            return httpx.Response(202, json=body)
        if request_ids and path == f"/v1/deletion-requests/{request_ids[0]}":
            return httpx.Response(200, json=_request(request_ids[0], "failed", error="worker crashed"))
        return httpx.Response(404, json={"title": "Not Found", "detail": f"unexpected call {request.method} {path}"})

    lines: list[str] = []
    credentials = DemoCredentials(key="k", model_id=MODEL_ID, key_file=tmp_path / "demo-api-key")
    api = Client("http://demo.test", "k", transport=httpx.MockTransport(answer))
    with api, pytest.raises(DemoError) as failed:
        walk(api, credentials, out_dir=tmp_path, count=3, rng=random.Random(0), echo=lines.append, poll_interval_s=0)
    assert str(failed.value) == f"request {request_ids[0]} ended failed: worker crashed"
    assert len(posted) == 2 and posted[0] != posted[1]
    assert all(len(ids) == 3 and all(0 <= int(i) < 50 for i in ids) for ids in posted)
    assert f"already forgotten, skipped: 3 of 3 ({posted[0][0]} by v2, " in lines[1]
    assert lines[2] == f"already forgotten, skipped: 1 of 3 ({posted[1][0]} in flight)"
    assert lines[3].startswith(f"deletion request {request_ids[0]} accepted for 2 sample(s): ")
    assert lines[3].split(": ", 1)[1].startswith(", ".join(posted[1][1:]))
