"""The get, patch and delete routes of one item (a schedule, a workflow), declared once.

Each route keeps the name, the path parameter and the description it would have written out by
hand (``get_schedule`` with ``schedule_id``, ...), so the OpenAPI document names them the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.api.deps import EngineDep
from keeperhub_scheduler.api.errors import responses


@dataclass(frozen=True)
class Item:
    """One kind of item and the management operations on it."""

    noun: str  # "schedule": the routes are get_schedule, update_schedule, delete_schedule
    id_type: Any  # the path parameter's annotated type, e.g. ``ScheduleId``
    model: type[BaseModel]  # what get and patch answer
    patch_model: type[BaseModel]
    get: Callable[[AsyncEngine, str], Awaitable[BaseModel]]
    update: Callable[[AsyncEngine, str, Any], Awaitable[BaseModel]]
    delete: Callable[[AsyncEngine, str], Awaitable[None]]


def add_item_routes(router: APIRouter, item: Item, docs: dict[str, str | None]) -> None:
    """``GET``, ``PATCH`` and ``DELETE /{<noun>_id}`` on ``router``; ``docs`` describes each
    (by "get", "update" and "delete")."""
    id_name = f"{item.noun}_id"
    path = f"/{{{id_name}}}"

    async def get(engine: AsyncEngine, **ids: str) -> BaseModel:
        return await item.get(engine, ids[id_name])

    async def update(engine: AsyncEngine, patch: BaseModel, **ids: str) -> BaseModel:
        return await item.update(engine, ids[id_name], patch)

    async def delete(engine: AsyncEngine, **ids: str) -> Response:
        await item.delete(engine, ids[id_name])
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    def endpoint(function: Any, verb: str, returns: Any, *body: tuple[str, Any]) -> Any:
        parameters = [("engine", EngineDep), (id_name, item.id_type), *body]
        function.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind)
             for name, kind in parameters],
            return_annotation=returns,
        )  # fmt: skip
        function.__name__ = f"{verb}_{item.noun}"
        function.__doc__ = docs.get(verb)
        return function

    found = responses(404, 422)
    router.add_api_route(
        path, endpoint(get, "get", item.model), methods=["GET"], response_model=item.model,
        responses=found,
    )  # fmt: skip
    router.add_api_route(
        path, endpoint(update, "update", item.model, ("patch", item.patch_model)),
        methods=["PATCH"], response_model=item.model, responses=found,
    )  # fmt: skip
    router.add_api_route(
        path, endpoint(delete, "delete", Response), methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=found,
    )  # fmt: skip
