"""A throw-away PostgreSQL cluster: ``initdb`` + ``pg_ctl`` on 127.0.0.1, always stopped.

Debian's ``postgresql`` package puts the server binaries in ``/usr/lib/postgresql/<v>/bin``
(not on PATH). PostgreSQL refuses to run as root, so under root the cluster belongs to the
``postgres`` user (``runuser``) and lives in a temporary folder that user owns; otherwise it
runs as the current user. Roles log in over TCP with a password (SCRAM) that is never put in
a URL: clients read it from a libpq password file (``PGPASSFILE``), as docs/scaling_out.md
tells users to do.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from tests.serving import free_port

SUPERUSER = "tle_admin"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed here (or there is no user it may run as)."""


@dataclass(frozen=True)
class Postgres:
    """A running cluster: where it listens, its roles (one database each) and their passfile."""

    host: str
    port: int
    passfile: Path
    log: Path
    passwords: dict[str, str] = field(repr=False)

    def url(self, role: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of ``role``'s database, without a password (libpq reads passfile)."""
        return f"{driver}://{role}@{self.host}:{self.port}/{role}"


def server_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with initdb and pg_ctl, else them on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    )


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a server binary as an allowed user, and that user."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        owner = None
    if runuser is None or owner is None:
        raise PostgresUnavailable(
            "running as root, and PostgreSQL refuses root: no 'postgres' user or no runuser"
        )
    return [runuser, "-u", "postgres", "--"], owner


def _check(command: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
        raise RuntimeError(
            f"{what} failed ({proc.returncode}): {' '.join(command)}\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}\n--- server log ---\n{tail}"
        )


@contextlib.contextmanager
def throwaway_cluster(roles: Sequence[str], passfile_dir: Path) -> Iterator[Postgres]:
    """A new cluster with one login role and one database (same name) per ``roles``.

    Listens on a free port of 127.0.0.1 only (``listen_addresses``); its Unix socket is in
    the cluster's temporary folder. Stopped (``pg_ctl stop -m immediate``) and deleted on
    exit, however the block ends. Durability is switched off (``fsync=off``): it is thrown
    away anyway, and the tests' commits are faster.
    """
    bindir = server_binaries()
    prefix, owner = _run_as()
    root = Path(tempfile.mkdtemp(prefix="tle-postgres-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if owner is not None:
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        pwfile = root / "superuser.pw"
        pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        _check(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--encoding=UTF8", "--no-sync"],
            "initdb",
        )  # fmt: skip
        pwfile.unlink()
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
        started = True
        _check(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
             "-w", "-t", str(START_TIMEOUT_S), "start"],
            "pg_ctl start",
            log,
        )  # fmt: skip
        passwords = {role: secrets.token_urlsafe(24) for role in roles}
        # The superuser logs in over the socket (trust); roles only over TCP with a password.
        admin = psycopg2.connect(host=str(sockets), port=port, user=SUPERUSER, dbname="postgres")
        admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with admin.cursor() as cursor:
                for role, password in passwords.items():
                    cursor.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
                    cursor.execute(f'CREATE DATABASE "{role}" OWNER "{role}"')
        finally:
            admin.close()
        passfile = passfile_dir / "pgpass"
        passfile.write_text(
            "".join(f"127.0.0.1:{port}:{r}:{r}:{pw}\n" for r, pw in passwords.items())
        )
        passfile.chmod(0o600)  # libpq ignores a passfile that others can read
        yield Postgres("127.0.0.1", port, passfile, log, passwords)
    finally:
        if started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _check(
                    [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                     "-w", "stop"],
                    "pg_ctl stop",
                )  # fmt: skip
            _kill_leftover(data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_leftover(data: Path) -> None:
    """SIGKILL the postmaster if ``pg_ctl stop`` left it running (its pid is in the pidfile)."""
    pidfile = data / "postmaster.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 9)
