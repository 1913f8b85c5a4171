"""``keeperhub-scheduler workflows ...``: minimal workflows for standalone use.

On KeeperHub's own database KeeperHub creates workflows; these commands then answer a conflict
(exit 4) for ``create``, and enable, disable and delete work on KeeperHub's rows.
"""

from __future__ import annotations

from typing import Annotated

import typer

from keeperhub_scheduler.cli import render
from keeperhub_scheduler.cli.common import ApiUrl, JsonFlag, Target, Token, build, run, show
from keeperhub_scheduler.management.models import WorkflowCreate, WorkflowUpdate

workflows_app = typer.Typer(help="Workflows, for standalone use.", no_args_is_help=True)


@workflows_app.command("create")
def workflow_create(
    workflow_id: str,
    name: Annotated[str, typer.Option(help="A name for people.")],
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    as_json: JsonFlag = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Create a workflow (standalone use; on KeeperHub's database, KeeperHub makes them)."""
    spec = build(WorkflowCreate, id=workflow_id, name=name, enabled=not disabled)
    found = run(Target(api_url, token), lambda b: b.create_workflow(spec))
    show(as_json, found, lambda d: render.console().print(f"Created workflow {d['id']}."))


def _set_enabled(workflow_id: str, enabled: bool, as_json: bool, target: Target) -> None:
    patch = WorkflowUpdate(enabled=enabled)
    found = run(target, lambda b: b.update_workflow(workflow_id, patch))
    word = "Enabled" if enabled else "Disabled"
    show(as_json, found, lambda d: render.console().print(f"{word} workflow {d['id']}."))


@workflows_app.command("enable")
def workflow_enable(
    workflow_id: str, as_json: JsonFlag = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """Enable a workflow (its schedule fires again)."""
    _set_enabled(workflow_id, True, as_json, Target(api_url, token))


@workflows_app.command("disable")
def workflow_disable(
    workflow_id: str, as_json: JsonFlag = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """Disable a workflow (its occurrences are recorded as skipped)."""
    _set_enabled(workflow_id, False, as_json, Target(api_url, token))


@workflows_app.command("delete")
def workflow_delete(
    workflow_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Delete a workflow with its schedule and run history."""
    if not yes:
        typer.confirm(f"Delete workflow {workflow_id}, its schedule and history?", abort=True)
    run(Target(api_url, token), lambda b: b.delete_workflow(workflow_id))
    render.console().print(f"Deleted workflow {workflow_id}.")
