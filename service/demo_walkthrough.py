"""`python -m service demo`: the README's walkthrough, run as a client against a running service.

It reads the demo's API key and model id (written by service.demo on the first start), sends a deletion
request for a few samples not forgotten yet, follows the job, downloads the new checkpoint and checks it
against its ETag, summarises the audit against the parent version, saves the audit page and the signed
certificate, and verifies the certificate with the key the service publishes. Only HTTP is used, so it
works the same against a service on another machine.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from service.audits import certificate as certificates

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_COUNT = 4
POLL_INTERVAL_S = 1.0
# a demo job takes well under a minute on two cores; other jobs queued ahead of it may take far longer
POLL_TIMEOUT_S = 3600.0
HTTP_TIMEOUT_S = 60.0
# a random pick may hit samples an earlier run already forgot; each try draws afresh
PICK_TRIES = 5
FINAL_REQUEST_STATES = ("completed", "failed", "cancelled", "rejected")
SERVE_HINT = "`bash scripts/serve.sh` (or `python -m service run`) starts it"


class DemoError(Exception):
    """A step of the walkthrough failed; the message says which and why, in one line."""


@dataclass(frozen=True)
class DemoCredentials:
    key: str
    model_id: str
    key_file: Path


@dataclass(frozen=True)
class Outcome:
    request_id: str
    version: int
    verdict: str
    files: list[Path]


def read_credentials(key_file: Path) -> DemoCredentials:
    """The demo's admin key and model id: key_file and the demo.json beside it (service.demo writes both)."""
    key_file = Path(key_file)
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise DemoError(
            f"no demo key at {key_file}: the service writes it there on its first start "
            "(`bash scripts/serve.sh`); or pass --key-file"
        ) from None
    except OSError as exc:
        raise DemoError(f"cannot read the demo key {key_file}: {exc.strerror or exc}") from None
    if not key:
        raise DemoError(f"the demo key file {key_file} is empty")
    info_file = key_file.with_name("demo.json")
    try:
        model_id = str(json.loads(info_file.read_text(encoding="utf-8"))["model_id"])
        uuid.UUID(model_id)
    except FileNotFoundError:
        message = f"no {info_file} beside the demo key: it names the demo model (written on first start)"
        raise DemoError(message) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"{info_file} does not name a demo model id: {type(exc).__name__}: {exc}") from None
    return DemoCredentials(key=key, model_id=model_id, key_file=key_file)


