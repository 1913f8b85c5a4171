"""What the routes are given: the engine, the settings, and typed path parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.management.models import ID_PATTERN


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ScheduleId = Annotated[str, Path(pattern=ID_PATTERN, description="The schedule's id")]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="The run's id")]
WorkflowId = Annotated[str, Path(pattern=ID_PATTERN, description="The workflow's id")]
