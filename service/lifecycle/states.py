"""The deletion-request state machine: every change is checked, logged in the event chain and, when the
request has a callback URL, put in the webhook outbox, all in the caller's transaction.

received -> queued -> running -> auditing -> completed; side exits: failed, and cancelled (only before
running). A request whose every ID was already forgotten goes received -> completed. `rejected` exists in
the ledger's vocabulary but the API never stores it: a request naming unknown IDs is answered 422 and
leaves the ledger unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.callbacks import service as callbacks
from service.errors import Conflict
from service.events import service as events
from service.lifecycle import repository
from service.tables import DeletionRequest, RequestStatus, utcnow

S = RequestStatus
ALLOWED: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.received: frozenset({S.queued, S.completed, S.rejected, S.cancelled}),
    S.queued: frozenset({S.running, S.cancelled, S.failed}),
    S.running: frozenset({S.auditing, S.failed}),
    S.auditing: frozenset({S.completed, S.failed}),
    S.completed: frozenset(),
    S.rejected: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
}
CANCELLABLE = frozenset({S.received, S.queued})  # SERVICE.md: cancelled only before running
# The states of a request the service still has to finish: past its due date such a request is overdue. The others
# are final. A failed request's claims were released and it never moves again: its samples are sent again in a
# new request, which carries the controller's received_at and so the same clock (overdue at once if the due date
# has passed); rejected named nothing the model was trained on; cancelled was withdrawn by the caller.
IN_FLIGHT = frozenset({S.received, S.queued, S.running, S.auditing})


class InvalidTransition(Conflict):
    slug = "invalid-state-transition"


def record_creation(session: Session, request: DeletionRequest, *, actor: str, data: dict[str, Any]) -> None:
    """Log the request's arrival (state received) as its first event."""
    _record(session, request, event_type="deletion_request.received", actor=actor, data=data)


def transition(
    session: Session,
    request: DeletionRequest,
    to: RequestStatus,
    *,
    actor: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Move the request to `to`, or raise InvalidTransition naming both states."""
    current = RequestStatus(request.status)
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"deletion request {request.id} is {current.value}; it cannot become {to.value}")
    request.status = to
    request.updated_at = utcnow()
    if to == S.completed:
        request.completed_at = request.updated_at
    # No flush of its own: the event's append flushes (or, batched, the batch does at its end), so a
    # request changed twice in one transaction is updated once.
    _record(
        session,
        request,
        event_type=f"deletion_request.{to.value}",
        actor=actor,
        data={"from": current.value, **(data or {})},
    )


def withdraw(
    session: Session,
    request: DeletionRequest,
    to: RequestStatus,
    *,
    actor: str,
    error: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Cancel or fail the request and release its samples, so that a later request may claim them again."""
    if to not in (S.cancelled, S.failed):
        raise ValueError(f"withdraw() ends a request as cancelled or failed, not {to.value}")
    current = RequestStatus(request.status)
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"deletion request {request.id} is {current.value}; it cannot become {to.value}")
    repository.release_samples(session=session, request_id=request.id)
    request.error = error
    transition(session, request, to, actor=actor, data={"error": error, **(data or {})})


def _record(session: Session, request: DeletionRequest, *, event_type: str, actor: str, data: dict[str, Any]) -> None:
    payload = {
        "model_id": request.model_id,
        "status": RequestStatus(request.status).value,
        "subject_request_id": request.subject_request_id,
        "job_id": request.job_id,
        "version_id": request.version_id,
        **data,
    }
    events.append(
        session,
        event_type=event_type,
        subject_type="deletion_request",
        subject_id=request.id,
        actor=actor,
        tenant_id=request.tenant_id,
        data=payload,
    )
    # the outbox row commits or rolls back with the change it reports; no network I/O here
    callbacks.enqueue(session, request=request, event_type=event_type, data=payload)