class StatusLine:
    """One line rewritten in place on a terminal; elsewhere (logs, pipes) a new line only when `key` changes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_key: object = None
        self._open = False

    def show(self, text: str, *, key: object) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._open = True
        elif key != self._last_key:
            self.stream.write(text + "\n")
        self._last_key = key
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


class _Api:
    """The calls the walkthrough makes, each failing with a DemoError that names the call and the answer."""

    def __init__(self, http: httpx.Client, key_file: Path) -> None:
        self.http = http
        self.key_file = key_file

    def send(self, method: str, path: str, *, ok: Sequence[int] = (200,), **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DemoError(
                f"service not reachable at {self.http.base_url} ({type(exc).__name__}: {exc}): is it running? "
                f"{SERVE_HINT}"
            ) from None
        if response.status_code in ok:
            return response
        if response.status_code == 401:
            raise DemoError(
                f"the service refused the key in {self.key_file} (401): is it the demo key of this service's "
                "var/ folder?"
            )
        raise DemoError(f"{method} {path} answered {response.status_code}: {_problem_detail(response)}")

    def get_json(self, path: str) -> Any:
        response = self.send("GET", path)
        try:
            return response.json()
        except ValueError:
            raise DemoError(f"GET {path} did not answer JSON: {response.text[:200]!r}") from None


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:300] if response.text.strip() else response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return json.dumps(body)[:300]


def walk(
    http: httpx.Client,
    credentials: DemoCredentials,
    *,
    out_dir: Path,
    count: int = DEFAULT_COUNT,
    sample_ids: Sequence[str] | None = None,
    rng: random.Random | None = None,
    echo: Callable[[str], None] = print,
    status: StatusLine | None = None,
    poll_interval_s: float = POLL_INTERVAL_S,
    timeout_s: float = POLL_TIMEOUT_S,
) -> Outcome:
    """The walkthrough over `http` (base URL and bearer key set); raises DemoError at the first failed step."""
    api = _Api(http, credentials.key_file)
    status = status or StatusLine(sys.stdout)
    rng = rng or random.Random()

    health = api.send("GET", "/healthz", ok=(200, 503))
    if health.status_code != 200:
        raise DemoError(f"the service at {http.base_url} is up but unhealthy: {_problem_detail(health)}")
    model_path = f"/v1/models/{credentials.model_id}"
    model = api.get_json(model_path)
    dataset = api.get_json(f"/v1/datasets/{model['dataset_id']}")
    echo(
        f"model {model['name']} ({model['id']}), latest version {model['latest_version']}; dataset "
        f"{dataset['name']}, {dataset['num_train']} training samples"
    )

    accepted = _submit(api, model_path, dataset, count=count, sample_ids=sample_ids, rng=rng, echo=echo)
    request_id = accepted["id"]
    done = _follow(api, request_id, status=status, poll_interval_s=poll_interval_s, timeout_s=timeout_s)
    if done["status"] != "completed":
        raise DemoError(f"request {request_id} ended {done['status']}: {done.get('error') or 'no reason given'}")
    number = int(done["version"])
    version_path = f"{model_path}/versions/{number}"
    echo(f"request {request_id} completed: version {number}")

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_file = out_dir / f"v{number}.safetensors"
    sha256 = _download_checkpoint(api, version_path, checkpoint_file, echo=echo)

    report = api.get_json(f"{version_path}/audit")
    for line in audit_summary(report):
        echo(line)
    page_file = out_dir / f"audit-v{number}.html"
    page_file.write_bytes(api.send("GET", f"{version_path}/audit.html").content)
    certificate_file = out_dir / f"certificate-v{number}.json"
    certificate_response = api.send("GET", f"{version_path}/certificate")
    certificate_file.write_bytes(certificate_response.content)
    echo(f"saved {checkpoint_file}, {page_file} and {certificate_file}")

    _verify_certificate(api, certificate_response, report=report, sha256=sha256, echo=echo)
    return Outcome(
        request_id=request_id,
        version=number,
        verdict=report["verdict"],
        files=[checkpoint_file, page_file, certificate_file],
    )


def _submit(
    api: _Api,
    model_path: str,
    dataset: dict[str, Any],
    *,
    count: int,
    sample_ids: Sequence[str] | None,
    rng: random.Random,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Send a deletion request; with no IDs given, pick `count` random positional IDs, drawing again when every
    one was forgotten already (the answer reports those and the service skips them)."""
    if sample_ids is None:
        if dataset.get("id_scheme") != "positional":
            raise DemoError(
                f"dataset {dataset['name']} names its samples in an ID file: the demo can only pick positional "
                "IDs ('0', '1', ...); pass the IDs to forget with --ids"
            )
        population = int(dataset["num_train"])
        if not 1 <= count <= population:
            raise DemoError(f"--count must lie between 1 and {population} (the training samples), got {count}")
    for _ in range(PICK_TRIES):
        ids = list(sample_ids) if sample_ids is not None else [str(i) for i in rng.sample(range(population), count)]
        reference = f"demo-{uuid.uuid4().hex[:12]}"
        response = api.send(
            "POST",
            f"{model_path}/deletion-requests",
            ok=(200, 202),
            json={"sample_ids": ids, "subject_request_id": reference},
            headers={"Idempotency-Key": reference},
        )
        body = response.json()
        already = body["already_forgotten"]  # lists the first few of them only
        if already["count"]:
            named = [
                f"{e['sample_id']} by v{e['version']}" if e["version"] is not None else f"{e['sample_id']} in flight"
                for e in already["listed"]
            ]
            echo(f"already forgotten, skipped: {already['count']} of {len(ids)} ({_few(named, already['count'])})")
        if response.status_code == 202:
            listed = {entry["sample_id"] for entry in already["listed"]}
            new_ids = [i for i in ids if i not in listed]
            # which IDs are new is known only when the answer listed every skipped one
            which = f": {_few(new_ids, len(new_ids))}" if len(listed) == already["count"] else ""
            echo(
                f"deletion request {body['id']} accepted (202) for {body['new_sample_count']} sample(s){which}; "
                f"job {body['job_id']}"
            )
            return body
        if sample_ids is not None:
            raise DemoError(f"every given ID was forgotten before (request {body['id']}): nothing to unlearn")
    raise DemoError(f"{PICK_TRIES} random picks found only samples forgotten before; pass --ids")


