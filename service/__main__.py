"""The operator's command line: `python -m service COMMAND`.

Commands: run, migrate, create-tenant, verify-events, verify-certificate, public-key, openapi. The README's
walkthrough, a client of the running service, is `python -m tools.demo_walkthrough`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from service.audits import certificate as certificates
from service.db import dispose_engines, migrate, session_factory
from service.errors import ProblemError
from service.events.service import verify_chain
from service.settings import Settings, get_settings, hand_to_child_processes
from service.supervisor import Supervisor, default_state_file
from service.tenants.service import create_tenant


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings.database_url)
    print(f"ok: database at revision head ({_safe_url(settings)})")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate, start the supervised local executor (unless a Celery broker is configured) and serve the API
    until SIGINT/SIGTERM; the executor is restarted whenever it dies, and stopped on the way out."""
    import uvicorn

    migrate(settings.database_url)
    if not args.no_demo:
        from service.demo import ensure_demo

        demo = ensure_demo(settings, log=lambda msg: print(msg, file=sys.stderr))
        if demo is not None:
            print(f"demo: model {demo.model_id}, admin API key in {demo.key_file} (see README)", file=sys.stderr)
    dispose_engines()  # the executor and the server build their own connections
    supervisor, state_file = None, None
    if settings.broker_url is None and not args.no_executor:
        state_file = (settings.executor_state_file or default_state_file(settings)).resolve()
        supervisor = Supervisor(database_url=settings.database_url, state_file=state_file,
                                max_attempts=settings.max_attempts)  # fmt: skip
    # the API processes' /healthz reads the supervisor's state from there; without an executor there is
    # nothing to check: the jobs run elsewhere
    hand_to_child_processes(executor_state_file=state_file if supervisor is not None else None)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    # uvicorn shuts down gracefully on SIGTERM, restores this handler and re-raises the signal: it then
    # unwinds through the with block below (which stops the executor) instead of dying on the spot.
    signal.signal(signal.SIGTERM, terminate)
    # leaving the block stops the executor: SIGTERM, so that it hands its job back, then a kill after a while
    with supervisor if supervisor is not None else contextlib.nullcontext():
        try:
            uvicorn.run(
                "service.app:create_app",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                log_level=settings.log_level.lower(),
            )
        except KeyboardInterrupt:
            pass
    return 0


def _create_tenant(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not name or len(name) > 200:
        raise ValueError("the tenant name must have 1 to 200 characters")
    _require_ledger(settings)
    with session_factory(settings.database_url)() as session, session.begin():
        tenant, issued = create_tenant(session, name=name)
    print(f"tenant_id: {tenant.id}")
    print(f"admin_key: {issued.key}")
    print("store the key now: it is shown only once", file=sys.stderr)
    return 0


def _verify_events(args: argparse.Namespace, settings: Settings) -> int:
    _require_ledger(settings)
    with session_factory(settings.database_url)() as session:
        verdict = verify_chain(session)
    print(verdict)
    return 0 if verdict.ok else 1


def _verify_certificate(args: argparse.Namespace, settings: Settings) -> int:
    # the file's own problems are the certificate's: answered "invalid: ..." with exit 1 like a bad signature
    if args.public_key is not None and args.public_key.lstrip().startswith("{"):
        public_key = certificates.public_key_from_jwk(json.loads(args.public_key))  # a JWK, e.g. signing-key's jwk
    elif args.public_key is not None:
        public_key = certificates.public_key_from_b64(args.public_key)
    else:
        public_key = certificates.signing_key(settings, create=False).public_key()
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
        certificates.check(document, public_key)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, certificates.CertificateError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"invalid: {reason}")
        return 1
    summary = document["summary"]
    print(
        f"valid: model {summary.get('model_id')} version {summary.get('version')}, verdict {summary.get('verdict')}, "
        f"issued {summary.get('issued_at')}, signed by key {document['key_id']}"
    )
    return 0


def _public_key(args: argparse.Namespace, settings: Settings) -> int:
    key = certificates.signing_key(settings, create=False)
    if args.jwk:
        print(json.dumps(certificates.public_jwk(key)))
    else:
        print(certificates.public_key_b64(key))
    print(f"key_id: {certificates.key_id(key)} ({certificates.ALGORITHM})", file=sys.stderr)
    return 0


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    from service.app import create_app  # the app only for this command: the others need no web stack

    print(json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False))
    return 0


def _require_ledger(settings: Settings) -> None:
    """Refuse, creating nothing, when the embedded SQLite ledger does not exist: connecting would create an
    empty file (and its folder) and then fail on the missing tables."""
    url = make_url(settings.database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"no ledger at {path}: start the service once (`bash scripts/serve.sh`) or run `python -m service "
            "migrate`, or point UNLEARN_HOME / UNLEARN_DATABASE_URL at the service's"
        )


def _safe_url(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Operate the unlearning service. Settings come from UNLEARN_* environment variables "
        "(UNLEARN_DATABASE_URL, UNLEARN_DATA_ROOT, ...).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    serve = commands.add_parser(
        "run", help="migrate, then serve the API with an embedded local executor running the jobs"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N",
        help="API server processes (uvicorn workers; default 1). On PostgreSQL, 2 use both cores of a 2-core "
        "machine; keep 1 with the embedded SQLite ledger, where one process lets the API's writers take turns "
        "without polling the database lock",
    )  # fmt: skip
    serve.add_argument(
        "--no-executor", action="store_true", help="serve the API only; workers elsewhere run the jobs"
    )
    serve.add_argument(
        "--no-demo", action="store_true",
        help="do not create the demo tenant, dataset and model on first start",
    )
    serve.set_defaults(run=_run)
    commands.add_parser("migrate", help="apply every pending schema migration (alembic upgrade head)").set_defaults(
        run=_migrate
    )
    tenant = commands.add_parser("create-tenant", help="create a tenant and print its id and first admin API key")
    tenant.add_argument("name", metavar="NAME", help="the tenant's unique name, e.g. 'acme'")
    tenant.set_defaults(run=_create_tenant)
    commands.add_parser(
        "verify-events", help="check the event log's hash chain; exit 1 naming the first broken row"
    ).set_defaults(run=_verify_events)
    verify = commands.add_parser(
        "verify-certificate",
        help="check a certificate's Ed25519 signature over its RFC 8785 summary; exit 1 with the reason when invalid",
    )
    verify.add_argument("file", metavar="FILE", help="the certificate JSON (GET .../versions/{n}/certificate)")
    verify.add_argument(
        "--public-key",
        metavar="KEY",
        help="the signer's public key: base64 or its JWK JSON (GET /v1/signing-key's public_key or jwk); "
        "default: this service's own key",
    )
    verify.set_defaults(run=_verify_certificate)
    public_key = commands.add_parser(
        "public-key", help="print the base64 Ed25519 public key that verifies this service's certificates"
    )
    public_key.add_argument(
        "--jwk", action="store_true", help="print it as an RFC 8037 JSON Web Key instead (for JOSE and node's crypto)"
    )
    public_key.set_defaults(run=_public_key)
    commands.add_parser(
        "openapi", help="print the API's OpenAPI document (JSON); docs/openapi.json is this output, kept in sync by a test"
    ).set_defaults(run=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, get_settings())
    except ProblemError as exc:
        message = exc.detail
    except (OperationalError, ProgrammingError) as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        message = f"database error: {first_line} (is the database reachable and migrated? `python -m service migrate`)"
    except SQLAlchemyError as exc:
        message = f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    except (ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        dispose_engines()
    print(f"error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
