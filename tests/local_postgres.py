"""A real PostgreSQL server for the publish tests, started from the Debian server binaries
(`make test` installs the postgresql package when they are missing).

initdb refuses to run as root, so under root the cluster belongs to the `postgres` user
(or `nobody`) and every server command runs as that user (runuser). The cluster lives in a
fresh temporary directory, listens on 127.0.0.1 on a free port and on a Unix socket in
that directory, and is removed at stop().
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from local_servers import free_port

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "super-secret-pw-1"


def server_bin_dir() -> Path:
    """The directory of initdb, pg_ctl and postgres: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and Path(found).with_name("pg_ctl").exists():
        return Path(os.path.realpath(found)).parent
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if debian:
        return Path(debian[-1]).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. `make test` installs them "
        "(Debian package postgresql); or install them yourself."
    )


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("Running as root, but neither a postgres nor a nobody user exists.")


class PostgresServer:
    """One throwaway cluster; ``url(user, password, dbname)`` builds connection strings."""

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.port = free_port()
        self.host = "127.0.0.1"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> PostgresServer:
        pwfile = self.root / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._cmd(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        pwfile.unlink()
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            self._cmd(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
            ),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
            capture_output=True,
            text=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD,
            dbname: str = "postgres") -> str:  # fmt: skip
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def fresh_database(self, name: str) -> str:
        """A new database ``name`` owned by a role of its own with a password (dropped
        first if a previous test left it); its connection string."""
        role, password = f"{name}_publisher", f"pw-{name[-12:]}-S3cret"
        self.admin(f"DROP DATABASE IF EXISTS {name}")
        self.admin(f"DROP ROLE IF EXISTS {role}")
        self.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.admin(f"CREATE DATABASE {name} OWNER {role}")
        return self.url(role, password, name)

    def admin(self, sql: str) -> None:
        """Run a statement as the superuser, outside a transaction (CREATE DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(sql)
