"""`python -m service demo` without a service: its one-line errors, and how it picks samples not forgotten yet.

The whole walkthrough against a running service is one step of the end-to-end test
(tests/worker/test_executor.py); these cover what that run cannot reach.
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

from service.__main__ import main
from service.demo_walkthrough import DemoCredentials, DemoError, read_credentials, walk

MODEL_ID = str(uuid.uuid4())
DATASET_ID = str(uuid.uuid4())


def _write_demo(folder: Path, model_id: str = MODEL_ID) -> Path:
    key_file = folder / "demo-api-key"
    key_file.write_text("ulk_demo-secret\n")
    (folder / "demo.json").write_text(json.dumps({"dataset_id": DATASET_ID, "model_id": model_id}))
    return key_file


def test_a_missing_demo_key_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--key-file", str(tmp_path / "demo-api-key")]) == 1
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
    assert main(["demo", "--url", f"http://127.0.0.1:{port}", "--key-file", str(key_file), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: service not reachable at http://127.0.0.1:{port} (ConnectError")


def _accepted(ids: list[str], *, new: int, listed: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "status": "queued" if new else "completed", "new_sample_count": new,
        "job_id": str(uuid.uuid4()) if new else None,
        "already_forgotten": {"count": len(ids) - new, "listed": listed},
    }  # fmt: skip


def test_a_pick_of_forgotten_samples_is_drawn_again_and_a_failed_request_is_reported(tmp_path: Path) -> None:
    posted: list[list[str]] = []
    request_ids: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok", "database": "ok"})
        if path == f"/v1/models/{MODEL_ID}":
            model = {"id": MODEL_ID, "name": "m", "dataset_id": DATASET_ID, "latest_version": 2}
            return httpx.Response(200, json=model)
        if path == f"/v1/datasets/{DATASET_ID}":
            return httpx.Response(200, json={"name": "d", "id_scheme": "positional", "num_train": 50})
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
            return httpx.Response(200, json={"id": request_ids[0], "status": "failed", "error": "worker crashed"})
        return httpx.Response(404, json={"detail": f"unexpected call {request.method} {path}"})

    lines: list[str] = []
    credentials = DemoCredentials(key="k", model_id=MODEL_ID, key_file=tmp_path / "demo-api-key")
    http = httpx.Client(base_url="http://demo.test", transport=httpx.MockTransport(answer))
    with http, pytest.raises(DemoError) as failed:
        walk(http, credentials, out_dir=tmp_path, count=3, rng=random.Random(0), echo=lines.append, poll_interval_s=0)
    assert str(failed.value) == f"request {request_ids[0]} ended failed: worker crashed"
    assert len(posted) == 2 and posted[0] != posted[1]
    assert all(len(ids) == 3 and all(0 <= int(i) < 50 for i in ids) for ids in posted)
    assert f"already forgotten, skipped: 3 of 3 ({posted[0][0]} by v2, " in lines[1]
    assert lines[2] == f"already forgotten, skipped: 1 of 3 ({posted[1][0]} in flight)"
    assert lines[3].startswith(f"deletion request {request_ids[0]} accepted (202) for 2 sample(s): ")
    assert lines[3].split(": ", 1)[1].startswith(", ".join(posted[1][1:]))
