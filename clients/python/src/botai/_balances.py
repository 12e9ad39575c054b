"""BalanceManager: no order without funds. Reservations are atomic across
every process; money is Decimal in and Decimal out, never a float."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from . import _db
from ._db import jsonb, money, text
from .errors import from_sqlstate


def reservation(what: str, v: Any) -> uuid.UUID:
    """A reservation id as botai_reserve_balance returned it."""
    try:
        return uuid.UUID(text(what, v))
    except ValueError:
        raise from_sqlstate("22023", f"{what} {v!r} is not a UUID") from None


class BalanceManager:
    def __init__(self, db: _db.Database) -> None:
        self._db = db

    async def update_balance(
        self, exchange: str, symbol: str, total: Decimal, available: Decimal, locked: Decimal
    ) -> bool:
        """Records what the exchange reports for the asset."""
        args = (
            text("exchange", exchange),
            text("symbol", symbol),
            money("total", total),
            money("available", available),
            money("locked", locked),
        )
        return bool(await self._db.value("SELECT botai_update_balance(%s, %s, %s, %s, %s) AS ok", args))

    async def check_balance_availability(
        self, exchange: str, symbol: str, amount: Decimal
    ) -> Tuple[bool, Optional[str]]:
        """(True, None) when the free funds cover amount (with the safety
        margin); else (False, why). Reserve to be sure: this only looks."""
        args = (text("exchange", exchange), text("symbol", symbol), money("amount", amount))
        rows = await self._db.fetch("SELECT * FROM botai_check_balance_availability(%s, %s, %s)", args)
        row = rows[0]
        return bool(row["available"]), row["error"]

    async def reserve_balance(
        self, exchange: str, symbol: str, amount: Decimal, purpose: str, metadata: Optional[Dict[str, Any]] = None
    ) -> Optional[str]:
        """The reservation id, or None when the free funds do not cover it."""
        args = (
            text("exchange", exchange),
            text("symbol", symbol),
            money("amount", amount),
            text("purpose", purpose),
            jsonb("metadata", metadata),
        )
        rid = await self._db.value("SELECT botai_reserve_balance(%s, %s, %s, %s, %s) AS id", args)
        return None if rid is None else str(rid)

    async def release_reservation(self, reservation_id: str) -> bool:
        """True when the reservation held funds and now does not."""
        rid = reservation("reservation_id", reservation_id)
        return bool(await self._db.value("SELECT botai_release_reservation(%s) AS ok", (rid,)))

    async def commit_reservation(self, reservation_id: str, amount: Optional[Decimal] = None) -> bool:
        """botai's addition to the original: the order went to the exchange
        and spent `amount` (default: all of it). The funds stay counted until
        a balance update newer than the commit shows the spend, so nothing
        is freed twice in the moment between the order and the next sync
        (release_reservation frees them at once, as the original did)."""
        rid = reservation("reservation_id", reservation_id)
        spent = None if amount is None else money("amount", amount)
        return bool(await self._db.value("SELECT botai_commit_reservation(%s, %s) AS ok", (rid, spent)))
