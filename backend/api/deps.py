"""Request dependencies as Annotated aliases. API keys are checked by backend/api/auth.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.session import session_scope


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """The request owns the session: it commits when the endpoint returns without error."""
    with session_scope(settings.sqlalchemy_url) as session:
        yield session


# scope="function": the session commits (or rolls back) as soon as the endpoint has returned and
# its answer is built, before the answer is sent, so a client never reads a change that might
# still fail to commit, and a failed commit is answered as an error rather than after a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_celery_dep(request: Request) -> Celery:
    """The app's Celery client (sends job messages; never runs them)."""
    celery: Celery = request.app.state.celery
    return celery


CeleryDep = Annotated[Celery, Depends(get_celery_dep)]
