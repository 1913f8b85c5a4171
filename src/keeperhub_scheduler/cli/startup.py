"""What every process command does first: read the settings and send logs to stderr."""

from __future__ import annotations

from pydantic import SecretStr

from keeperhub_scheduler.config import Settings, load_settings
from keeperhub_scheduler.db.urls import password_parts
from keeperhub_scheduler.telemetry import logs


def settings_and_logging(
    *, level: str | None = None, fmt: str | None = None, **overrides: object
) -> Settings:
    """Read the settings and send logs to stderr, with every secret value scrubbed from them."""
    settings = load_settings(**overrides)
    secrets = tuple(
        value.get_secret_value()
        for value in settings.model_dump().values()
        if isinstance(value, SecretStr)
    )
    secrets += settings.api_tokens
    secrets += password_parts(settings.database_url.get_secret_value())
    logs.configure(
        level or settings.scheduler_log_level, fmt or settings.scheduler_log_format, secrets
    )
    return settings
