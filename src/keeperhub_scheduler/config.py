"""Settings, read from the environment (the spec's variables plus ``SCHEDULER_*`` ones of ours).

Every variable is documented in the README's configuration table; keep the two in step. Secrets are
``SecretStr`` so that printing or logging a ``Settings`` shows ``**********``. A wrong value stops
the process at start with one line naming the variable (see ``load_settings``), never a traceback.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from keeperhub_scheduler.db.urls import url_problem
from keeperhub_scheduler.errors import SchedulerError

DEFAULT_SQLITE_URL = "sqlite:///keeperhub-scheduler.db"
MIN_TOKEN_CHARACTERS = 16
MAKE_A_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'  # noqa: S105

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class ConfigError(SchedulerError):
    """A setting that is missing or wrong; the message is one line that names the variable."""


class Settings(BaseSettings):
    """All configuration. Field names are the environment variable names, case-insensitive."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- the spec's variables -------------------------------------------------------------
    database_url: SecretStr = Field(
        SecretStr(""),
        description="PostgreSQL (postgresql://user:pass@host:5432/db) or sqlite:///file.db;"
        " required, except by `dev`, which defaults to a SQLite file",
    )
    sqs_queue_url: str | None = Field(None, description="URL of the SQS queue of schedule runs")
    aws_endpoint_url: AnyHttpUrl | None = Field(None, description="LocalStack; unset on AWS")
    aws_region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    keeperhub_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:3000"), description="Base URL of KeeperHub's API"
    )
    scheduler_service_api_key: SecretStr | None = Field(
        None, description="Sent to KeeperHub as X-Service-Key"
    )

    # --- ours: security ---------------------------------------------------------------------
    scheduler_api_tokens: Annotated[SecretStr | None, NoDecode] = Field(
        None, description="Comma-separated bearer tokens accepted by the management API"
    )
    scheduler_signing_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key that signs queue messages"
    )
    scheduler_require_signature: bool | None = Field(
        None, description="Reject unsigned messages; defaults to true when a signing key is set"
    )
    # True by default: it only matters when signatures are not required, which is the setting
    # an operator picks to take the original dispatcher's messages during a migration; false
    # refuses them (unsigned messages of ours are still accepted) once the original is retired.
    scheduler_accept_legacy_messages: bool = Field(
        True,
        description="Accept the original dispatcher's messages (no runId, unsigned), mapped to "
        "their schedule's occurrence; only when SCHEDULER_REQUIRE_SIGNATURE is false",
    )

    # --- ours: queue ------------------------------------------------------------------------
    scheduler_dlq_url: str | None = Field(
        None, description="Dead-letter queue; default <queue>-dlq"
    )
    scheduler_visibility_timeout_seconds: Annotated[int, Field(ge=5, le=43200)] = 30
    scheduler_max_receive_count: PositiveInt = 10

    # --- ours: dispatcher -------------------------------------------------------------------
    scheduler_claim_batch_size: Annotated[int, Field(gt=0, le=10_000)] = 500
    scheduler_misfire_grace_seconds: Annotated[float, Field(ge=0)] = 60.0
    scheduler_max_sleep_seconds: PositiveFloat = 1.0
    scheduler_relay_batch_size: Annotated[int, Field(gt=0, le=10_000)] = 500
    scheduler_relay_concurrency: Annotated[int, Field(gt=0, le=256)] = 16
    scheduler_relay_lease_seconds: PositiveFloat = Field(
        3.0,
        description="How long a dispatcher holds the runs it is sending (renewed every third of "
        "it while it lives); a killed dispatcher's runs are sent by another this soon",
    )
    scheduler_stale_enqueued_seconds: PositiveFloat = 3600.0

    # --- ours: executor ---------------------------------------------------------------------
    scheduler_executor_concurrency: Annotated[int, Field(gt=0, le=1000)] = 50
    scheduler_receive_concurrency: Annotated[int, Field(gt=0, le=32)] = 4
    scheduler_receive_wait_seconds: Annotated[int, Field(ge=0, le=20)] = 20
    scheduler_max_attempts: Annotated[int, Field(gt=0, le=100)] = 5
    scheduler_retry_base_seconds: PositiveFloat = 2.0
    scheduler_retry_max_seconds: PositiveFloat = 300.0
    scheduler_http_connect_timeout_seconds: PositiveFloat = 5.0
    scheduler_http_read_timeout_seconds: PositiveFloat = 30.0
    scheduler_drain_seconds: PositiveFloat = 25.0
    scheduler_handoff_seconds: Annotated[int, Field(ge=1, le=60)] = Field(
        2,
        description="How long a received message stays invisible before its call starts; a "
        "killed executor's runs are taken over this soon",
    )

    # --- ours: service ----------------------------------------------------------------------
    scheduler_db_pool_size: Annotated[int, Field(gt=0, le=100)] = 10
    scheduler_health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    scheduler_api_host: str = "127.0.0.1"
    scheduler_api_port: Annotated[int, Field(ge=0, le=65535)] = 8000
    scheduler_api_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = Field(
        1024 * 1024, description="Largest request body the API reads; larger ones get a 413"
    )
    scheduler_retention_days: PositiveInt = 30
    scheduler_retention_max_runs: PositiveInt = 1000
    scheduler_retention_every_seconds: NonNegativeFloat = 3600.0  # 0: only `prune` prunes
    scheduler_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    scheduler_log_format: Literal["json", "text"] = "json"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not url.startswith(("postgresql", "postgres://", "sqlite")):
            raise ValueError("must start with postgresql:// or sqlite:///")
        if url:
            problem = url_problem(url)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("scheduler_api_tokens")
    @classmethod
    def _strong_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        tokens = [t.strip() for t in (value.get_secret_value() if value else "").split(",")]
        tokens = [t for t in tokens if t]
        for number, token in enumerate(tokens, start=1):
            if len(token) < MIN_TOKEN_CHARACTERS:
                which = f"token {number} of {len(tokens)}" if len(tokens) > 1 else "the token"
                raise ValueError(
                    f"{which} is shorter than {MIN_TOKEN_CHARACTERS} characters;"
                    f" make one with: {MAKE_A_TOKEN}"
                )
        return value

    @field_validator("sqs_queue_url", "scheduler_dlq_url")
    @classmethod
    def _queue_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) SQS queue URL")
        return value or None

    @model_validator(mode="after")
    def _retry_bounds(self) -> Settings:
        if self.scheduler_retry_max_seconds < self.scheduler_retry_base_seconds:
            raise ValueError(
                "SCHEDULER_RETRY_MAX_SECONDS must be at least SCHEDULER_RETRY_BASE_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _redrive_after_attempts(self) -> Settings:
        # Each attempt is a receive (a retry is a redelivery), so with fewer receives SQS's
        # redrive would move a message to the DLQ, without a reason, while its run still has
        # attempts left.
        if self.scheduler_max_receive_count < self.scheduler_max_attempts:
            raise ValueError(
                f"SCHEDULER_MAX_RECEIVE_COUNT ({self.scheduler_max_receive_count}) must be at"
                f" least SCHEDULER_MAX_ATTEMPTS ({self.scheduler_max_attempts}): SQS would"
                " dead-letter a message before the executor has used its attempts"
            )
        return self

    # --- derived values ---------------------------------------------------------------------
    @property
    def database(self) -> str:
        """``DATABASE_URL``, which every command but ``dev`` needs."""
        url = self.database_url.get_secret_value()
        if not url:
            raise ConfigError(
                "DATABASE_URL: required (postgresql://user:password@host:5432/database)"
            )
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")

    @property
    def dlq_url(self) -> str | None:
        """The dead-letter queue: set explicitly, or the main queue's URL with ``-dlq``."""
        if self.scheduler_dlq_url:
            return self.scheduler_dlq_url
        return f"{self.sqs_queue_url}-dlq" if self.sqs_queue_url else None

    @property
    def require_signature(self) -> bool:
        if self.scheduler_require_signature is not None:
            return self.scheduler_require_signature
        return self.scheduler_signing_key is not None

    @property
    def signing_key_bytes(self) -> bytes | None:
        """``SCHEDULER_SIGNING_KEY`` as the HMAC key the messages are signed and checked with."""
        key = self.scheduler_signing_key
        return key.get_secret_value().encode() if key else None

    @property
    def api_tokens(self) -> tuple[str, ...]:
        raw = self.scheduler_api_tokens.get_secret_value() if self.scheduler_api_tokens else ""
        return tuple(token.strip() for token in raw.split(",") if token.strip())

    @property
    def keeperhub_base_url(self) -> str:
        return str(self.keeperhub_url).rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into one ``ConfigError`` line.

    The line names the variable and what is wrong, never its value (it may be a secret).
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]).upper()
        problems = len(error.errors())
        more = f" (and {problems - 1} more)" if problems > 1 else ""
        if not where:  # a rule across settings: its message names them
            raise ConfigError(first["msg"].removeprefix("Value error, ") + more) from None
        raise ConfigError(f"{where}: {first['msg']}{more}") from None


def require(value: str | None, variable: str, purpose: str) -> str:
    """Return a setting a command cannot run without, or stop with a line that says so."""
    if not value:
        raise ConfigError(f"{variable}: required for {purpose}")
    return value
