"""The original design's own usage examples (SEED_API.md), run unchanged but
for the import line: `from botai import …` instead of
`from core.system.<module> import …`. What they call that the design does
not define (a logger, the exchange client, the model) is stubbed here."""

import asyncio
import logging
import sys
from datetime import datetime
from decimal import Decimal

import pytest

from botai import balance_manager, process_monitor, rate_limiter, signal_deduplicator, worker_coordinator

logger = logging.getLogger("original")


# --- what the examples use and the design leaves to the platform -------------

class Exchange:
    """Stands in for the exchange client; records what it was asked."""

    def __init__(self):
        self.orders = []

    async def create_order(self, **kwargs):
        self.orders.append(kwargs)
        return {"id": f"order-{len(self.orders)}", **kwargs}


exchange_api = Exchange()
processed = []


async def process_signal(signal):
    processed.append(signal)


async def create_order(**kwargs):
    return await exchange_api.create_order(**kwargs)


# --- WorkerCoordinator --------------------------------------------------------

async def start_ml_manager():
    # The original example, verbatim.
    worker_id = await worker_coordinator.register_worker(
        worker_type='ml_manager',
        metadata={'version': '3.0', 'gpu': 'RTX 5090'}
    )
    if worker_id:
        await worker_coordinator.heartbeat(worker_id, status='running')
    else:
        logger.warning("ML Manager already running")
        sys.exit(0)
    return worker_id


def test_worker_coordinator_example(database):
    async def main():
        first = await start_ml_manager()
        assert first
        with pytest.raises(SystemExit) as e:
            await start_ml_manager()
        assert e.value.code == 0, "the second ML manager exits, as the original did"
        # The troubleshooting fix: heartbeat takes active_tasks.
        assert await worker_coordinator.heartbeat(first, status='busy', active_tasks=3)
        stats = worker_coordinator.get_worker_stats()
        assert stats["types"]["ml_manager"]["active"] == 1
        assert await worker_coordinator.unregister_worker(first)

    asyncio.run(main())


# --- SignalDeduplicator -------------------------------------------------------

def test_signal_deduplicator_example(database):
    async def main():
        processed.clear()
        for _ in range(3):
            signal = {
                'symbol': 'BTCUSDT',
                'direction': 'BUY',
                'strategy': 'ml_strategy',
                'timestamp': datetime.now(),
                'signal_strength': 0.85
            }
            is_unique = await signal_deduplicator.check_and_register_signal(signal)
            if is_unique:
                await process_signal(signal)
            else:
                logger.info(f"Duplicate signal skipped: {signal['symbol']}")
        assert len(processed) == 1, "three sends within the minute: one processed"
        stats = signal_deduplicator.get_stats()
        assert stats["total_checks"] >= 3 and stats["duplicates_found"] >= 2
        recent = await signal_deduplicator.get_recent_signals(minutes=5)
        assert [r["symbol"] for r in recent] == ["BTCUSDT"]

    asyncio.run(main())


# --- RateLimiter --------------------------------------------------------------

def test_rate_limiter_example(database):
    async def main():
        sent = []
        for _ in range(12):
            wait_time = await rate_limiter.acquire('bybit', 'order', weight=2)
            if wait_time > 0:
                await asyncio.sleep(wait_time)
            response = await exchange_api.create_order(symbol='BTCUSDT')
            sent.append(asyncio.get_running_loop().time())
        # Bybit's order limit, 10/s booked at 90 %: 9 weight a second, so
        # weight 2 goes four times a second at most.
        for i in range(len(sent) - 4):
            assert sent[i + 4] - sent[i] >= 0.9, "more than 9 weight within a second"
        usage = await rate_limiter.get_current_usage('bybit')
        assert usage["order"]["effective_limit"] == 9
        assert rate_limiter.get_stats('bybit')["order"]["requests"] == 12

    asyncio.run(main())


# --- BalanceManager -----------------------------------------------------------

async def balance_example():
    await balance_manager.update_balance(
        exchange='bybit', symbol='USDT',
        total=Decimal('10000'), available=Decimal('9500'), locked=Decimal('500'))

    amount_needed = Decimal('1000')
    available, error = await balance_manager.check_balance_availability(
        exchange='bybit', symbol='USDT', amount=amount_needed)
    if available:
        reservation_id = await balance_manager.reserve_balance(
            exchange='bybit', symbol='USDT', amount=amount_needed, purpose='order_creation')
        try:
            order = await create_order(symbol='BTCUSDT', amount=amount_needed)
            await balance_manager.release_reservation(reservation_id)
        except Exception as e:
            await balance_manager.release_reservation(reservation_id)
            raise
    else:
        logger.warning(f"Insufficient funds: {error}")
    return available, error


