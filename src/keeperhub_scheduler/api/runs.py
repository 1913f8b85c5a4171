"""``/v1/runs``: the run history across schedules, and one run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from keeperhub_scheduler import management
from keeperhub_scheduler.api.deps import EngineDep, RunId
from keeperhub_scheduler.api.errors import responses
from keeperhub_scheduler.management.models import Run, RunPage, RunQuery

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("", response_model=RunPage, responses=responses(422))
async def list_runs(engine: EngineDep, query: Annotated[RunQuery, Query()]) -> RunPage:
    """All runs, newest occurrence first; filter by status, kind, workflow and time."""
    return await management.list_runs(engine, query)


@router.get("/{run_id}", response_model=Run, responses=responses(404, 422))
async def get_run(engine: EngineDep, run_id: RunId) -> Run:
    """One run: its status, attempts, timestamps, HTTP status, error or reason for a skip."""
    return await management.get_run(engine, run_id)
