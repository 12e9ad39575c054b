"""botai: the original platform's five coordination objects, with their
state in PostgreSQL (the botai extension) for every process at once.

    from botai import worker_coordinator, signal_deduplicator, rate_limiter, balance_manager, process_monitor

Connection settings come from PGHOST, PGPORT (5555), PGUSER, PGPASSWORD and
PGDATABASE (bot_trading_v3), or from `botai.connect(dsn)`. Errors are typed
(`botai.InvalidArgument`, `botai.NotFound`, …, all `botai.BotaiError`);
"no funds", "slot taken" and "duplicate" are return values, as before.
"""

from __future__ import annotations

from typing import Optional

from . import _db
from ._balances import BalanceManager
from ._monitor import ProcessMonitor
from ._ratelimit import RateLimiter
from ._signals import SignalDeduplicator
from ._workers import WorkerCoordinator
from .errors import (
    BotaiError,
    Busy,
    ConnectionLost,
    ExtensionOutdated,
    InvalidArgument,
    NotFound,
    NullArgument,
    OutOfRange,
    PermissionDenied,
    ReadOnly,
    ResourceExhausted,
)

__version__ = "0.5.0"

worker_coordinator = WorkerCoordinator(_db.default)
signal_deduplicator = SignalDeduplicator(_db.default)
rate_limiter = RateLimiter(_db.default)
balance_manager = BalanceManager(_db.default)
process_monitor = ProcessMonitor(_db.default)


def connect(dsn: Optional[str] = None) -> None:
    """Points the five objects at `dsn` (a libpq connection string or URL);
    None goes back to the environment. Connections open on first use."""
    _db.default.configure(dsn)


__all__ = [
    "BalanceManager",
    "BotaiError",
    "Busy",
    "ConnectionLost",
    "ExtensionOutdated",
    "InvalidArgument",
    "NotFound",
    "NullArgument",
    "OutOfRange",
    "PermissionDenied",
    "ProcessMonitor",
    "RateLimiter",
    "ReadOnly",
    "ResourceExhausted",
    "SignalDeduplicator",
    "WorkerCoordinator",
    "balance_manager",
    "connect",
    "process_monitor",
    "rate_limiter",
    "signal_deduplicator",
    "worker_coordinator",
]