def test_balance_manager_example(database, sql):
    async def main():
        available, error = await balance_example()
        assert available and error is None
        held = sql.execute("SELECT count(*) FROM botai.reservations WHERE status = 'held'").fetchone()[0]
        assert held == 0, "released after the order"
        too_much, why = await balance_manager.check_balance_availability('bybit', 'USDT', Decimal('9400'))
        assert not too_much and why, "9,400 × 1.02 is more than the 9,500 free"

    asyncio.run(main())


# --- ProcessMonitor -----------------------------------------------------------

def test_process_monitor_example(database):
    running = True
    active_orders = ['a', 'b']
    signal_count = 7

    async def process_critical_operation():
        raise RuntimeError("the exchange is down")

    async def main():
        nonlocal running
        await process_monitor.register_component('trading_engine', metadata={'version': '3.0', 'critical': True})

        async def heartbeat_loop():
            while running:
                await process_monitor.heartbeat('trading_engine', status='healthy',
                                                active_tasks=len(active_orders),
                                                metadata={'processed_signals': signal_count})
                await asyncio.sleep(30)

        beats = asyncio.create_task(heartbeat_loop())
        await asyncio.sleep(0.2)
        try:
            await process_critical_operation()
        except Exception as e:
            await process_monitor.report_error('trading_engine', str(e), is_critical=True)
        running = False
        beats.cancel()
        health = process_monitor.get_component_health('trading_engine')
        assert health["active_tasks"] == 2 and health["errors_total"] == 1
        assert health["last_error"] == "the exchange is down"
        # The critical_error rule opens an alert within a monitor round.
        for _ in range(50):
            if any(a["rule"] == "critical_error" for a in process_monitor.get_component_health('trading_engine')["open_alerts"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no critical_error alert")

    asyncio.run(main())


# --- the integration examples -------------------------------------------------

class Model:
    async def predict(self, data):
        return {"symbol": "ETHUSDT", "direction": "SELL", "score": data}


class MLManager:
    def __init__(self):
        self.model = Model()

    async def _heartbeat_loop(self):
        while True:
            await worker_coordinator.heartbeat(self.worker_id, status='running')
            await asyncio.sleep(1)

    def _create_signal(self, prediction):
        return {"symbol": prediction["symbol"], "direction": prediction["direction"], "strategy": "patchtst",
                "timestamp": datetime.now(), "signal_strength": 0.7}

    # The original, verbatim.
    async def initialize(self):
        self.worker_id = await worker_coordinator.register_worker(
            worker_type='ml_manager',
            metadata={'model': 'UnifiedPatchTST', 'version': '3.0'})
        if not self.worker_id:
            logger.error("ML Manager already running in another process")
            raise RuntimeError("Duplicate ML Manager instance")
        asyncio.create_task(self._heartbeat_loop())

    async def predict(self, data):
        prediction = await self.model.predict(data)
        signal = self._create_signal(prediction)
        if await signal_deduplicator.check_and_register_signal(signal):
            return signal
        return None


class TradingEngine:
    def __init__(self):
        self.exchange_client = Exchange()

    # The original, verbatim.
    async def _create_order(self, signal):
        exchange = signal['exchange']
        symbol = signal['symbol']
        amount = signal['amount']
        wait_time = await rate_limiter.acquire(exchange, 'order')
        if wait_time > 0:
            await asyncio.sleep(wait_time)
        available, error = await balance_manager.check_balance_availability(
            exchange=exchange, symbol='USDT', amount=amount * signal['price'])
        if not available:
            logger.warning(f"Insufficient funds: {error}")
            return None
        reservation_id = await balance_manager.reserve_balance(
            exchange=exchange, symbol='USDT', amount=amount * signal['price'],
            purpose=f"order_{signal['id']}")
        try:
            order = await self.exchange_client.create_order(
                symbol=symbol, side=signal['direction'], amount=amount, price=signal['price'])
            await balance_manager.release_reservation(reservation_id)
            return order
        except Exception as e:
            await balance_manager.release_reservation(reservation_id)
            await process_monitor.report_error('trading_engine', f"Order creation failed: {e}",
                                               is_critical=False)
            raise


def test_ml_manager_and_trading_engine_examples(database):
    async def main():
        ml = MLManager()
        await ml.initialize()
        with pytest.raises(RuntimeError, match="Duplicate ML Manager instance"):
            await MLManager().initialize()
        first = await ml.predict(0.9)
        again = await ml.predict(0.9)
        assert first is not None and again is None, "the same signal twice in a minute is acted on once"

        await balance_manager.update_balance('bybit', 'USDT', Decimal('1000'), Decimal('1000'), Decimal('0'))
        engine = TradingEngine()
        signal = {"exchange": "bybit", "symbol": "BTCUSDT", "direction": "BUY", "id": 1,
                  "amount": Decimal('0.01'), "price": Decimal('50000')}
        order = await engine._create_order(signal)
        assert order["amount"] == Decimal('0.01')
        big = dict(signal, id=2, amount=Decimal('1'))
        assert await engine._create_order(big) is None, "50,000 USDT is more than there is"
        assert len(engine.exchange_client.orders) == 1

    asyncio.run(main())
