"""Issue 26 from Python: amounts outside botai's domain are refused with
OutOfRange (22003); every reader of the package survives whatever the
tables hold (values stored before 0.7.0, or by an admin); and
WORKER_HEARTBEAT_TIMEOUT, the server's setting, no longer breaks every
connection of botai_service."""

import asyncio
import os
import warnings
from datetime import datetime
from decimal import Decimal

import psycopg
import pytest

import botai
from botai import balance_manager, process_monitor, rate_limiter, signal_deduplicator, worker_coordinator


def test_amounts_outside_the_domain_are_out_of_range(database, sql):
    async def run():
        for call in (
            lambda: balance_manager.update_balance("bybit", "USDT", Decimal("1e400"), Decimal(1), Decimal(0)),
            lambda: balance_manager.update_balance("bybit", "USDT", Decimal("1.0000000000001"), Decimal(1), Decimal(0)),
            lambda: balance_manager.reserve_balance("bybit", "USDT", Decimal("1e17"), "order"),
            lambda: balance_manager.check_balance_availability("bybit", "USDT", Decimal("1e300")),
        ):
            with pytest.raises(botai.OutOfRange) as e:
                await call()
            assert e.value.sqlstate == "22003" and len(e.value.message) < 600, e.value.message

    asyncio.run(run())
    assert sql.execute("SELECT count(*) FROM botai.balances").fetchone()[0] == 0


def test_every_reader_survives_values_no_float_holds(database, sql):
    sql.execute(
        "INSERT INTO botai.balances (exchange, asset, total, available, locked, as_of) "
        "VALUES ('bybit', 'USDT', 1e400, 1e400, 0, now())"
    )
    sql.execute(
        "INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, payload) "
        "VALUES ('py-absurd', 'BTCUSDT', 'BUY', 'x', now(), '{\"price\": 1e400}')"
    )
    sql.execute(
        "INSERT INTO botai.components (component, metadata) VALUES ('absurd', '{\"x\": 1e400}')"
    )

    async def run():
        ok, why = await balance_manager.check_balance_availability("bybit", "USDT", Decimal(1))
        assert ok and why is None
        recent = await signal_deduplicator.get_recent_signals(5)
        assert recent and recent[0]["payload"]["price"] in (float("inf"), Decimal("1e400"))
        await rate_limiter.get_current_usage("bybit")

    asyncio.run(run())
    assert process_monitor.get_component_health("absurd")["component"] == "absurd"
    assert "types" in worker_coordinator.get_worker_stats()
    assert isinstance(signal_deduplicator.get_stats(), dict)


def test_the_heartbeat_timeout_is_the_servers_and_never_breaks_a_connection(database, sql, monkeypatch):
    # botai_service over TCP, as the daemon connects (make writes its password to .env).
    env = dict(line.split("=", 1) for line in open(os.path.join(os.path.dirname(__file__), "../../../.env")).read()
               .splitlines() if line.startswith("PG"))
    monkeypatch.setenv("WORKER_HEARTBEAT_TIMEOUT", "7")
    botai.connect(psycopg.conninfo.make_conninfo(
        host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"], password=env["PGPASSWORD"], dbname=database))

    async def run():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            worker = await worker_coordinator.register_worker("ml_manager")
            assert worker is not None
            assert await worker_coordinator.heartbeat(worker)
            await worker_coordinator.unregister_worker(worker)
        said = " ".join(str(w.message) for w in seen)
        assert "WORKER_HEARTBEAT_TIMEOUT=7s" in said and "decides" in said, said

    asyncio.run(run())
