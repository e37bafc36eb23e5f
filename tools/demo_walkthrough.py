"""`python -m tools.demo_walkthrough`: the README's walkthrough, run through unlearning_client against a running
service.

It reads the demo's API key and model id (written by service.demo on the first start), sends a deletion
request for a few samples not forgotten yet, follows the job, downloads the new checkpoint (checked against
its ETag), summarises the audit against the parent version, saves the audit page and the signed certificate,
and verifies the certificate with the key the service publishes. Only the API is used, so it works the same
against a service on another machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from unlearning_client import (
    FINAL_REQUEST_STATUSES,
    ApiError,
    AuditReport,
    Client,
    Dataset,
    DeletionRequest,
    DeletionRequestAccepted,
    RequestStatus,
    ServiceUnavailable,
    ServiceUnreachable,
    SignatureError,
    Unauthorized,
    UnlearningError,
    verify_certificate,
)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_COUNT = 4
POLL_INTERVAL_S = 1.0
# a demo job takes well under a minute on two cores; other jobs queued ahead of it may take far longer
POLL_TIMEOUT_S = 3600.0
HTTP_TIMEOUT_S = 60.0
# a random pick may hit samples an earlier run already forgot; each try draws afresh
PICK_TRIES = 5
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


def walk(
    api: Client,
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
    """The walkthrough through `api` (the demo's key set); raises DemoError at the first failed step."""
    try:
        return _walk(api, credentials, out_dir=out_dir, count=count, sample_ids=sample_ids, rng=rng or random.Random(),
                     echo=echo, status=status or StatusLine(sys.stdout), poll_interval_s=poll_interval_s,
                     timeout_s=timeout_s)  # fmt: skip
    except ServiceUnreachable as exc:
        cause = f"{type(exc.cause).__name__}: {exc.cause}"
        raise DemoError(f"service not reachable at {api.base_url} ({cause}): is it running? {SERVE_HINT}") from None
    except Unauthorized:
        raise DemoError(
            f"the service refused the key in {credentials.key_file} (401): is it the demo key of this service's "
            "var/ folder?"
        ) from None
    except ApiError as exc:
        reason = exc.detail or exc.title
        raise DemoError(f"{exc.method} {urlsplit(exc.url).path} answered {exc.status}: {reason}") from None
    except UnlearningError as exc:  # an answer the client cannot read, a download or signature that fails
        raise DemoError(str(exc).splitlines()[0]) from None


def _walk(
    api: Client,
    credentials: DemoCredentials,
    *,
    out_dir: Path,
    count: int,
    sample_ids: Sequence[str] | None,
    rng: random.Random,
    echo: Callable[[str], None],
    status: StatusLine,
    poll_interval_s: float,
    timeout_s: float,
) -> Outcome:
    try:
        api.health()
    except ServiceUnavailable as exc:
        raise DemoError(f"the service at {api.base_url} is up but unhealthy: {exc.detail}") from None
    model = api.get_model(credentials.model_id)
    dataset = api.get_dataset(model.dataset_id)
    echo(
        f"model {model.name} ({model.id}), latest version {model.latest_version}; dataset "
        f"{dataset.name}, {dataset.num_train} training samples"
    )

    accepted = _submit(api, model.id, dataset, count=count, sample_ids=sample_ids, rng=rng, echo=echo)
    done = _follow(api, accepted, status=status, poll_interval_s=poll_interval_s, timeout_s=timeout_s)
    if done.status != RequestStatus.completed or done.version is None:
        raise DemoError(f"request {done.id} ended {done.status}: {done.error or 'no reason given'}")
    number = done.version
    echo(f"request {done.id} completed: version {number}")

    version = api.get_version(model.id, number)
    if version.checkpoint is None:
        raise DemoError(f"version {number} names no checkpoint")
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_file = out_dir / f"v{number}.safetensors"
    downloaded = api.download_checkpoint(model.id, number, checkpoint_file, expected_sha256=version.checkpoint.sha256)
    echo(f"checkpoint: {downloaded.size_bytes:,} bytes, sha256 {downloaded.sha256} matches the ETag")

    report = api.get_audit(model.id, number)
    for line in audit_summary(report):
        echo(line)
    page_file = out_dir / f"audit-v{number}.html"
    page_file.write_text(api.get_audit_page(model.id, number), encoding="utf-8")
    certificate = api.get_certificate(model.id, number)
    certificate_file = out_dir / f"certificate-v{number}.json"
    certificate_file.write_text(certificate.model_dump_json(indent=2) + "\n", encoding="utf-8")
    echo(f"saved {checkpoint_file}, {page_file} and {certificate_file}")

    # the key the service publishes; the certificate must also name this checkpoint and this audit report
    try:
        summary = verify_certificate(certificate, api.get_signing_key(), report=report)
    except SignatureError as exc:
        raise DemoError(f"the certificate does not verify: {exc}") from None
    if summary.get("sha256") != downloaded.sha256:
        named = summary.get("sha256")
        raise DemoError(f"the certificate names checkpoint {named}, not the downloaded {downloaded.sha256}")
    issued = datetime.fromisoformat(summary["issued_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    echo(
        f"certificate: valid {certificate.algorithm} signature by key {certificate.key_id} (issued {issued}); "
        "it names this checkpoint and this audit report"
    )
    return Outcome(request_id=str(done.id), version=number, verdict=report.verdict,
                   files=[checkpoint_file, page_file, certificate_file])  # fmt: skip


def _submit(
    api: Client,
    model_id: uuid.UUID,
    dataset: Dataset,
    *,
    count: int,
    sample_ids: Sequence[str] | None,
    rng: random.Random,
    echo: Callable[[str], None],
) -> DeletionRequestAccepted:
    """Send a deletion request; with no IDs given, pick `count` random positional IDs, drawing again when every
    one was forgotten already (the answer reports those and the service skips them)."""
    if sample_ids is None:
        if dataset.id_scheme != "positional":
            raise DemoError(
                f"dataset {dataset.name} names its samples in an ID file: the demo can only pick positional "
                "IDs ('0', '1', ...); pass the IDs to forget with --ids"
            )
        if not 1 <= count <= dataset.num_train:
            raise DemoError(f"--count must lie between 1 and {dataset.num_train} (the training samples), got {count}")
    for _ in range(PICK_TRIES):
        picked = sample_ids if sample_ids is not None else rng.sample(range(dataset.num_train), count)
        ids = [str(i) for i in picked]
        reference = f"demo-{uuid.uuid4().hex[:12]}"
        accepted = api.submit_deletion_request(model_id, ids, subject_request_id=reference, idempotency_key=reference)
        already = accepted.already_forgotten  # lists the first few of them only
        if already.count:
            named = [f"{e.sample_id} by v{e.version}" if e.version is not None else f"{e.sample_id} in flight"
                     for e in already.listed]  # fmt: skip
            echo(f"already forgotten, skipped: {already.count} of {len(ids)} ({_few(named, already.count)})")
        if accepted.new_sample_count:
            listed = {entry.sample_id for entry in already.listed}
            new_ids = [i for i in ids if i not in listed]
            # which IDs are new is known only when the answer listed every skipped one
            which = f": {_few(new_ids, len(new_ids))}" if len(listed) == already.count else ""
            echo(
                f"deletion request {accepted.id} accepted for {accepted.new_sample_count} sample(s){which}; "
                f"job {accepted.job_id}"
            )
            return accepted
        if sample_ids is not None:
            raise DemoError(f"every given ID was forgotten before (request {accepted.id}): nothing to unlearn")
    raise DemoError(f"{PICK_TRIES} random picks found only samples forgotten before; pass --ids")


def _few(names: Sequence[str], total: int, limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {total - min(len(names), limit)} more" if total > min(len(names), limit) else "")


def _follow(
    api: Client, request: DeletionRequest, *, status: StatusLine, poll_interval_s: float, timeout_s: float
) -> DeletionRequest:
    """Poll the request and its job until the request ends, showing phase, percent and ETA on one line."""
    deadline = time.monotonic() + timeout_s
    begin = time.monotonic()
    try:
        while True:
            request = api.get_deletion_request(request.id)
            if request.status in FINAL_REQUEST_STATUSES:
                return request
            text, key = f"request {request.status}", (request.status,)
            if request.job_id is not None:
                job = api.get_job(request.job_id)
                eta = f"ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None else "ETA -"
                text += f" | job {job.status}: {job.phase or 'waiting'} {job.percent:5.1f}%  {eta}"
                key = (request.status, job.status, job.phase)
            status.show(f"{text}  [{time.monotonic() - begin:.0f} s]", key=key)
            if time.monotonic() > deadline:
                raise DemoError(f"request {request.id} still {request.status} after {timeout_s:.0f} s")
            time.sleep(poll_interval_s)
    finally:
        status.close()


def audit_summary(report: AuditReport) -> list[str]:
    """A few lines on an audit report: the plain-language headline, each check with its value, interval and
    result, and this version against its parent on the forgotten samples and the test set."""
    context = report.context
    lines = [f"audit of version {context.get('version')}: verdict {report.verdict.upper()}", f"  {report.headline}"]
    width = max((len(check.name) for check in report.checks), default=0)
    for check in report.checks:
        interval = f"[{_number(check.ci_low)}, {_number(check.ci_high)}]"
        lines.append(f"  {check.name:<{width}}  {_number(check.value):>8} {interval:<18} {check.limit or '':<22} "
                     f"{check.result}")  # fmt: skip
    models = report.models
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


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_walkthrough(
    *, url: str, key_file: Path, out_dir: Path, count: int = DEFAULT_COUNT, sample_ids: Sequence[str] | None = None
) -> Outcome:
    """The command's body: credentials, a client, the walk."""
    credentials = read_credentials(key_file)
    with Client(url, credentials.key, timeout=HTTP_TIMEOUT_S) as api:
        return walk(api, credentials, out_dir=out_dir, count=count, sample_ids=sample_ids)


def _default_key_file() -> Path:
    # imported here: only the default needs the service's settings (UNLEARN_HOME, UNLEARN_SIGNING_KEY_FILE)
    from service.demo import key_file
    from service.settings import get_settings

    return key_file(get_settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo_walkthrough",
        description="Walk through the README's flow against a running service with the demo's key: forget a few "
        "samples, follow the job, check the new checkpoint, summarise the audit, save and verify the certificate.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the running service (default {DEFAULT_URL})")
    parser.add_argument(
        "--key-file", metavar="FILE",
        help="the demo's admin key, with demo.json beside it (default: demo-api-key in the folder of "
        "UNLEARN_SIGNING_KEY_FILE, i.e. var/demo-api-key)",
    )  # fmt: skip
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT,
        help=f"how many random training samples to forget (default {DEFAULT_COUNT})",
    )  # fmt: skip
    parser.add_argument("--ids", nargs="+", metavar="ID", help="forget these sample IDs instead of a random pick")
    parser.add_argument(
        "--out", default=".", metavar="DIR",
        help="where the checkpoint, audit page and certificate are saved (default: the working folder)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        outcome = run_walkthrough(
            url=args.url,
            key_file=Path(args.key_file) if args.key_file is not None else _default_key_file(),
            out_dir=Path(args.out),
            count=args.count,
            sample_ids=args.ids,
        )
    except (DemoError, OSError, ValueError) as exc:  # ValueError: the service's settings, for the default key file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ok: version {outcome.version}, audit verdict {outcome.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
