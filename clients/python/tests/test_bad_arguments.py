"""Every method with bad arguments raises the typed exception carrying the
message, and writes nothing."""

import asyncio
from datetime import datetime
from decimal import Decimal

import pytest

import botai
from botai import balance_manager, process_monitor, rate_limiter, signal_deduplicator, worker_coordinator

TABLES = ["workers", "signals", "balances", "reservations", "components", "component_errors", "tasks"]


def snapshot(sql):
    state = {t: sql.execute(f"SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') "
                            f"FROM botai.{t} x").fetchone() for t in TABLES}
    state["rate"] = sql.execute("SELECT coalesce(sum(requests), 0) FROM botai_rate_stats('bybit')").fetchone()[0]
    return state


def signal(**overrides):
    s = {"symbol": "BTCUSDT", "direction": "BUY", "strategy": "bad-args", "timestamp": datetime.now()}
    s.update(overrides)
    return s


# (call, the exception it raises)
CASES = [
    (lambda: worker_coordinator.register_worker(None), botai.NullArgument),
    (lambda: worker_coordinator.register_worker(42), botai.InvalidArgument),
    (lambda: worker_coordinator.register_worker(""), botai.InvalidArgument),
    (lambda: worker_coordinator.register_worker("ml_manager", "x" * 100), botai.InvalidArgument),
    (lambda: worker_coordinator.register_worker("ml_manager", metadata="version 3"), botai.InvalidArgument),
    (lambda: worker_coordinator.register_worker("ml_manager", metadata={"when": object()}), botai.InvalidArgument),
    (lambda: worker_coordinator.heartbeat(None), botai.NullArgument),
    (lambda: worker_coordinator.heartbeat("w", status="flying"), botai.InvalidArgument),
    (lambda: worker_coordinator.heartbeat("w", active_tasks=-1), botai.InvalidArgument),
    (lambda: worker_coordinator.heartbeat("w", active_tasks="1"), botai.InvalidArgument),
    (lambda: worker_coordinator.heartbeat("w", active_tasks=2**40), botai.OutOfRange),
    (lambda: worker_coordinator.unregister_worker(None), botai.NullArgument),
    (lambda: signal_deduplicator.check_and_register_signal("BTCUSDT BUY"), botai.InvalidArgument),
    (lambda: signal_deduplicator.check_and_register_signal(signal(symbol=None)), botai.InvalidArgument),
    (lambda: signal_deduplicator.check_and_register_signal(signal(direction="SIDEWAYS")), botai.InvalidArgument),
    (lambda: signal_deduplicator.check_and_register_signal(signal(timestamp="yesterday")), botai.InvalidArgument),
    (lambda: signal_deduplicator.get_recent_signals("5"), botai.InvalidArgument),
    (lambda: rate_limiter.acquire(None), botai.NullArgument),
    (lambda: rate_limiter.acquire("bybit", "order", weight=0), botai.InvalidArgument),
    (lambda: rate_limiter.acquire("bybit", "order", weight=1000), botai.InvalidArgument),
    (lambda: rate_limiter.acquire("bybit", "order", weight=2.5), botai.InvalidArgument),
    (lambda: rate_limiter.get_current_usage(None), botai.NullArgument),
    (lambda: balance_manager.update_balance("bybit", "USDT", 100.5, Decimal(100), Decimal(0)), botai.InvalidArgument),
    (lambda: balance_manager.update_balance("bybit", "USDT", Decimal(100), Decimal(-1), Decimal(0)), botai.InvalidArgument),
    (lambda: balance_manager.update_balance("bybit", None, Decimal(100), Decimal(100), Decimal(0)), botai.NullArgument),
    (lambda: balance_manager.check_balance_availability("bybit", "USDT", Decimal("NaN")), botai.InvalidArgument),
    (lambda: balance_manager.check_balance_availability("bybit", "USDT", "lots"), botai.InvalidArgument),
    (lambda: balance_manager.reserve_balance("bybit", "USDT", Decimal(0), "order"), botai.InvalidArgument),
    (lambda: balance_manager.reserve_balance("bybit", "USDT", Decimal(1), None), botai.NullArgument),
    (lambda: balance_manager.reserve_balance("bybit", "USDT", True, "order"), botai.InvalidArgument),
    (lambda: balance_manager.reserve_balance("bybit", "USDT", Decimal(1), "order", metadata=[1]), botai.InvalidArgument),
    (lambda: balance_manager.release_reservation("not-a-uuid"), botai.InvalidArgument),
    (lambda: balance_manager.release_reservation(None), botai.NullArgument),
    (lambda: process_monitor.register_component(None), botai.NullArgument),
    (lambda: process_monitor.register_component(""), botai.InvalidArgument),
    (lambda: process_monitor.heartbeat("c", status="bogus"), botai.InvalidArgument),
    (lambda: process_monitor.heartbeat("c", active_tasks=-5), botai.InvalidArgument),
    (lambda: process_monitor.report_error(None, "boom"), botai.NullArgument),
    (lambda: process_monitor.report_error("c", "boom", is_critical="yes"), botai.InvalidArgument),
]

SYNC_CASES = [
    (lambda: rate_limiter.get_stats(None), botai.NullArgument),
    (lambda: process_monitor.get_component_health(None), botai.NullArgument),
    (lambda: process_monitor.get_component_health("never-registered"), botai.NotFound),
]


def test_every_method_refuses_bad_arguments_with_a_typed_error_and_writes_nothing(database, sql):
    async def prepare():
        await balance_manager.update_balance("bybit", "USDT", Decimal(1000), Decimal(1000), Decimal(0))
        await process_monitor.register_component("c")
        assert await signal_deduplicator.check_and_register_signal(signal(strategy="seed"))

    asyncio.run(prepare())
    before = snapshot(sql)
    seen = []

    async def run_all():
        for i, (call, expected) in enumerate(CASES):
            with pytest.raises(expected) as e:
                await call()
            assert isinstance(e.value, botai.BotaiError) and e.value.message, f"case {i}"
            seen.append((i, type(e.value).__name__, e.value.sqlstate, e.value.message))

    asyncio.run(run_all())
    for i, (call, expected) in enumerate(SYNC_CASES):
        with pytest.raises(expected) as e:
            call()
        seen.append((len(CASES) + i, type(e.value).__name__, e.value.sqlstate, e.value.message))
    for s in seen:
        print(*s)
    assert snapshot(sql) == before, "a refused call wrote something"
    assert len(seen) == len(CASES) + len(SYNC_CASES)
