"""Alert delivery against real servers: a local HTTP server (webhook and Slack Web API)
and a local SMTP server. Nothing is mocked; the sinks use their real clients."""

from __future__ import annotations

import email
import email.policy
import json
import logging

import pytest
from local_servers import free_port

from ingestion.config import AlertSettings, PipelineConfig
from ingestion.errors import ConfigError
from orchestration.lib.alert_sinks import (
    EmailSink,
    SlackSink,
    WebhookSink,
    secret_values,
    sinks_from_env,
)
from orchestration.lib.alerts import Alert, send_alert

WEBHOOK_SECRET_PATH = "/hooks/T000/B000/XXXXSECRETXXXX"
SLACK_TOKEN = "xoxb-SECRET-TOKEN-123"
SMTP_PASSWORD = "hunter2-SECRET"
SMTP_USER = "alerts-user"


@pytest.fixture
def smtp_auth(smtp_factory):
    return smtp_factory(auth=(SMTP_USER, SMTP_PASSWORD))


# --------------------------------------------------------------------------- helpers


class Collect:
    """A stand-in for Dagster's context.log: keeps every message it is given."""

    def __init__(self):
        self.infos = []
        self.warnings = []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)

    @property
    def all(self):
        return self.infos + self.warnings


@pytest.fixture
def log():
    return Collect()


def config(tmp_path, **settings):
    base = {"timeout_seconds": 2, "backoff_seconds": 0.01}
    return PipelineConfig(
        warehouse=tmp_path / "w.duckdb", alerts=AlertSettings(**{**base, **settings})
    )


@pytest.fixture
def cfg(tmp_path):
    return config(tmp_path)


def make_alert(**changes):
    fields = {
        "kind": "check_failed",
        "severity": "error",
        "title": "Opportunities failed the hygiene gate",
        "message": "3 rows have a negative amount.",
        "entity": "opportunities",
        "check": "amount_non_negative",
        "rows": 3,
        "examples": ["opp-1: -5.00", "opp-2: -7.50"],
        "run_id": "run-1",
        "where": "quality.quarantine",
        "at": "2026-01-05T06:00:00+00:00",
    }
    return Alert(**{**fields, **changes})


# Written by hand from Alert.text()'s layout, not computed with it.
EXPECTED_TEXT = (
    "[ERROR] Opportunities failed the hygiene gate\n"
    "\n"
    "3 rows have a negative amount.\n"
    "\n"
    "entity: opportunities · check: amount_non_negative · rows: 3\n"
    "\n"
    "Examples:\n"
    "  - opp-1: -5.00\n"
    "  - opp-2: -7.50\n"
    "\n"
    "Where to look: quality.quarantine\n"
    "Run: run-1"
)


def webhook_env(http, path="/hook"):
    return {"CRM_ALERT_WEBHOOK_URL": http.base + path}


def slack_env(http, channel="#crm-alerts"):
    return {
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SLACK_CHANNEL": channel,
        "CRM_SLACK_API_URL": f"{http.base}/api/",
    }


def smtp_env(server, *, login=False, password=SMTP_PASSWORD):
    env = {
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(server.port),
        "CRM_SMTP_FROM": "pipeline@example.com",
        "CRM_SMTP_TO": "ops@example.com, data@example.com",
        "CRM_SMTP_SECURITY": "none",
    }
    if login:
        env |= {"CRM_SMTP_USER": SMTP_USER, "CRM_SMTP_PASSWORD": password}
    return env


def log_lines(cfg):
    return [json.loads(line) for line in cfg.alert_log.read_text().splitlines()]


def parse_mail(message):
    return email.message_from_bytes(message["content"], policy=email.policy.default)


def mail_text(message):
    # SMTP carries CRLF line ends; the alert's text has LF.
    return parse_mail(message).get_content().replace("\r\n", "\n")


# --------------------------------------------------------------------------- 1. delivery


