"""Each test gets a database of its own on the real server, made like the
real one (`botai db migrate`), dropped afterwards; the five objects point
at it through the environment, as the original platform configured them."""

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

import botai

ROOT = Path(__file__).resolve().parents[3]
BOTAI = ROOT / "target" / "release" / "botai"


def admin_conninfo(dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(
        host=os.environ.get("PGHOST", "/var/run/postgresql"),
        port=os.environ.get("PGPORT", "5555"),
        user=os.environ.get("PGUSER") or None,
        dbname=dbname,
    )


@pytest.fixture
def database(monkeypatch):
    name = "botai_py_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET botai.monitor_interval = '1'")
    # Dropped however the test ends, a failed migration included: a database
    # left behind keeps a botai monitor, and the server's worker slots are few.
    try:
        env = dict(os.environ, PGDATABASE=name)
        out = subprocess.run([str(BOTAI), "db", "migrate"], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        monkeypatch.setenv("PGDATABASE", name)
        monkeypatch.setenv("PGHOST", os.environ.get("PGHOST", "/var/run/postgresql"))
        monkeypatch.setenv("PGPORT", os.environ.get("PGPORT", "5555"))
        botai.connect(None)
        yield name
        botai.connect(None)
    finally:
        with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sql(database):
    """A superuser session on the test's database, for checking what was written."""
    with psycopg.connect(admin_conninfo(database), autocommit=True) as conn:
        yield conn
