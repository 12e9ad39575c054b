"""RateLimiter: exact sliding windows shared by every process of the
exchange account, in the server's shared memory."""

from __future__ import annotations

from typing import Any, Dict, Optional

from . import _db
from ._db import integer, text


class RateLimiter:
    def __init__(self, db: _db.Database) -> None:
        self._db = db

    async def acquire(self, exchange: str, endpoint: str = "default", weight: Optional[int] = None) -> float:
        """Books the request and returns the seconds to wait before sending
        it (0: now). Sleep that long, then send: no limit is exceeded,
        however many processes share the exchange."""
        args = (text("exchange", exchange), text("endpoint", endpoint), integer("weight", weight, optional=True))
        return float(await self._db.value("SELECT botai_rate_acquire(%s, %s, %s) AS wait", args))

    async def get_current_usage(self, exchange: str) -> Dict[str, Dict[str, Any]]:
        """Per endpoint: used, effective_limit, window_seconds, utilization, next_free_in."""
        rows = await self._db.fetch("SELECT * FROM botai_rate_usage(%s)", (text("exchange", exchange),))
        return {r.pop("endpoint"): r for r in rows}

    def get_stats(self, exchange: str) -> Dict[str, Dict[str, Any]]:
        """Per endpoint: requests, delayed, total_wait_seconds."""
        rows = self._db.fetch_sync("SELECT * FROM botai_rate_stats(%s)", (text("exchange", exchange),))
        return {r.pop("endpoint"): r for r in rows}