def test_webhook_gets_the_text_and_the_alert_as_json(cfg, http, log):
    alert = make_alert()
    record = send_alert(cfg, alert, log=log, env=webhook_env(http))

    [request] = http.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert set(request["json"]) == {"text", "alert"}
    assert request["json"]["text"] == EXPECTED_TEXT
    assert request["json"]["alert"] == {
        "kind": "check_failed",
        "severity": "error",
        "title": "Opportunities failed the hygiene gate",
        "message": "3 rows have a negative amount.",
        "entity": "opportunities",
        "check": "amount_non_negative",
        "rows": 3,
        "examples": ["opp-1: -5.00", "opp-2: -7.50"],
        "run_id": "run-1",
        "where": "quality.quarantine",
        "key": alert.dedup_key(),
        "at": "2026-01-05T06:00:00+00:00",
    }
    # The default key: the kind and a hash, not the run or the time.
    assert alert.dedup_key().startswith("check_failed:")
    assert len(alert.dedup_key()) == len("check_failed:") + 16

    assert record["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]
    assert log_lines(cfg) == [record]
    assert log.warnings == []
    # describe() leaves out the path of the URL: it is usually the webhook's secret.
    assert log.infos == [
        f"alert 'Opportunities failed the hygiene gate' delivered to "
        f"webhook http://127.0.0.1:{http.port}"
    ]


def test_slack_gets_channel_text_and_bearer_token(cfg, http, log):
    record = send_alert(cfg, make_alert(), log=log, env=slack_env(http))

    [request] = http.requests
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}"
    # slack_sdk sends chat.postMessage JSON-encoded (api_call(..., json=kwargs)).
    assert request["headers"]["Content-Type"] == "application/json;charset=utf-8"
    assert request["json"] == {"channel": "#crm-alerts", "text": EXPECTED_TEXT, "mrkdwn": False}
    assert record["deliveries"] == [{"sink": "slack", "status": "delivered", "attempts": 1}]
    assert log.infos == [
        "alert 'Opportunities failed the hygiene gate' delivered to Slack channel #crm-alerts"
    ]


def test_email_without_login(cfg, smtp, log):
    record = send_alert(cfg, make_alert(), log=log, env=smtp_env(smtp))

    [message] = smtp.messages
    assert message["from"] == "pipeline@example.com"
    assert message["to"] == ["ops@example.com", "data@example.com"]
    assert message["login"] is None
    mail = parse_mail(message)
    assert mail["Subject"] == "[crm-pipeline] Opportunities failed the hygiene gate"
    assert mail["From"] == "pipeline@example.com"
    assert mail["To"] == "ops@example.com, data@example.com"
    assert mail_text(message) == EXPECTED_TEXT + "\n"
    assert record["deliveries"] == [{"sink": "email", "status": "delivered", "attempts": 1}]


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_email_with_login(cfg, smtp_factory, log, mechanism):
    # The server offers only one mechanism, so each of the two is really exercised.
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    server = smtp_factory(auth=(SMTP_USER, SMTP_PASSWORD), exclude=[other])
    record = send_alert(cfg, make_alert(), log=log, env=smtp_env(server, login=True))

    assert server.logins == [(mechanism, SMTP_USER, SMTP_PASSWORD)]
    [message] = server.messages
    assert message["login"] == SMTP_USER
    assert mail_text(message) == EXPECTED_TEXT + "\n"
    assert record["deliveries"] == [{"sink": "email", "status": "delivered", "attempts": 1}]


def test_every_configured_sink_gets_the_alert_and_the_log_one_line(cfg, http, smtp, log):
    env = webhook_env(http) | slack_env(http) | smtp_env(smtp)
    record = send_alert(cfg, make_alert(), log=log, env=env)

    assert [r["path"] for r in http.requests] == ["/hook", "/api/chat.postMessage"]
    assert http.to("/hook")[0]["json"]["text"] == EXPECTED_TEXT
    assert http.to("/api/chat.postMessage")[0]["json"]["text"] == EXPECTED_TEXT
    assert mail_text(smtp.messages[0]) == EXPECTED_TEXT + "\n"
    assert record["deliveries"] == [
        {"sink": "webhook", "status": "delivered", "attempts": 1},
        {"sink": "slack", "status": "delivered", "attempts": 1},
        {"sink": "email", "status": "delivered", "attempts": 1},
    ]
    assert log_lines(cfg) == [record]
    assert len(log.infos) == 3


def test_no_sink_configured_only_the_alert_log(cfg, log):
    record = send_alert(cfg, make_alert(), log=log, env={})

    assert record["deliveries"] == []
    assert log_lines(cfg) == [record]
    assert record["title"] == "Opportunities failed the hygiene gate"
    assert log.all == []


