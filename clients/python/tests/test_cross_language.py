"""Python and the Rust daemon on one database: a Python ml_manager and the
Rust one exclude each other, and kill -9 of a Python worker frees its slot
for a standby within a second."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botai import worker_coordinator

ROOT = Path(__file__).resolve().parents[3]
BOTAI = ROOT / "target" / "release" / "botai"


def start_rust_ml_manager(database: str, log: Path) -> subprocess.Popen:
    epoch = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "PGHOST": os.environ["PGHOST"],
        "PGPORT": os.environ["PGPORT"],
        "PGUSER": os.environ.get("PGUSER", ""),
        "PGDATABASE": database,
        "REPLAY_EPOCH": epoch,
        "MARKET_DATA": "data/market/btc-perp-1m-2022-01.csv.gz", "REPLAY_FROM": "2022-01-12T00:00:00Z",
        "REPLAY_SPEED": "60",
        "WORKER_HEARTBEAT_TIMEOUT": "4",
        "API_LISTEN": "127.0.0.1:0",
        "PAPER_LISTEN": "off",
        "LOG_DIR": str(log.parent / "logs"),
        "REPORT_DIR": str(log.parent / "reports"),
        "NO_COLOR": "1",
    }
    return subprocess.Popen([str(BOTAI), "run", "--mode=ml"], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(log: Path, text: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while text not in log.read_text():
        assert time.time() < deadline, f"never printed {text!r}:\n{log.read_text()}"
        time.sleep(0.05)


def test_a_python_ml_manager_and_the_rust_one_exclude_each_other(database, tmp_path):
    log = tmp_path / "rust.log"

    async def main():
        python_id = await worker_coordinator.register_worker("ml_manager", metadata={"lang": "python"})
        assert python_id
        rust = start_rust_ml_manager(database, log)
        try:
            wait_for(log, "another ML manager is active; standing by to take over")
            # Python steps down: the Rust standby takes the slot at once.
            stepped_down = time.time()
            assert await worker_coordinator.unregister_worker(python_id)
            wait_for(log, "took over as the active ML manager", seconds=5)
            took = time.time() - stepped_down
            assert took < 1.0, f"the Rust standby took {took:.2f} s"
            # While Rust is active, Python cannot take the slot.
            assert await worker_coordinator.register_worker("ml_manager") is None
            # kill -9 of the Rust manager: Python takes the slot within a second.
            rust.send_signal(signal.SIGKILL)
            rust.wait()
            killed = time.time()
            while (taken := await worker_coordinator.register_worker("ml_manager")) is None:
                assert time.time() - killed < 1.0, "the Rust manager's slot did not free within a second"
                await asyncio.sleep(0.01)
            print(f"Rust standby took over in {took * 1e3:.0f} ms; Python after kill -9 of Rust in "
                  f"{(time.time() - killed) * 1e3:.0f} ms")
            assert await worker_coordinator.unregister_worker(taken)
        finally:
            if rust.poll() is None:
                rust.kill()
                rust.wait()

    asyncio.run(main())


HOLDER = """
import asyncio, sys
from botai import worker_coordinator
async def main():
    worker_id = await worker_coordinator.register_worker("ml_manager", metadata={"holder": True})
    print(worker_id, flush=True)
    while True:
        await worker_coordinator.heartbeat(worker_id, status="running")
        await asyncio.sleep(1)
asyncio.run(main())
"""


def test_kill_9_of_a_python_worker_frees_its_slot_for_a_standby_within_a_second(database):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        held = holder.stdout.readline().strip()
        assert held.startswith("ml_manager"), held

        async def standby():
            assert await worker_coordinator.register_worker("ml_manager") is None, "the holder has the slot"
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            killed = time.time()
            while (taken := await worker_coordinator.register_worker("ml_manager")) is None:
                assert time.time() - killed < 1.0, "the slot did not free within a second of kill -9"
                await asyncio.sleep(0.01)
            took = time.time() - killed
            print(f"the standby holds the slot {took * 1e3:.0f} ms after kill -9 of the holder")
            stats = worker_coordinator.get_worker_stats()
            assert stats["types"]["ml_manager"]["active"] == 1
            assert stats["types"]["ml_manager"]["epoch"] >= 2, "a new epoch fences the killed holder"
            return taken

        asyncio.run(standby())
    finally:
        if holder.poll() is None:
            holder.kill()
