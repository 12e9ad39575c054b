"""ccxt, a Bybit client nobody at botai wrote, trading against botai's
exchange double with nothing changed but its base URLs.

    python bybit.py URL API_KEY API_SECRET trade      the unified calls a user makes
    python bybit.py URL API_KEY API_SECRET actions    the actions botai's adapter also does (request equality)
    python bybit.py URL API_KEY API_SECRET load N     N cancel requests on the account's order limit
    python bybit.py URL API_KEY API_SECRET steady R S R cancel requests a second for S seconds

Prints one JSON object; exits non-zero with the traceback when a call fails.
"""
import json
import sys
import time

import ccxt


def client(url, key, secret):
    return ccxt.bybit({
        "apiKey": key,
        "secret": secret,
        "enableRateLimit": False,
        "urls": {"api": {name: url for name in ("spot", "futures", "v2", "public", "private")}},
    })


def wait_status(x, order_id, symbol, wanted, seconds=10.0):
    deadline = time.time() + seconds
    while True:
        o = x.fetch_order(order_id, symbol, {"acknowledged": True})
        if o["status"] in wanted or time.time() > deadline:
            return o
        time.sleep(0.05)


def trade(x):
    out = {}
    markets = x.load_markets()
    out["markets"] = sorted(m for m in markets if markets[m]["active"])
    spot, perp = markets["BTC/USDT"], markets["BTC/USDT:USDT"]
    out["spot_amount_step"] = spot["precision"]["amount"]
    out["perp_amount_step"] = perp["precision"]["amount"]
    out["usdt_before"] = x.fetch_balance()["USDT"]["total"]
    out["positions_before"] = len(x.fetch_positions(["BTC/USDT:USDT"]))
    market = x.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "ccxt-spot-market"})
    filled = wait_status(x, market["id"], "BTC/USDT", ("closed",))
    out["spot_market"] = {"status": filled["status"], "filled": filled["filled"], "fee": filled["fee"]}
    limit = x.create_order("BTC/USDT", "limit", "buy", 0.001, 20000, {"clientOrderId": "ccxt-spot-limit"})
    out["open_orders"] = [o["clientOrderId"] for o in x.fetch_open_orders("BTC/USDT")]
    x.cancel_order(limit["id"], "BTC/USDT")
    out["spot_limit"] = wait_status(x, limit["id"], "BTC/USDT", ("canceled",))["status"]
    perp_order = x.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, {"clientOrderId": "ccxt-perp"})
    out["perp_market"] = wait_status(x, perp_order["id"], "BTC/USDT:USDT", ("closed",))["status"]
    positions = x.fetch_positions(["BTC/USDT:USDT"])
    out["position"] = {"side": positions[0]["side"], "contracts": positions[0]["contracts"]}
    out["trades"] = len(x.fetch_my_trades("BTC/USDT:USDT"))
    balance = x.fetch_balance()
    out["btc_after"] = balance["BTC"]["total"]
    return out


def actions(x):
    """The actions of botai's adapter, through ccxt's unified API."""
    x.load_markets()
    x.fetch_balance()
    x.fetch_positions()
    x.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "eq-market"})
    x.create_order("BTC/USDT", "limit", "buy", 0.001, 20000, {"clientOrderId": "eq-limit"})
    x.cancel_order(None, "BTC/USDT", {"orderLinkId": "eq-limit"})
    return {"done": True}


def load(x, n):
    codes = []
    for i in range(n):
        try:
            x.cancel_order(None, "BTC/USDT", {"orderLinkId": f"no-such-order-{i}"})
            codes.append(0)
        except ccxt.OrderNotFound:
            codes.append(110001)
        except ccxt.RateLimitExceeded:
            codes.append(10006)
    return {"codes": codes}


def steady(x, rate, seconds):
    """Cancels of orders that do not exist, `rate` a second: a script of the
    account's owner spending the order limit botai shares."""
    codes = {}
    deadline = time.time() + seconds
    i = 0
    while time.time() < deadline:
        started = time.time()
        try:
            x.cancel_order(None, "BTC/USDT", {"orderLinkId": f"steady-{i}"})
            code = 0
        except ccxt.OrderNotFound:
            code = 110001
        except ccxt.RateLimitExceeded:
            code = 10006
        codes[code] = codes.get(code, 0) + 1
        i += 1
        time.sleep(max(0.0, 1.0 / rate - (time.time() - started)))
    return {"codes": codes}


def main():
    url, key, secret, what = sys.argv[1:5]
    x = client(url, key, secret)
    if what == "trade":
        result = trade(x)
    elif what == "actions":
        result = actions(x)
    elif what == "steady":
        x.load_markets()
        result = steady(x, float(sys.argv[5]), float(sys.argv[6]))
    elif what == "load":
        x.load_markets()
        result = load(x, int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown action {what}")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