def test_log_defaults_to_the_module_logger(cfg, http, caplog):
    # Without a log object the messages go to the "crm_pipeline.alerts" logger.
    http.program("/hook", 503)
    with caplog.at_level(logging.INFO, logger="crm_pipeline.alerts"):
        send_alert(cfg, make_alert(), env=webhook_env(http))
    assert [(r.levelname, r.name) for r in caplog.records] == [
        ("WARNING", "crm_pipeline.alerts"),
        ("INFO", "crm_pipeline.alerts"),
    ]


# --------------------------------------------------------------------------- 3. retries


def test_webhook_retried_until_it_answers(cfg, http, log):
    http.program("/hook", 500, 500, 200)
    record = send_alert(cfg, make_alert(), log=log, env=webhook_env(http))

    assert len(http.to("/hook")) == 3
    assert record["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 3}]
    where = f"webhook http://127.0.0.1:{http.port}"
    assert log.warnings == [
        f"alert delivery to {where} failed (try 1 of 3): the endpoint answered HTTP 500; retrying",
        f"alert delivery to {where} failed (try 2 of 3): the endpoint answered HTTP 500; retrying",
    ]
    assert len(log.infos) == 1


def test_webhook_always_failing_gives_up_without_raising(tmp_path, http, log):
    cfg = config(tmp_path, delivery_attempts=3)
    http.program("/hook", 500, 500, 500, 500)
    record = send_alert(cfg, make_alert(), log=log, env=webhook_env(http))

    assert len(http.to("/hook")) == 3
    assert record["deliveries"] == [
        {
            "sink": "webhook",
            "status": "failed",
            "attempts": 3,
            "error": "the endpoint answered HTTP 500",
        }
    ]
    assert log_lines(cfg) == [record]
    assert len(log.warnings) == 3
    # The last try says no more is coming.
    assert log.warnings[-1].endswith("(try 3 of 3): the endpoint answered HTTP 500")
    assert log.infos == []


@pytest.mark.parametrize("status", [429, 408])
def test_webhook_throttled_is_retried(cfg, http, log, status):
    http.program("/hook", status, 200)
    record = send_alert(cfg, make_alert(), log=log, env=webhook_env(http))
    assert record["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 2}]


def test_webhook_404_is_not_retried(cfg, http, log):
    http.program("/hook", 404)
    record = send_alert(cfg, make_alert(), log=log, env=webhook_env(http))

    assert len(http.to("/hook")) == 1
    assert record["deliveries"] == [
        {
            "sink": "webhook",
            "status": "failed",
            "attempts": 1,
            "error": "the endpoint answered HTTP 404",
        }
    ]
    assert len(log.warnings) == 1
    assert not log.warnings[0].endswith("retrying")


def test_nothing_listening_fails_without_raising(cfg, log):
    port = free_port()
    record = send_alert(
        cfg, make_alert(), log=log, env={"CRM_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/h"}
    )

    [delivery] = record["deliveries"]
    # A refused connection may be a restart in progress: retried like a 5xx.
    assert (delivery["sink"], delivery["status"], delivery["attempts"]) == ("webhook", "failed", 3)
    assert delivery["error"].startswith("could not reach the endpoint (")
    assert "refused" in delivery["error"].lower()
    assert len(log.warnings) == 3


def test_slack_api_error_is_not_retried(cfg, http, log):
    http.program("/api/chat.postMessage", (200, {"ok": False, "error": "channel_not_found"}))
    record = send_alert(cfg, make_alert(), log=log, env=slack_env(http))

    assert len(http.requests) == 1
    assert record["deliveries"] == [
        {
            "sink": "slack",
            "status": "failed",
            "attempts": 1,
            "error": "Slack answered HTTP 200 (channel_not_found)",
        }
    ]
    assert log.warnings == [
        "alert delivery to Slack channel #crm-alerts failed (try 1 of 3): "
        "Slack answered HTTP 200 (channel_not_found)"
    ]


def test_slack_server_error_is_retried(cfg, http, log):
    http.program(
        "/api/chat.postMessage",
        (500, {"ok": False, "error": "internal_error"}),
        (503, {"ok": False, "error": "service_unavailable"}),
    )
    record = send_alert(cfg, make_alert(), log=log, env=slack_env(http))

    assert len(http.requests) == 3
    assert record["deliveries"] == [{"sink": "slack", "status": "delivered", "attempts": 3}]
    assert [w.split(": ", 1)[1] for w in log.warnings] == [
        "Slack answered HTTP 500 (internal_error); retrying",
        "Slack answered HTTP 503 (service_unavailable); retrying",
    ]


def test_slack_unreachable_fails_without_raising(cfg, log):
    env = {
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/",
    }
    record = send_alert(cfg, make_alert(), log=log, env=env)

    [delivery] = record["deliveries"]
    assert (delivery["sink"], delivery["status"], delivery["attempts"]) == ("slack", "failed", 3)
    assert delivery["error"].startswith("could not reach Slack (")
    assert len(log.warnings) == 3


def test_slack_with_a_timeout_under_one_second(tmp_path, http, log):
    # alerts.timeout_seconds accepts any non-negative number; 0.5 s is ample locally.
    cfg = config(tmp_path, timeout_seconds=0.5)
    record = send_alert(cfg, make_alert(), log=log, env=slack_env(http))
    assert record["deliveries"] == [{"sink": "slack", "status": "delivered", "attempts": 1}]


def test_email_wrong_password_fails_once(cfg, smtp_auth, log):
    env = smtp_env(smtp_auth, login=True, password="wrong-" + SMTP_PASSWORD)
    record = send_alert(cfg, make_alert(), log=log, env=env)

    assert smtp_auth.messages == []
    # smtplib tries every mechanism the server offers within one login: still one try.
    assert {m for m, _, _ in smtp_auth.logins} <= {"LOGIN", "PLAIN"}
    assert record["deliveries"] == [
        {
            "sink": "email",
            "status": "failed",
            "attempts": 1,
            "error": f"the SMTP server refused the login of {SMTP_USER}",
        }
    ]
    assert len(log.warnings) == 1


def test_email_server_unreachable_fails_without_raising(cfg, log):
    env = {
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(free_port()),
        "CRM_SMTP_FROM": "pipeline@example.com",
        "CRM_SMTP_TO": "ops@example.com",
        "CRM_SMTP_SECURITY": "none",
    }
    record = send_alert(cfg, make_alert(), log=log, env=env)

    [delivery] = record["deliveries"]
    assert (delivery["sink"], delivery["status"], delivery["attempts"]) == ("email", "failed", 3)
    assert delivery["error"].startswith("SMTP delivery failed (ConnectionRefusedError")


# --------------------------------------------------------------------------- 4. dedup


def test_same_failure_is_delivered_once(cfg, http, log):
    env = webhook_env(http)
    first = send_alert(cfg, make_alert(), log=log, env=env)
    # Next tick: another run, another time, but the same failure.
    second = send_alert(
        cfg, make_alert(run_id="run-2", at="2026-01-06T06:00:00+00:00"), log=log, env=env
    )

    assert len(http.requests) == 1
    assert first["key"] == second["key"]
    state = json.loads(cfg.alert_state.read_text())
    assert list(state) == [first["key"]]
    sent_at = state[first["key"]]["webhook"]
    assert second["deliveries"] == [{"sink": "webhook", "status": "repeat", "last_sent": sent_at}]
    # The log still gets every alert.
    assert [line["run_id"] for line in log_lines(cfg)] == ["run-1", "run-2"]


def test_repeat_after_zero_hours_delivers_every_time(tmp_path, http, log):
    cfg = config(tmp_path, repeat_after_hours=0)
    env = webhook_env(http)
    send_alert(cfg, make_alert(), log=log, env=env)
    second = send_alert(cfg, make_alert(run_id="run-2"), log=log, env=env)

    assert len(http.requests) == 2
    assert second["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]


def test_a_different_message_is_a_different_failure(cfg, http, log):
    env = webhook_env(http)
    send_alert(cfg, make_alert(), log=log, env=env)
    second = send_alert(cfg, make_alert(message="5 rows have a negative amount."), env=env)

    assert [r["json"]["alert"]["message"] for r in http.requests] == [
        "3 rows have a negative amount.",
        "5 rows have a negative amount.",
    ]
    assert second["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]


def test_an_explicit_key_makes_alerts_the_same(cfg, http, log):
    env = webhook_env(http)
    send_alert(cfg, make_alert(key="stale:opportunities"), log=log, env=env)
    second = send_alert(cfg, make_alert(key="stale:opportunities", message="older"), env=env)

    assert len(http.requests) == 1
    assert second["key"] == "stale:opportunities"
    assert second["deliveries"][0]["status"] == "repeat"


def test_a_failed_delivery_is_tried_again_next_time(cfg, http, log):
    env = webhook_env(http)
    http.program("/hook", 404)
    first = send_alert(cfg, make_alert(), log=log, env=env)
    assert first["deliveries"][0]["status"] == "failed"
    # A failure is not remembered as sent.
    assert json.loads(cfg.alert_state.read_text()) == {}

    second = send_alert(cfg, make_alert(run_id="run-2"), log=log, env=env)
    assert len(http.requests) == 2
    assert second["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]


def test_dedup_is_per_sink(cfg, http, log):
    env = webhook_env(http) | slack_env(http)
    http.program("/api/chat.postMessage", (200, {"ok": False, "error": "not_in_channel"}))
    first = send_alert(cfg, make_alert(), log=log, env=env)
    assert [(d["sink"], d["status"]) for d in first["deliveries"]] == [
        ("webhook", "delivered"),
        ("slack", "failed"),
    ]

    second = send_alert(cfg, make_alert(run_id="run-2"), log=log, env=env)
    # Only Slack, which missed the first one, gets it now.
    assert [r["path"] for r in http.requests] == [
        "/hook",
        "/api/chat.postMessage",
        "/api/chat.postMessage",
    ]
    assert [(d["sink"], d["status"]) for d in second["deliveries"]] == [
        ("webhook", "repeat"),
        ("slack", "delivered"),
    ]
    assert set(json.loads(cfg.alert_state.read_text())[first["key"]]) == {"webhook", "slack"}


def test_a_damaged_state_file_only_costs_a_repeat(cfg, http, log):
    cfg.alert_state.parent.mkdir(parents=True, exist_ok=True)
    cfg.alert_state.write_text("{not json")
    record = send_alert(cfg, make_alert(), log=log, env=webhook_env(http))

    assert record["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]
    assert list(json.loads(cfg.alert_state.read_text())) == [record["key"]]


# --------------------------------------------------------------------------- 5. secrets

SECRETS = (WEBHOOK_SECRET_PATH, "XXXXSECRETXXXX", SLACK_TOKEN, SMTP_PASSWORD)


def leaky_alert():
    # Someone pasted the secrets into what the alert says; they must come out as ***.
    return make_alert(
        title=f"token {SLACK_TOKEN} rejected",
        message=f"login with {SMTP_PASSWORD} failed; hook {WEBHOOK_SECRET_PATH}",
        examples=[f"password={SMTP_PASSWORD}", f"slack={SLACK_TOKEN}"],
        where=f"see {WEBHOOK_SECRET_PATH}",
    )


def assert_no_secret(*texts, secrets=SECRETS):
    for text in texts:
        for secret in secrets:
            assert secret not in text


def everything_written(cfg, log, http, smtp_server, record):
    smtp_bodies = [m["content"].decode() for m in smtp_server.messages]
    errors = [d.get("error", "") for d in record["deliveries"]]
    state = cfg.alert_state.read_text() if cfg.alert_state.exists() else ""
    return [
        cfg.alert_log.read_text(),
        state,
        *log.all,
        *[r["raw"].decode() for r in http.requests],
        *smtp_bodies,
        *errors,
        json.dumps(record),
    ]


def test_secrets_are_redacted_when_delivered(cfg, http, smtp_auth, log):
    env = webhook_env(http, WEBHOOK_SECRET_PATH) | slack_env(http) | smtp_env(smtp_auth, login=True)
    record = send_alert(cfg, leaky_alert(), log=log, env=env)

    assert [d["status"] for d in record["deliveries"]] == ["delivered"] * 3
    assert_no_secret(*everything_written(cfg, log, http, smtp_auth, record))
    # Redacted, not dropped: the reader still sees where something was.
    assert record["title"] == "token *** rejected"
    assert record["message"] == "login with *** failed; hook ***"
    assert record["examples"] == ["password=***", "slack=***"]
    assert record["where"] == "see ***"
    assert http.to("/api/chat.postMessage")[0]["json"]["text"].startswith(
        "[ERROR] token *** rejected\n\nlogin with *** failed; hook ***\n"
    )
    assert "  - password=***" in mail_text(smtp_auth.messages[0])


def test_secrets_are_redacted_when_delivery_fails(cfg, http, smtp_factory, log):
    # The server wants another password, so the one in the environment is refused.
    smtp_server = smtp_factory(auth=(SMTP_USER, "another-password"))
    env = webhook_env(http, WEBHOOK_SECRET_PATH) | slack_env(http)
    env |= smtp_env(smtp_server, login=True)
    http.program(WEBHOOK_SECRET_PATH, 500, 500, 500)
    http.program("/api/chat.postMessage", (200, {"ok": False, "error": "invalid_auth"}))
    record = send_alert(cfg, leaky_alert(), log=log, env=env)

    assert [(d["sink"], d["status"], d["attempts"]) for d in record["deliveries"]] == [
        ("webhook", "failed", 3),
        ("slack", "failed", 1),
        ("email", "failed", 1),
    ]
    assert smtp_server.messages == []
    assert len(log.warnings) == 5
    assert_no_secret(*everything_written(cfg, log, http, smtp_server, record))


def test_secrets_are_redacted_when_nothing_listens(cfg, log):
    env = {
        "CRM_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}{WEBHOOK_SECRET_PATH}",
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/",
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(free_port()),
        "CRM_SMTP_USER": SMTP_USER,
        "CRM_SMTP_PASSWORD": SMTP_PASSWORD,
        "CRM_SMTP_FROM": "pipeline@example.com",
        "CRM_SMTP_TO": "ops@example.com",
        "CRM_SMTP_SECURITY": "none",
    }
    record = send_alert(cfg, leaky_alert(), log=log, env=env)

    assert [d["status"] for d in record["deliveries"]] == ["failed"] * 3
    assert_no_secret(
        cfg.alert_log.read_text(), cfg.alert_state.read_text(), *log.all, json.dumps(record)
    )


def test_secret_values():
    env = {
        "CRM_ALERT_WEBHOOK_URL": "https://hooks.example.com/T0/B0/abcdEFGH?sig=s3cr3tsig",
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SMTP_PASSWORD": "abc",  # too short to redact without mangling ordinary words
    }
    assert secret_values(env) == [
        "https://hooks.example.com/T0/B0/abcdEFGH?sig=s3cr3tsig",
        "/T0/B0/abcdEFGH?sig=s3cr3tsig",
        SLACK_TOKEN,
        "sig=s3cr3tsig",
    ]


# --------------------------------------------------------------------------- 6. config


def test_sinks_from_a_complete_environment():
    env = {
        "CRM_ALERT_WEBHOOK_URL": " https://hooks.example.com/x ",
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": "http://127.0.0.1:9/api",
        "CRM_SMTP_HOST": "smtp.example.com",
        "CRM_SMTP_FROM": "pipeline@example.com",
        "CRM_SMTP_TO": "ops@example.com, ,data@example.com",
        "CRM_SMTP_USER": SMTP_USER,
        "CRM_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    assert sinks_from_env(env) == [
        WebhookSink("https://hooks.example.com/x"),
        # The API URL gets the trailing slash slack_sdk joins method names onto.
        SlackSink(SLACK_TOKEN, "#crm-alerts", "http://127.0.0.1:9/api/"),
        EmailSink(
            host="smtp.example.com",
            port=587,  # STARTTLS is the default, on its port
            sender="pipeline@example.com",
            recipients=("ops@example.com", "data@example.com"),
            security="starttls",
            user=SMTP_USER,
            password=SMTP_PASSWORD,
        ),
    ]
    ssl_sink = sinks_from_env(
        {"CRM_SMTP_HOST": "h", "CRM_SMTP_FROM": "f@x", "CRM_SMTP_TO": "t@x"}
        | {"CRM_SMTP_SECURITY": "SSL"}
    )[0]
    assert (ssl_sink.security, ssl_sink.port) == ("ssl", 465)


SMTP_BASE = {"CRM_SMTP_HOST": "smtp.example.com", "CRM_SMTP_FROM": "p@example.com"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"CRM_SLACK_TOKEN": SLACK_TOKEN},
            "Slack alerts need both CRM_SLACK_TOKEN and CRM_SLACK_CHANNEL; "
            "CRM_SLACK_CHANNEL is not set.",
            id="slack-token-without-channel",
        ),
        pytest.param(
            {"CRM_SLACK_CHANNEL": "#crm-alerts"},
            "Slack alerts need both CRM_SLACK_TOKEN and CRM_SLACK_CHANNEL; "
            "CRM_SLACK_TOKEN is not set.",
            id="slack-channel-without-token",
        ),
        pytest.param(
            {"CRM_SMTP_HOST": "smtp.example.com", "CRM_SMTP_PASSWORD": SMTP_PASSWORD},
            "E-mail alerts need CRM_SMTP_HOST, CRM_SMTP_FROM and CRM_SMTP_TO (and "
            "CRM_SMTP_PASSWORD with CRM_SMTP_USER); not set: CRM_SMTP_FROM, CRM_SMTP_TO.",
            id="smtp-host-without-to",
        ),
        pytest.param(
            SMTP_BASE | {"CRM_SMTP_TO": "ops@example.com", "CRM_SMTP_USER": SMTP_USER},
            "E-mail alerts need CRM_SMTP_HOST, CRM_SMTP_FROM and CRM_SMTP_TO (and "
            "CRM_SMTP_PASSWORD with CRM_SMTP_USER); not set: CRM_SMTP_PASSWORD.",
            id="smtp-user-without-password",
        ),
        pytest.param(
            {"CRM_ALERT_WEBHOOK_URL": "ftp://127.0.0.1/hooks/T000/B000/XXXXSECRETXXXX"},
            "CRM_ALERT_WEBHOOK_URL is not an http(s) URL; set it to the full URL the alerts "
            "are POSTed to (https://host/path).",
            id="webhook-not-http",
        ),
        pytest.param(
            {"CRM_ALERT_WEBHOOK_URL": "hooks.example.com/XXXXSECRETXXXX"},
            "CRM_ALERT_WEBHOOK_URL is not an http(s) URL; set it to the full URL the alerts "
            "are POSTed to (https://host/path).",
            id="webhook-without-scheme",
        ),
        pytest.param(
            SMTP_BASE
            | {"CRM_SMTP_TO": "o@example.com", "CRM_SMTP_PORT": "smtp"}
            | {"CRM_SMTP_USER": SMTP_USER, "CRM_SMTP_PASSWORD": SMTP_PASSWORD},
            "CRM_SMTP_PORT must be a port number, not 'smtp'.",
            id="smtp-port-not-a-number",
        ),
        pytest.param(
            SMTP_BASE | {"CRM_SMTP_TO": "o@example.com", "CRM_SMTP_PORT": "70000"},
            "CRM_SMTP_PORT must be a port number, not '70000'.",
            id="smtp-port-out-of-range",
        ),
        pytest.param(
            SMTP_BASE | {"CRM_SMTP_TO": "o@example.com", "CRM_SMTP_SECURITY": "tls"},
            "CRM_SMTP_SECURITY must be one of starttls, ssl, none, not 'tls'.",
            id="smtp-security-unknown",
        ),
    ],
)
def test_misconfiguration_names_the_variable_not_the_secret(env, expected):
    with pytest.raises(ConfigError) as raised:
        sinks_from_env(env)
    assert str(raised.value) == expected
    assert_no_secret(str(raised.value))


def test_send_alert_with_a_misconfigured_environment(cfg, http, log):
    # The webhook is fine, Slack is half set up: the webhook still gets the alert, the
    # problem is logged and recorded, and send_alert does not raise.
    env = webhook_env(http, WEBHOOK_SECRET_PATH) | {"CRM_SLACK_TOKEN": SLACK_TOKEN}
    record = send_alert(cfg, leaky_alert(), log=log, env=env)

    error = (
        "Slack alerts need both CRM_SLACK_TOKEN and CRM_SLACK_CHANNEL; "
        "CRM_SLACK_CHANNEL is not set."
    )
    assert record["deliveries"] == [
        {"sink": "configuration", "status": "failed", "error": error},
        {"sink": "webhook", "status": "delivered", "attempts": 1},
    ]
    assert log_lines(cfg) == [record]
    assert len(http.requests) == 1
    assert log.warnings == [f"an alert sink is misconfigured and gets no alerts: {error}"]
    # Only what this environment holds is a secret here (no SMTP password is set).
    assert_no_secret(
        cfg.alert_log.read_text(), *log.all, secrets=(WEBHOOK_SECRET_PATH, SLACK_TOKEN)
    )


def test_an_unusable_state_file_only_costs_deduplication(tmp_path, http, log):
    cfg = config(tmp_path)
    cfg.alert_state.parent.mkdir(parents=True, exist_ok=True)
    cfg.alert_state.mkdir()  # a directory where the state file should be: unreadable
    env = webhook_env(http, WEBHOOK_SECRET_PATH)
    record = send_alert(cfg, make_alert(), log=log, env=env)
    assert record["deliveries"] == [{"sink": "webhook", "status": "delivered", "attempts": 1}]
    assert len(http.requests) == 1
    assert any("not deduplicated" in w for w in log.warnings)
