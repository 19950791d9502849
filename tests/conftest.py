"""Shared helpers: write small canonical landing batches by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    d = tmp_path / "landing"
    d.mkdir()
    return d


@pytest.fixture
def batch(landing: Path) -> Callable[..., Path]:
    """batch("b1", "opportunities", header, *rows) writes <landing>/b1/opportunities.csv."""

    def _write(batch_id: str, entity: str, header: str, *rows: str) -> Path:
        return write_csv(landing / batch_id / f"{entity}.csv", header, *rows)

    return _write


@pytest.fixture
def http():
    """A real HTTP server on 127.0.0.1 that records requests (webhook, Slack Web API)."""
    from local_servers import HttpServer

    server = HttpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_factory():
    """smtp_factory(auth=None | (user, password), exclude=()) starts an SMTP server."""
    from local_servers import SmtpServer

    started = []

    def start(auth=None, exclude=()):
        started.append(SmtpServer(auth, exclude).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp(smtp_factory):
    return smtp_factory()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session (tests/local_postgres.py)."""
    from local_postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server, request) -> str:
    """A fresh database owned by a role with a password; its connection string."""
    import re

    return postgres_server.fresh_database(
        "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    )
