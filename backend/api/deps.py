"""Request dependencies as Annotated aliases."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.session import get_sessionmaker
from backend.errors import UnauthorizedError


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """The request owns the session: it commits when the endpoint returns without error."""
    session = get_sessionmaker(settings.sqlalchemy_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def get_celery_dep(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


CeleryDep = Annotated[Celery, Depends(get_celery_dep)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Mutating endpoints need the key when RECFLOW_API_KEY is set."""
    if settings.api_key is None:
        return
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:]
    expected = settings.api_key.get_secret_value()
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError(
            "this endpoint needs the API key: send it as the X-API-Key header "
            "or as 'Authorization: Bearer <key>'"
        )


ApiKeyDep = Depends(require_api_key)
