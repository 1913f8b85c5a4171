"""The management REST API (FastAPI): see ``app.create_app``."""

from keeperhub_scheduler.api.app import create_app

__all__ = ["create_app"]