def _few(names: Sequence[str], total: int, limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {total - min(len(names), limit)} more" if total > min(len(names), limit) else "")


def _follow(
    api: _Api, request_id: str, *, status: StatusLine, poll_interval_s: float, timeout_s: float
) -> dict[str, Any]:
    """Poll the request and its job until the request ends, showing phase, percent and ETA on one line."""
    deadline = time.monotonic() + timeout_s
    begin = time.monotonic()
    try:
        while True:
            request = api.get_json(f"/v1/deletion-requests/{request_id}")
            if request["status"] in FINAL_REQUEST_STATES:
                return request
            text, key = f"request {request['status']}", (request["status"],)
            if request.get("job_id"):
                job = api.get_json(f"/v1/jobs/{request['job_id']}")
                eta = f"ETA {job['eta_seconds']:.0f} s" if job.get("eta_seconds") is not None else "ETA -"
                text += f" | job {job['status']}: {job['phase'] or 'waiting'} {job['percent']:5.1f}%  {eta}"
                key = (request["status"], job["status"], job["phase"])
            status.show(f"{text}  [{time.monotonic() - begin:.0f} s]", key=key)
            if time.monotonic() > deadline:
                raise DemoError(f"request {request_id} still {request['status']} after {timeout_s:.0f} s")
            time.sleep(poll_interval_s)
    finally:
        status.close()


def _download_checkpoint(api: _Api, version_path: str, target: Path, *, echo: Callable[[str], None]) -> str:
    """Stream the checkpoint into `target`, hashing it on the way; it must match the ETag and the version."""
    expected = api.get_json(version_path)["checkpoint"]["sha256"]
    digest = hashlib.sha256()
    size = 0
    path = f"{version_path}/checkpoint"
    try:
        with api.http.stream("GET", path) as response:
            if response.status_code != 200:
                response.read()
                raise DemoError(f"GET {path} answered {response.status_code}: {_problem_detail(response)}")
            etag = response.headers.get("etag", "").strip('"')
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    except httpx.TransportError as exc:
        raise DemoError(f"downloading {path} failed ({type(exc).__name__}: {exc})") from None
    actual = digest.hexdigest()
    if actual != etag or actual != expected:
        raise DemoError(
            f"the checkpoint's sha256 {actual} differs from its ETag {etag or '(none)'} or the version's {expected}"
        )
    echo(f"checkpoint: {size:,} bytes, sha256 {actual} matches the ETag")
    return actual


def audit_summary(report: dict[str, Any]) -> list[str]:
    """A few lines on an audit report: the plain-language headline, each check with its value, interval and
    result, and this version against its parent on the forgotten samples and the test set."""
    context = report.get("context", {})
    lines = [f"audit of version {context.get('version')}: verdict {report['verdict'].upper()}", f"  {report['headline']}"]
    width = max((len(check["name"]) for check in report["checks"]), default=0)
    for check in report["checks"]:
        interval = f"[{check['ci_low']:.2f}, {check['ci_high']:.2f}]"
        lines.append(f"  {check['name']:<{width}}  {check['value']:8.2f} {interval:<18} {check['limit']:<22} "
                     f"{check['result']}")  # fmt: skip
    models = report["models"]
    parent = f"parent (v{context['parent_version']})" if context.get("parent_version") is not None else "parent"
    lines.append(f"  {'':<24}{'this version':>14}{parent:>16}")
    rows = (
        ("forget accuracy %", lambda m: m["current"]["forget_acc"]),
        ("test accuracy %", lambda m: m["test_acc"]),
        ("loss AUC % (50 = ideal)", lambda m: m["current"]["loss_auc"]),
    )
    for label, value in rows:
        lines.append(f"  {label:<24}{value(models['version']):>14.2f}{value(models['parent']):>16.2f}")
    return lines


def _verify_certificate(
    api: _Api,
    response: httpx.Response,
    *,
    report: dict[str, Any],
    sha256: str,
    echo: Callable[[str], None],
) -> None:
    """Check the certificate's signature with the key the service publishes, and that it names this checkpoint
    and this report."""
    published = api.get_json("/v1/signing-key")
    try:
        document = response.json()
        certificates.check(document, certificates.public_key_from_b64(published["public_key"]))
    except (ValueError, certificates.CertificateError) as exc:
        raise DemoError(f"the certificate does not verify: {exc}") from None
    summary = document["summary"]
    report_sha256 = certificates.report_sha256(report)  # of the report's RFC 8785 form, as the certificate states
    if summary.get("sha256") != sha256:
        raise DemoError(f"the certificate names checkpoint {summary.get('sha256')}, not the downloaded {sha256}")
    if summary.get("report_sha256") != report_sha256:
        raise DemoError("the certificate's report_sha256 does not match the audit report the service returned")
    issued = datetime.fromisoformat(summary["issued_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    echo(
        f"certificate: valid {document['algorithm']} signature by key {document['key_id']} (issued {issued}); "
        "it names this checkpoint and this audit report"
    )


def run_walkthrough(
    *, url: str, key_file: Path, out_dir: Path, count: int = DEFAULT_COUNT, sample_ids: Sequence[str] | None = None
) -> Outcome:
    """The command's body: credentials, a client, the walk."""
    credentials = read_credentials(key_file)
    headers = {"Authorization": f"Bearer {credentials.key}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=HTTP_TIMEOUT_S) as http:
        return walk(http, credentials, out_dir=out_dir, count=count, sample_ids=sample_ids)
