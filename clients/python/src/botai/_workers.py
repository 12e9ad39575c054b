"""WorkerCoordinator: one slot per worker, held by a session lock on a
connection of the worker's own, so it frees the instant the process dies."""

from __future__ import annotations

from typing import Any, Dict, Optional

import psycopg

from . import _db
from ._db import fetch_on, integer, jsonb, text


class WorkerCoordinator:
    def __init__(self, db: _db.Database) -> None:
        self._db = db
        # worker_id -> the connection holding its slot.
        self._held: Dict[str, psycopg.AsyncConnection[Any]] = {}

    async def register_worker(
        self, worker_type: str, worker_id: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None
    ) -> Optional[str]:
        """The worker id when this process now holds a slot of the type;
        None when every slot of it is held by a live worker."""
        args = (text("worker_type", worker_type), text("worker_id", worker_id, optional=True), jsonb("metadata", metadata))
        conn = await self._db.dedicated()
        try:
            rows = await fetch_on(conn, "SELECT botai_register_worker(%s, %s, %s) AS worker_id", args)
        except BaseException:
            await conn.close()
            raise
        registered: Optional[str] = rows[0]["worker_id"] if rows else None
        if registered is None:
            await conn.close()
            return None
        previous = self._held.pop(registered, None)
        if previous is not None:
            await previous.close()
        self._held[registered] = conn
        return registered

    async def heartbeat(
        self, worker_id: str, status: str = "running", active_tasks: int = 0, metadata: Optional[Dict[str, Any]] = None
    ) -> bool:
        """True when the worker holds its slot; False when it is unknown or
        its slot is gone."""
        args = (
            text("worker_id", worker_id),
            text("status", status),
            integer("active_tasks", active_tasks),
            jsonb("metadata", metadata),
        )
        sql = "SELECT botai_worker_heartbeat(%s, %s, %s, %s) AS ok"
        conn = self._held.get(worker_id)
        if conn is None or conn.closed:
            return bool(await self._db.value(sql, args))
        rows = await fetch_on(conn, sql, args)
        return bool(rows[0]["ok"])

    async def unregister_worker(self, worker_id: str) -> bool:
        """Frees the slot; True when the worker was registered."""
        args = (text("worker_id", worker_id),)
        conn = self._held.pop(worker_id, None)
        sql = "SELECT botai_unregister_worker(%s) AS ok"
        if conn is None or conn.closed:
            return bool(await self._db.value(sql, args))
        try:
            rows = await fetch_on(conn, sql, args)
            return bool(rows[0]["ok"])
        finally:
            await conn.close()

    def get_worker_stats(self) -> Dict[str, Any]:
        """Workers per type and status, as botai_worker_stats() gives them."""
        rows = self._db.fetch_sync("SELECT botai_worker_stats() AS stats")
        return dict(rows[0]["stats"]) if rows else {}
