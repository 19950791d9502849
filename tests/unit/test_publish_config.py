"""`publish: postgres:` in the config: defaults, and the mistakes a user can make (exit 2,
the connection string never echoed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.config import PostgresPublishSettings, PublishSettings, load_config
from ingestion.errors import ConfigError
from orchestration.cli import main


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "crm.yaml"
    p.write_text(text)
    return p


def test_postgres_is_off_unless_configured_and_has_defaults(tmp_path):
    assert load_config(None).publish == PublishSettings(postgres=None)
    assert load_config(write(tmp_path, "publish: {}\n")).publish.postgres is None
    assert load_config(write(tmp_path, "publish: {postgres: {}}\n")).publish.postgres == (
        PostgresPublishSettings(env="CRM_POSTGRES_URL", schema="marts")
    )
    cfg = load_config(write(tmp_path, "publish:\n  postgres: {env: BI_DB_URL, schema: crm}\n"))
    assert cfg.publish.postgres == PostgresPublishSettings(env="BI_DB_URL", schema="crm")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("publish: [postgres]\n", "publish must be a mapping."),
        ("publish: {bigquery: {}}\n", "unknown publish setting(s) bigquery; known: postgres."),
        (
            "publish: {postgres: marts}\n",
            "publish.postgres must be a mapping, e.g. postgres: {env: CRM_POSTGRES_URL, "
            "schema: marts}.",
        ),
        (
            "publish: {postgres: {env: X, table: t}}\n",
            "unknown publish.postgres setting(s) table; known: env, schema.",
        ),
        (
            "publish: {postgres: {env: 'crm url'}}\n",
            "publish.postgres.env names the environment variable that holds the connection "
            "string (e.g. env: CRM_POSTGRES_URL), but is 'crm url'.",
        ),
        (
            "publish: {postgres: {schema: Marts}}\n",
            "publish.postgres.schema 'Marts' must be a lower-case PostgreSQL name (letters, "
            "digits, _; at most 63; not starting with pg_), e.g. marts.",
        ),
        (
            "publish: {postgres: {schema: pg_marts}}\n",
            "publish.postgres.schema 'pg_marts' must be a lower-case PostgreSQL name",
        ),
    ],
)
def test_mistakes_are_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    "text",
    [
        "publish: {postgres: {url: 'postgresql://bob:T0ps3cret@db/bi'}}\n",
        "publish: {postgres: {env: 'postgresql://bob:T0ps3cret@db/bi'}}\n",
        "publish: {postgres: {env: CRM_URL, password: T0ps3cret}}\n",
    ],
)
def test_a_connection_string_in_the_file_is_refused_without_echoing_it(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert "T0ps3cret" not in str(err.value)
    assert "environment variable" in str(err.value)


def test_the_command_line_refuses_an_unset_connection_string_before_running(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("BI_DB_URL", raising=False)
    config = write(tmp_path, "publish: {postgres: {env: BI_DB_URL}}\n")
    warehouse = tmp_path / "w.duckdb"
    code = main(["run", "--config", str(config), "--warehouse", str(warehouse)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "error: publish.postgres in the config reads the PostgreSQL connection string from "
        "the environment variable BI_DB_URL, which is not set. Set it (e.g. "
        "BI_DB_URL=postgresql://user:password@host:5432/database) or remove publish.postgres "
        "from the config.\n"
    )
    assert not warehouse.exists()  # refused before anything ran

    monkeypatch.setenv("BI_DB_URL", "postgres//bob:T0ps3cret@db")
    assert main(["run", "--config", str(config), "--warehouse", str(warehouse)]) == 2
    err = capsys.readouterr().err
    assert "BI_DB_URL does not hold a PostgreSQL connection string" in err
    assert "T0ps3cret" not in err and not warehouse.exists()
