"""What every process command does first: read the settings and send logs to stderr; and what every
command's one-line error goes through: the environment's secrets scrubbed from it."""

from __future__ import annotations

import os
from typing import Any, get_args

from pydantic import SecretStr

from keeperhub_scheduler.config import Settings, load_settings
from keeperhub_scheduler.db.urls import password_parts
from keeperhub_scheduler.telemetry import logs


def _secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_secret(arg) for arg in get_args(annotation))


# The settings that hold secrets, and the CLI's own token for --api-url.
SECRET_VARIABLES = (
    *(name.upper() for name, field in Settings.model_fields.items() if _secret(field.annotation)),
    "SCHEDULER_API_TOKEN",
)


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


def scrubbed(text: str) -> str:
    """``text`` with every secret of the environment masked: for the one line a command prints
    when it fails, which may come before (or without) the settings."""
    values = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    tokens = os.environ.get("SCHEDULER_API_TOKENS", "").split(",")
    secrets = [*values, *(token.strip() for token in tokens)]
    secrets += password_parts(os.environ.get("DATABASE_URL", ""))
    return logs.Scrubber(secret for secret in secrets if secret)(text)
