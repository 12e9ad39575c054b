"""ccxt's Binance USDⓈ-M client against botai's exchange double, with
nothing changed but its base URLs.

    python binanceusdm.py URL API_KEY API_SECRET trade     the unified calls a user makes
    python binanceusdm.py URL API_KEY API_SECRET actions   the actions botai's adapter also does

Prints one JSON object; exits non-zero with the traceback when a call fails.
"""
import json
import sys
import time

import ccxt


def client(url, key, secret):
    api = {name: f"{url}/fapi/{version}" for name, version in (
        ("fapiPublic", "v1"), ("fapiPublicV2", "v2"), ("fapiPublicV3", "v3"),
        ("fapiPrivate", "v1"), ("fapiPrivateV2", "v2"), ("fapiPrivateV3", "v3"))}
    api["fapiData"] = f"{url}/futures/data"
    api["sapi"] = f"{url}/sapi/v1"
    return ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False, "urls": {"api": api}})


def wait_status(x, order_id, symbol, wanted, seconds=10.0):
    deadline = time.time() + seconds
    while True:
        o = x.fetch_order(order_id, symbol)
        if o["status"] in wanted or time.time() > deadline:
            return o
        time.sleep(0.05)


def trade(x):
    out = {}
    markets = x.load_markets()
    out["markets"] = sorted(markets)
    out["amount_step"] = markets["BTC/USDT:USDT"]["precision"]["amount"]
    out["usdt_before"] = x.fetch_balance()["USDT"]["total"]
    market = x.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, {"clientOrderId": "ccxt-market"})
    out["market"] = wait_status(x, market["id"], "BTC/USDT:USDT", ("closed",))["status"]
    limit = x.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 20000, {"clientOrderId": "ccxt-limit"})
    out["open_orders"] = [o["clientOrderId"] for o in x.fetch_open_orders("BTC/USDT:USDT")]
    x.cancel_order(limit["id"], "BTC/USDT:USDT")
    out["limit"] = wait_status(x, limit["id"], "BTC/USDT:USDT", ("canceled",))["status"]
    positions = x.fetch_positions(["BTC/USDT:USDT"])
    out["position"] = {"side": positions[0]["side"], "contracts": positions[0]["contracts"]}
    return out


def actions(x):
    x.load_markets()
    x.fetch_balance()
    x.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, {"clientOrderId": "eq-market"})
    x.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 20000, {"clientOrderId": "eq-limit"})
    x.fetch_order(None, "BTC/USDT:USDT", {"origClientOrderId": "eq-limit"})
    x.cancel_order(None, "BTC/USDT:USDT", {"origClientOrderId": "eq-limit"})
    return {"done": True}


def main():
    url, key, secret, what = sys.argv[1:5]
    x = client(url, key, secret)
    result = trade(x) if what == "trade" else actions(x)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
