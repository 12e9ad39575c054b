"""SignalDeduplicator: every signal acted on once, across every process."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List

from . import _db
from ._db import integer, jsonb, utc_text
from .errors import from_sqlstate


class SignalDeduplicator:
    def __init__(self, db: _db.Database) -> None:
        self._db = db

    async def check_and_register_signal(self, signal_data: Dict[str, Any]) -> bool:
        """True when the signal is new (registered now), False when it is a
        duplicate within the window (or stale, or in its cooldown)."""
        if not isinstance(signal_data, dict):
            raise from_sqlstate("22023", f"signal_data must be a dict, not {type(signal_data).__name__}")
        signal = dict(signal_data)
        ts = signal.get("timestamp")
        if isinstance(ts, datetime):
            signal["timestamp"] = utc_text(ts)
        return bool(await self._db.value("SELECT botai_check_and_register_signal(%s) AS ok", (jsonb("signal_data", signal),)))

    async def get_recent_signals(self, minutes: int = 5) -> List[Dict[str, Any]]:
        """Signals accepted in the last `minutes`, newest first."""
        return await self._db.fetch("SELECT * FROM botai_recent_signals(%s)", (integer("minutes", minutes),))

    def get_stats(self) -> Dict[str, int]:
        """total_checks, unique_signals, duplicates_found, stale_rejected (since the server started)."""
        rows = self._db.fetch_sync("SELECT * FROM botai_signal_stats()")
        return {k: int(v) for k, v in rows[0].items()} if rows else {}
