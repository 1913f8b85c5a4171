"""``keeperhub-scheduler``, the one command: process commands in ``app``, the operator's in
``manage`` (schedules, workflows, status, api, prune), over ``backend`` (database or REST API)."""

from keeperhub_scheduler.cli.app import app, main

__all__ = ["app", "main"]
