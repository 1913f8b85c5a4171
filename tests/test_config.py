"""Settings: the spec's variables, our own, and one clear line for a wrong value."""

from __future__ import annotations

import pytest

from keeperhub_scheduler.config import ConfigError, Settings, load_settings

SPEC_VARIABLES = [
    "DATABASE_URL",
    "SQS_QUEUE_URL",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "KEEPERHUB_URL",
    "SCHEDULER_SERVICE_API_KEY",
]


def test_every_spec_variable_is_read() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set(SPEC_VARIABLES) <= fields


def test_the_spec_configmap_values_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {
        "AWS_ENDPOINT_URL": "http://localstack:4566",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SQS_QUEUE_URL": "http://localstack:4566/000000000000/keeperhub-workflow-queue",
        "KEEPERHUB_URL": "http://keeperhub-common:3000",
        "DATABASE_URL": "postgresql://local:local@postgresql:5432/keeperhub",
    }
    for name, value in spec.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.sqs_queue_url == spec["SQS_QUEUE_URL"]
    assert settings.dlq_url == spec["SQS_QUEUE_URL"] + "-dlq"
    assert settings.keeperhub_base_url == "http://keeperhub-common:3000"
    assert not settings.is_sqlite


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_SERVICE_API_KEY", "super-secret-service-key")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:db-password-123@h/db")
    monkeypatch.setenv("SCHEDULER_API_TOKENS", "token-one-0123456789, token-two-0123456789")
    settings = load_settings()
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    for secret in (
        "super-secret-service-key",
        "db-password-123",
        "token-one-0123456789",
        "token-two-0123456789",
    ):
        assert secret not in shown
    assert settings.api_tokens == ("token-one-0123456789", "token-two-0123456789")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SCHEDULER_MAX_ATTEMPTS", "0", "SCHEDULER_MAX_ATTEMPTS: Input should be greater than 0"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: Value error, must start with postgresql://"),
        (
            "SQS_QUEUE_URL",
            "keeperhub-workflow-queue",
            "SQS_QUEUE_URL: Value error, must be an http",
        ),
        ("KEEPERHUB_URL", "not a url", "KEEPERHUB_URL: Input should be a valid URL"),
        ("AWS_REGION", "mars", "AWS_REGION: String should match pattern"),
        ("SCHEDULER_LOG_LEVEL", "LOUD", "SCHEDULER_LOG_LEVEL: Input should be"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_secret_value_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2-secret@host/db")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "hunter2-secret" not in str(raised.value)


def test_the_command_reports_bad_configuration_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from keeperhub_scheduler.cli import main

    monkeypatch.setenv("SCHEDULER_CLAIM_BATCH_SIZE", "-5")
    monkeypatch.setattr("sys.argv", ["keeperhub-scheduler", "dispatcher", "--once"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SCHEDULER_CLAIM_BATCH_SIZE:")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("tokens", "which"),
    [
        ("a", "the token"),
        ("fifteen-chars-x", "the token"),
        ("a-good-token-0123456789,short", "token 2 of 2"),
    ],
)
def test_an_api_token_under_16_characters_is_refused_with_a_way_to_make_one(
    monkeypatch: pytest.MonkeyPatch, tokens: str, which: str
) -> None:
    monkeypatch.setenv("SCHEDULER_API_TOKENS", tokens)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message == (
        f"SCHEDULER_API_TOKENS: Value error, {which} is shorter than 16 characters; make one"
        ' with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    assert "short" not in message.replace("shorter", "")  # the token itself is never shown


def test_a_token_of_16_characters_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_API_TOKENS", " sixteen-chars-ok , another-good-token ")
    assert load_settings().api_tokens == ("sixteen-chars-ok", "another-good-token")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:PW@tail99@127.0.0.1/db",
        "postgresql://scheduler:p@ss@w0rd@db.internal:5432/keeperhub",
    ],
)
def test_a_password_with_a_bare_at_sign_is_refused_with_a_hint_and_without_its_pieces(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: Value error, the password (or user name) holds an")
    assert "percent-encode it, '@' as %40" in message
    for piece in ("PW", "tail99", "p@ss", "w0rd", "ss@w0rd"):
        assert piece not in message


def test_a_percent_encoded_password_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:PW%40tail99@127.0.0.1/db")
    assert load_settings().database == "postgresql://u:PW%40tail99@127.0.0.1/db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://[bad", "DATABASE_URL: Value error, the host is not a host name"),
        ("postgresql://u:p@h:port/db", "DATABASE_URL: Value error, is not a database URL like"),
        ("postgresql", "DATABASE_URL: Value error, is not a database URL like"),
    ],
)
def test_an_unparsable_database_url_is_one_line(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_redrive_that_comes_before_the_last_attempt_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCHEDULER_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("SCHEDULER_MAX_RECEIVE_COUNT", "4")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        "SCHEDULER_MAX_RECEIVE_COUNT (4) must be at least SCHEDULER_MAX_ATTEMPTS (5): SQS would"
        " dead-letter a message before the executor has used its attempts"
    )
    monkeypatch.setenv("SCHEDULER_MAX_RECEIVE_COUNT", "5")
    assert load_settings().scheduler_max_receive_count == 5
