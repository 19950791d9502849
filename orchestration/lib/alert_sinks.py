"""Where alerts are delivered besides the alert log: a webhook, Slack, e-mail.

Each sink is on when its environment variables are set (they hold secrets, so they never
live in the config file). A sink half configured is a configuration error that names the
missing variable, never its value. Error messages from a sink never contain a secret:
``secret_values`` lists what the caller redacts, and the sinks build their own messages
instead of passing on their clients' (which may quote a URL).
"""

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

from ingestion.errors import ConfigError
from orchestration.lib.alert import Alert

WEBHOOK_URL = "CRM_ALERT_WEBHOOK_URL"
SLACK_VARS = ("CRM_SLACK_TOKEN", "CRM_SLACK_CHANNEL", "CRM_SLACK_API_URL")
SMTP_VARS = (
    "CRM_SMTP_HOST",
    "CRM_SMTP_PORT",
    "CRM_SMTP_USER",
    "CRM_SMTP_PASSWORD",
    "CRM_SMTP_FROM",
    "CRM_SMTP_TO",
    "CRM_SMTP_SECURITY",
)
SMTP_SECURITY = ("starttls", "ssl", "none")


class DeliveryError(Exception):
    """A delivery that did not go through; ``retryable`` when trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    name: str

    def describe(self) -> str: ...

    def send(self, alert: Alert, timeout: float) -> None: ...


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class WebhookSink:
    """A JSON POST: {"text": ..., "alert": {...}}; any 2xx answer counts as delivered."""

    url: str
    name: str = "webhook"

    def describe(self) -> str:
        parts = urlsplit(self.url)
        # The path of a webhook URL is usually its secret (Slack, Teams, Zapier ...).
        return f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def send(self, alert: Alert, timeout: float) -> None:
        body = json.dumps({"text": alert.text(), "alert": alert.as_dict()}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "crm-pipeline"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(
                f"the endpoint answered HTTP {exc.code}", retryable=_retryable_status(exc.code)
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"could not reach the endpoint ({reason})") from None


@dataclass(frozen=True)
class SlackSink:
    """A message to one channel through Slack's Web API (chat.postMessage)."""

    token: str
    channel: str
    api_url: str | None = None
    name: str = "slack"

    def describe(self) -> str:
        return f"Slack channel {self.channel}"

    def send(self, alert: Alert, timeout: float) -> None:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError, SlackClientError

        kwargs = {"base_url": self.api_url} if self.api_url else {}
        # Retries are ours (with backoff and logging), not the client's.
        client = WebClient(token=self.token, timeout=timeout, retry_handlers=[], **kwargs)
        try:
            client.chat_postMessage(channel=self.channel, text=alert.text(), mrkdwn=False)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            raise DeliveryError(
                f"Slack answered HTTP {status}" + (f" ({error})" if error else ""),
                retryable=_retryable_status(status),
            ) from None
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"could not reach Slack ({type(exc).__name__})") from None


@dataclass(frozen=True)
class EmailSink:
    """A plain-text e-mail over SMTP (STARTTLS, SSL or plain), with login when a user is set."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    security: str = "starttls"
    user: str | None = None
    password: str | None = None
    name: str = "email"

    def describe(self) -> str:
        return f"e-mail to {', '.join(self.recipients)} via {self.host}:{self.port}"

    def send(self, alert: Alert, timeout: float) -> None:
        message = EmailMessage()
        message["Subject"] = f"[crm-pipeline] {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(
                f"the SMTP server refused the login of {self.user}", retryable=False
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"the SMTP server refused the recipients {', '.join(exc.recipients)}",
                retryable=False,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"the SMTP server answered {exc.smtp_code}", retryable=exc.smtp_code < 500
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP delivery failed ({type(exc).__name__}: {exc})") from None


def sinks_from_env(env: Mapping[str, str]) -> list[Sink]:
    """The sinks the environment configures; ConfigError names a missing or bad variable."""
    sinks, problems = configured_sinks(env)
    if problems:
        raise ConfigError(" ".join(problems))
    return sinks


def configured_sinks(env: Mapping[str, str]) -> tuple[list[Sink], list[str]]:
    """The sinks set up correctly, and what is wrong with the others: a half-configured
    sink must not silence the ones that work."""
    sinks: list[Sink] = []
    problems: list[str] = []
    for build in (_webhook_sink, _slack_sink, _email_sink):
        try:
            sink = build(env)
        except ConfigError as exc:
            problems.append(str(exc))
        else:
            if sink is not None:
                sinks.append(sink)
    return sinks, problems


def _webhook_sink(env: Mapping[str, str]) -> WebhookSink | None:
    url = env.get(WEBHOOK_URL, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{WEBHOOK_URL} is not an http(s) URL; set it to the full URL the alerts "
            f"are POSTed to (https://host/path)."
        )
    return WebhookSink(url)


def _slack_sink(env: Mapping[str, str]) -> SlackSink | None:
    token, channel, api_url = (env.get(v, "").strip() for v in SLACK_VARS)
    if not (token or channel):
        return None
    missing = [v for v, value in zip(SLACK_VARS[:2], (token, channel), strict=True) if not value]
    if missing:
        raise ConfigError(
            f"Slack alerts need both CRM_SLACK_TOKEN and CRM_SLACK_CHANNEL; "
            f"{' and '.join(missing)} is not set."
        )
    if api_url and not api_url.endswith("/"):
        api_url += "/"
    return SlackSink(token, channel, api_url or None)


def _email_sink(env: Mapping[str, str]) -> EmailSink | None:
    smtp = {v: env.get(v, "").strip() for v in SMTP_VARS}
    if not any(smtp.values()):
        return None
    missing = [v for v in ("CRM_SMTP_HOST", "CRM_SMTP_FROM", "CRM_SMTP_TO") if not smtp[v]]
    if smtp["CRM_SMTP_USER"] and not smtp["CRM_SMTP_PASSWORD"]:
        missing.append("CRM_SMTP_PASSWORD")
    if missing:
        raise ConfigError(
            f"E-mail alerts need CRM_SMTP_HOST, CRM_SMTP_FROM and CRM_SMTP_TO (and "
            f"CRM_SMTP_PASSWORD with CRM_SMTP_USER); not set: {', '.join(missing)}."
        )
    security = (smtp["CRM_SMTP_SECURITY"] or "starttls").lower()
    if security not in SMTP_SECURITY:
        raise ConfigError(
            f"CRM_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}, "
            f"not {smtp['CRM_SMTP_SECURITY']!r}."
        )
    port_text = smtp["CRM_SMTP_PORT"] or ("465" if security == "ssl" else "587")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"CRM_SMTP_PORT must be a port number, not {port_text!r}.")
    recipients = tuple(r.strip() for r in smtp["CRM_SMTP_TO"].split(",") if r.strip())
    return EmailSink(
        host=smtp["CRM_SMTP_HOST"],
        port=int(port_text),
        sender=smtp["CRM_SMTP_FROM"],
        recipients=recipients,
        security=security,
        user=smtp["CRM_SMTP_USER"] or None,
        password=smtp["CRM_SMTP_PASSWORD"] or None,
    )


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values that must never appear in a log, an alert or an error, longest first."""
    secrets = [env.get("CRM_SLACK_TOKEN", ""), env.get("CRM_SMTP_PASSWORD", "")]
    url = env.get(WEBHOOK_URL, "").strip()
    if url:
        parts = urlsplit(url)
        secrets += [url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.query]
    # Very short values would redact ordinary words; a one-character path is no secret.
    return sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
