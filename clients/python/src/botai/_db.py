"""Connections: an async pool for the stateless calls, one dedicated
connection per worker registration (its slot is a session lock: it lives
exactly as long as that connection), and a synchronous connection for the
methods the original called without `await`.

Settings come from the original environment (PGHOST, PGPORT=5555, PGUSER,
PGPASSWORD, PGDATABASE=bot_trading_v3, SIGNAL_DEDUP_WINDOW,
WORKER_HEARTBEAT_TIMEOUT), or from `botai.connect(dsn)`. PGHOST and PGPORT
may list a primary and its standbys (`a,b`); PGTARGETSESSIONATTRS defaults
to read-write, so a connection after a failover finds the new primary.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Optional, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from .errors import BotaiError, ConnectionLost, from_sqlstate


def _conninfo_from_env() -> str:
    parts = {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": os.environ.get("PGPORT", "5555"),
        "dbname": os.environ.get("PGDATABASE", "bot_trading_v3"),
        "application_name": "botai python",
        # Several hosts (PGHOST=a,b) are tried in order; a standby refuses
        # every botai write (25006), so by default only a primary will do.
        "target_session_attrs": os.environ.get("PGTARGETSESSIONATTRS", "read-write"),
    }
    if os.environ.get("PGUSER"):
        parts["user"] = os.environ["PGUSER"]
    if os.environ.get("PGPASSWORD"):
        parts["password"] = os.environ["PGPASSWORD"]
    return psycopg.conninfo.make_conninfo(**parts)


def _seconds_setting_value(raw: str) -> Optional[int]:
    """A setting as PostgreSQL shows it ('60s', '1min', '90') in seconds."""
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}
    text = raw.strip()
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            try:
                return max(1, round(float(text[: -len(unit)]) * factor))
            except ValueError:
                return None
    try:
        return max(1, round(float(text)))
    except ValueError:
        return None


def _seconds_setting(name: str) -> Optional[int]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw.rstrip("s"))
    except ValueError:
        raise BotaiError(f"{name}={raw!r}: expected a number of seconds") from None
    if not value > 0:
        raise BotaiError(f"{name}={raw!r}: expected a positive number of seconds")
    return max(1, round(value))


class Database:
    """Where the five objects connect. One per process (`botai.connect`
    replaces the settings of the default one)."""

    def __init__(self, conninfo: Optional[str] = None) -> None:
        self._conninfo = conninfo
        self._pool: Optional[AsyncConnectionPool] = None
        self._pool_loop: Optional[asyncio.AbstractEventLoop] = None
        self._pool_lock: Optional[asyncio.Lock] = None
        self._sync: Optional[psycopg.Connection[Any]] = None
        self._sync_lock = threading.Lock()

    def configure(self, conninfo: Optional[str]) -> None:
        self._conninfo = conninfo
        self._pool = None
        self._pool_loop = None
        with self._sync_lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    @property
    def conninfo(self) -> str:
        return self._conninfo if self._conninfo is not None else _conninfo_from_env()

    def _session_settings(self) -> list[str]:
        sql = []
        window = _seconds_setting("SIGNAL_DEDUP_WINDOW")
        if window is not None:
            sql.append(f"SET botai.signal_dedup_window = {window}")
        return sql

    async def _configure_async(self, conn: psycopg.AsyncConnection[Any]) -> None:
        for statement in self._session_settings():
            await conn.execute(statement)
        await self._check_heartbeat_timeout(conn)

    async def _check_heartbeat_timeout(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """WORKER_HEARTBEAT_TIMEOUT is the server's (botai.worker_heartbeat_timeout,
        superuser-only: it decides when any worker counts as stale). A client
        that says another value is told so once, never refused: setting it
        per session is not botai_service's to do."""
        wanted = _seconds_setting("WORKER_HEARTBEAT_TIMEOUT")
        if wanted is None or getattr(self, "_heartbeat_checked", False):
            return
        self._heartbeat_checked = True
        cur = await conn.execute("SELECT current_setting('botai.worker_heartbeat_timeout')")
        row = await cur.fetchone()
        server = _seconds_setting_value(str(row[0])) if row else None
        if server is not None and server != wanted:
            import warnings

            warnings.warn(
                f"WORKER_HEARTBEAT_TIMEOUT={wanted}s but the server's botai.worker_heartbeat_timeout is {server}s, "
                "which decides (a superuser sets it in postgresql.conf or with ALTER DATABASE)",
                stacklevel=2,
            )

    async def pool(self) -> AsyncConnectionPool:
        """The pool of the running event loop (a pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            return self._pool
        if self._pool_lock is None or self._pool_loop is not loop:
            self._pool_lock = asyncio.Lock()
            self._pool_loop = loop
            self._pool = None
        async with self._pool_lock:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=int(os.environ.get("BOTAI_POOL_SIZE", "10")),
                    kwargs={"autocommit": True},
                    configure=self._configure_async,
                    open=False,
                    name="botai",
                )
                try:
                    await pool.open(wait=True, timeout=30)
                except Exception as e:
                    raise ConnectionLost(f"cannot connect to botai's database: {e}") from None
                self._pool = pool
            return self._pool

    async def dedicated(self) -> psycopg.AsyncConnection[Any]:
        """A connection of its own, outside the pool (a worker's slot)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except psycopg.Error as e:
            raise ConnectionLost(f"cannot connect to botai's database: {e}") from None
        await call_on(conn, self._configure_async(conn))
        return conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        pool = await self.pool()
        async with pool.connection() as conn:
            return await fetch_on(conn, sql, args)

    async def value(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self.fetch(sql, args)
        return next(iter(rows[0].values())) if rows else None

    def fetch_sync(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """For the methods the original called without await."""
        with self._sync_lock:
            for attempt in (1, 2):
                try:
                    if self._sync is None or self._sync.closed:
                        self._sync = psycopg.connect(self.conninfo, autocommit=True)
                        for statement in self._session_settings():
                            self._sync.execute(statement)
                    with self._sync.cursor(row_factory=dict_row) as cur:
                        cur.execute(sql, args)
                        return cur.fetchall() if cur.description else []
                except psycopg.OperationalError as e:
                    # A connection that dropped since the last call: once more on a new one.
                    if self._sync is not None and self._sync.closed and attempt == 1:
                        self._sync = None
                        continue
                    raise translate(e) from None
                except psycopg.Error as e:
                    raise translate(e) from None
            raise ConnectionLost("cannot reach botai's database")


def translate(e: psycopg.Error) -> BotaiError:
    message = e.diag.message_primary if e.diag and e.diag.message_primary else str(e)
    return from_sqlstate(e.sqlstate, message.strip())


async def call_on(conn: psycopg.AsyncConnection[Any], coro: Any) -> Any:
    try:
        return await coro
    except psycopg.Error as e:
        raise translate(e) from None


async def fetch_on(conn: psycopg.AsyncConnection[Any], sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, args)
            return await cur.fetchall() if cur.description else []
    except psycopg.Error as e:
        raise translate(e) from None


# --- argument conversion (the package adds no logic beyond this) -------------

def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return utc_text(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON")


def jsonb(what: str, v: Optional[dict[str, Any]]) -> Optional[Jsonb]:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise from_sqlstate("22023", f"{what} must be a dict or None, not {type(v).__name__}")
    try:
        json.dumps(v, default=_json_default)
    except (TypeError, ValueError) as e:
        raise from_sqlstate("22023", f"{what} is not JSON: {e}") from None
    return Jsonb(v, dumps=lambda o: json.dumps(o, default=_json_default))


def utc_text(t: datetime) -> str:
    """A datetime as botai reads it: naive means UTC (the original passed
    datetime.now() on UTC servers)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def money(what: str, v: Any) -> Decimal:
    """Decimal in: a Decimal, an int or a decimal string. Never a float
    (binary floats do not hold money exactly) and never a bool."""
    if isinstance(v, bool) or isinstance(v, float):
        raise from_sqlstate("22023", f"{what} must be a Decimal (or int, or decimal string), not {type(v).__name__}")
    if isinstance(v, Decimal):
        d = v
    elif isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except Exception:
            raise from_sqlstate("22023", f"{what} {v!r} is not a decimal number") from None
    elif v is None:
        raise from_sqlstate("22004", f"{what} must not be None")
    else:
        raise from_sqlstate("22023", f"{what} must be a Decimal, not {type(v).__name__}")
    if not d.is_finite():
        raise from_sqlstate("22023", f"{what} must be finite, not {d}")
    return d


def text(what: str, v: Any, optional: bool = False) -> Optional[str]:
    if v is None:
        if optional:
            return None
        raise from_sqlstate("22004", f"{what} must not be None")
    if not isinstance(v, str):
        raise from_sqlstate("22023", f"{what} must be a str, not {type(v).__name__}")
    return v


def integer(what: str, v: Any, optional: bool = False) -> Optional[int]:
    if v is None:
        if optional:
            return None
        raise from_sqlstate("22004", f"{what} must not be None")
    if isinstance(v, bool) or not isinstance(v, int):
        raise from_sqlstate("22023", f"{what} must be an int, not {type(v).__name__}")
    if not -(2**31) <= v < 2**31:
        raise from_sqlstate("22003", f"{what} {v} is out of range")
    return v


default = Database()
