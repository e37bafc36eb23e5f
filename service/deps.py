"""Typed FastAPI dependency aliases: the request's session, the settings, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db import get_session
from service.errors import Forbidden, Unauthorized
from service.settings import Settings
from service.tenants import service as tenants
from service.tenants.service import Principal

# scope="function": the session's commit runs before the response is sent (see db.get_session).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]

# auto_error=False: a missing or non-Bearer header is answered by our own 401 problem document.
_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer ulk_...`")


def current_tenant(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    principal = tenants.authenticate(session=session, key=credentials.credentials)
    if session.get_bind().dialect.name == "sqlite":
        # End the read transaction the key lookup opened: in WAL mode it pins a snapshot, and a later write
        # after slow work (loading a dataset to validate it) would fail if another writer committed
        # meanwhile. PostgreSQL's READ COMMITTED takes a snapshot per statement and the lookup locks no
        # row, so there the transaction goes on (ending it costs a pool check-out and a ping per request).
        session.rollback()
    return principal


CurrentTenant = Annotated[Principal, Depends(current_tenant)]


def require_scope(scope: str) -> Callable[[Principal], Principal]:
    def check(principal: CurrentTenant) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope (it has {sorted(principal.scopes)})")
        return principal

    check.__name__ = f"require_{scope}_scope"
    return check


ReaderTenant = Annotated[Principal, Depends(require_scope("read"))]
WriterTenant = Annotated[Principal, Depends(require_scope("write"))]
AdminTenant = Annotated[Principal, Depends(require_scope("admin"))]
