"""ProcessMonitor: components, their heartbeats and errors. The alert rules
run inside PostgreSQL (the monitor background worker), so alerts fire even
when no process of the platform runs."""

from __future__ import annotations

from typing import Any, Dict, Optional

from . import _db
from ._db import integer, jsonb, text
from .errors import from_sqlstate


class ProcessMonitor:
    def __init__(self, db: _db.Database) -> None:
        self._db = db

    async def register_component(self, component_name: str, metadata: Optional[Dict[str, Any]] = None) -> bool:
        """True when the component was not known before."""
        args = (text("component_name", component_name), jsonb("metadata", {} if metadata is None else metadata))
        return bool(await self._db.value("SELECT botai_register_component(%s, %s) AS new", args))

    async def heartbeat(
        self,
        component_name: str,
        status: str = "healthy",
        active_tasks: int = 0,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> bool:
        """status: healthy, degraded, unhealthy (or stopped). False for an
        unregistered component."""
        args = (
            text("component_name", component_name),
            text("status", status),
            integer("active_tasks", active_tasks),
            jsonb("metadata", metadata),
        )
        return bool(await self._db.value("SELECT botai_heartbeat(%s, %s, %s, %s) AS ok", args))

    async def report_error(self, component_name: str, error: str, is_critical: bool = False) -> None:
        """Records an error; the high_error_rate and critical_error rules count them."""
        if not isinstance(is_critical, bool):
            raise from_sqlstate("22023", f"is_critical must be a bool, not {type(is_critical).__name__}")
        args = (text("component_name", component_name), text("error", error), is_critical)
        await self._db.fetch("SELECT botai_report_error(%s, %s, %s)", args)

    def get_component_health(self, component_name: str) -> Dict[str, Any]:
        """The component's effective status, errors and open alerts."""
        rows = self._db.fetch_sync(
            "SELECT botai_component_health(%s) AS health", (text("component_name", component_name),)
        )
        return dict(rows[0]["health"])
