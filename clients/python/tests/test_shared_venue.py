"""A Python process and the Rust daemon trade one exchange account at once:
the daemon's engine trades a replay on botai's exchange double, and Python
sends its own market orders to the same double with the same key, each
after `rate_limiter.acquire` and `balance_manager.reserve_balance`. Counted
at the exchange: no order of either was refused for the rate limit (10006)
or for funds (110007)."""

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from botai import balance_manager, rate_limiter

ROOT = Path(__file__).resolve().parents[3]
BOTAI = ROOT / "target" / "release" / "botai"
KEY, SECRET = "botai-paper-key", "botai-paper-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bybit(base: str, path: str, body: dict) -> dict:
    """A signed Bybit V5 POST, as the venue documents it."""
    payload = json.dumps(body, separators=(",", ":"))
    ts, recv = str(int(time.time() * 1000)), "5000"
    sign = hmac.new(SECRET.encode(), (ts + KEY + recv + payload).encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(base + path, data=payload.encode(), method="POST", headers={
        "Content-Type": "application/json", "X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": recv, "X-BAPI-SIGN": sign})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return {"retCode": e.code, "retMsg": e.read().decode(errors="replace")}


def test_python_and_the_rust_engine_share_one_accounts_limits_and_funds(database, tmp_path):
    api, venue = free_port(), free_port()
    epoch = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
        "PGHOST": os.environ["PGHOST"], "PGPORT": os.environ["PGPORT"], "PGUSER": os.environ.get("PGUSER", ""),
        "PGDATABASE": database, "REPLAY_EPOCH": epoch, "REPLAY_FROM": "2022-01-12T00:00:00Z",
        "MARKET_DATA": "data/market/btc-perp-1m-2022-01.csv.gz",
        "REPLAY_SPEED": "600", "SIGNAL_THRESHOLD": "0", "API_LISTEN": f"127.0.0.1:{api}",
        "PAPER_LISTEN": f"127.0.0.1:{venue}", "LOG_DIR": str(tmp_path / "logs"), "REPORT_DIR": str(tmp_path / "reports"),
        "NO_COLOR": "1",
    }
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen([str(BOTAI), "run", "--mode=all"], cwd=ROOT, env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{venue}"

    def status() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/status", timeout=10) as r:
            return json.loads(r.read())

    async def python_trader():
        answers = {}
        no_funds = 0
        for i in range(120):
            wait = await rate_limiter.acquire("paper", "order")
            if wait > 0:
                await asyncio.sleep(wait)
            # 0.005 BTC near 43,000 USDT: about 215 USDT, held with room for price and fee.
            rid = await balance_manager.reserve_balance("paper", "USDT", Decimal("240"), f"python order {i}")
            if rid is None:
                no_funds += 1
                continue
            answer = await asyncio.to_thread(bybit, base, "/v5/order/create", {
                "category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.005",
                "marketUnit": "baseCoin", "orderLinkId": f"python-{i}"})
            if answer["retCode"] != 0 and not answers:
                print("first refusal:", answer)
            answers[answer["retCode"]] = answers.get(answer["retCode"], 0) + 1
            if answer["retCode"] == 0:
                await balance_manager.commit_reservation(rid)
            else:
                await balance_manager.release_reservation(rid)
        return answers, no_funds

    try:
        deadline = time.time() + 60
        while True:
            try:
                if status()["counters"]["orders"]["filled"] > 0:
                    break
            except Exception:
                pass
            assert time.time() < deadline, f"the engine did not trade:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        answers, no_funds = asyncio.run(python_trader())
        time.sleep(2)
        s = status()
        rejections = s["paper"]["rejections"]
        counters = s["counters"]["orders"]
        print(f"python: {answers} (retCode: orders), {no_funds} not sent for want of funds; "
              f"engine: {counters}; the exchange refused {rejections}")
        assert answers.get(0, 0) > 0, "Python's orders filled"
        assert set(answers) == {0}, f"every Python order was accepted: {answers}"
        assert counters["rejected_10006"] == 0 and counters["rejected_110007"] == 0, counters
        assert rejections == {"rate_limit": 0, "balance": 0}, f"the exchange refused orders: {rejections}"
    finally:
        daemon.kill()
        daemon.wait()
