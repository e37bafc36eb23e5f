"""The deletion-request state machine's allowed moves, which need no database."""

from __future__ import annotations

import pytest

from service.lifecycle.states import ALLOWED, InvalidTransition, transition
from service.tables import DeletionRequest, RequestStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (RequestStatus.running, RequestStatus.cancelled),  # cancelled only before running
        (RequestStatus.completed, RequestStatus.queued),
        (RequestStatus.queued, RequestStatus.completed),  # never skips the run and the audit
    ],
)
def test_moves_outside_the_state_machine_are_refused(current: RequestStatus, target: RequestStatus) -> None:
    request = DeletionRequest(status=current)
    with pytest.raises(InvalidTransition, match=f"is {current.value}; it cannot become {target.value}"):
        transition(None, request, target, actor="test")  # type: ignore[arg-type]  # refused before any I/O
    assert request.status == current


def test_terminal_states_allow_no_move() -> None:
    for status in (RequestStatus.completed, RequestStatus.failed, RequestStatus.cancelled, RequestStatus.rejected):
        assert ALLOWED[status] == frozenset()
