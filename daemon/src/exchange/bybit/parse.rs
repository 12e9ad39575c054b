//! Bybit V5's answers read into botai's terms: orders, wallets (the
//! account's own funds, never borrowed money), instruments, positions at
//! the venue's entry price, an API key's rights and the limit headers.
//! The models (models/) say what the venue sends; this says what it
//! means for botai.

use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::models;
use crate::exchange::{AssetBalance, Category, ExchangeError, Instrument, KeyInfo, OrderState, Position, Side, Wallet};

/// X-Bapi-Limit-Status, X-Bapi-Limit, X-Bapi-Limit-Reset-Timestamp.
pub fn limit_headers(headers: &HeaderMap) -> Option<(i32, i32, Option<DateTime<Utc>>)> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let remaining = i32::try_from(get("X-Bapi-Limit-Status")?).ok()?;
    let limit = i32::try_from(get("X-Bapi-Limit")?).ok()?;
    let reset = get("X-Bapi-Limit-Reset-Timestamp").and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    (limit > 0 && remaining >= 0).then_some((remaining, limit, reset))
}

/// A result of the venue's answer as its model type; an answer that does
/// not parse is an unknown outcome, said with the path.
pub(super) fn model<T: DeserializeOwned>(path: &str, result: Value) -> Result<T, ExchangeError> {
    serde_json::from_value(result).map_err(|e| {
        ExchangeError::Transport(format!("{path}: the answer does not parse as the venue documents it: {e}"))
    })
}

pub(super) fn required(figure: models::Figure, field: &str) -> Result<Decimal, ExchangeError> {
    figure.required(field).map_err(ExchangeError::Transport)
}

/// An order from Bybit's /v5/order/realtime and /history shape (and the
/// private stream's `order` topic).
pub fn parse_order(o: &models::Order, category: Category) -> Result<OrderState, ExchangeError> {
    let side = match o.side {
        models::Side::Buy => Side::Buy,
        models::Side::Sell => Side::Sell,
    };
    let filled_qty = o.cum_exec_qty.or_zero();
    let value = o.cum_exec_value.or_zero();
    let avg_price = match o.avg_price.or_zero() {
        p if p > Decimal::ZERO => p,
        _ if filled_qty > Decimal::ZERO => (value / filled_qty).round_dp(8),
        _ => Decimal::ZERO,
    };
    // Bybit charges a spot BUY's fee in the base coin; the order names its
    // fee currency on the stream only, otherwise it follows from the symbol.
    let fee_asset = match o.fee_currency.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None => match (category, side) {
            (Category::Spot, Side::Buy) => base_of(&o.symbol).to_owned(),
            _ => quote_of(&o.symbol).to_owned(),
        },
    };
    let venue_reason =
        Some(o.reject_reason.as_str()).filter(|r| !r.is_empty() && *r != "EC_NoError").map(str::to_owned);
    Ok(OrderState {
        exchange_order_id: o.order_id.clone(),
        client_order_id: o.order_link_id.clone(),
        symbol: o.symbol.clone(),
        side,
        status: o.order_status.botai(),
        qty: required(o.qty, "qty")?,
        filled_qty,
        avg_price,
        fee: o.cum_exec_fee.or_zero(),
        fee_asset,
        venue_reason,
        realised_pnl: None,
    })
}

/// The quote coin of a USDT/USDC symbol.
pub(super) fn quote_of(symbol: &str) -> &str {
    ["USDT", "USDC", "USD"].into_iter().find(|q| symbol.ends_with(q)).unwrap_or("USDT")
}

fn base_of(symbol: &str) -> &str {
    symbol.strip_suffix(quote_of(symbol)).unwrap_or(symbol)
}

/// A wallet from /v5/account/wallet-balance (a unified account): each
/// coin's own funds and what is available by the venue's figures, never
/// counting borrowed money ([`models::WalletCoin::funds`]).
pub fn parse_wallet(accounts: &[models::WalletAccount], as_of: DateTime<Utc>) -> Result<Wallet, ExchangeError> {
    let account = accounts
        .first()
        .ok_or_else(|| ExchangeError::Transport("wallet-balance without an account in its list".into()))?;
    let mut assets = Vec::new();
    for c in &account.coin {
        let funds = c.funds(account).map_err(ExchangeError::Transport)?;
        assets.push(AssetBalance {
            asset: c.coin.clone(),
            total: funds.own,
            available: funds.available,
            locked: funds.locked,
        });
    }
    Ok(Wallet { as_of, assets })
}

/// Trading rules from /v5/market/instruments-info (spot's basePrecision and
/// minOrderAmt, linear's qtyStep and minNotionalValue).
pub fn parse_instrument(i: &models::InstrumentInfo) -> Result<Instrument, ExchangeError> {
    let lot = &i.lot_size_filter;
    let step = lot.qty_step.or(lot.base_precision).unwrap_or_default();
    let min_notional = lot.min_notional_value.or(lot.min_order_amt).unwrap_or_default();
    Ok(Instrument {
        symbol: i.symbol.clone(),
        base: i.base_coin.clone(),
        quote: i.quote_coin.clone(),
        qty_step: required(step, "qtyStep")?,
        min_qty: required(lot.min_order_qty, "minOrderQty")?,
        min_notional: min_notional.or_zero(),
        tick_size: required(i.price_filter.tick_size, "tickSize")?,
    })
}

/// A position of /v5/position/list: signed, at the venue's entry price
/// (`avgPrice`); a hedge-mode leg says which (positionIdx 1 Buy, 2 Sell).
pub fn parse_position(p: &models::Position) -> Result<Option<Position>, ExchangeError> {
    let size = p.size.or_zero();
    if size.is_zero() {
        return Ok(None);
    }
    let signed = match p.side {
        models::PositionSide::Buy => size,
        models::PositionSide::Sell => -size,
        models::PositionSide::Flat => {
            return Err(ExchangeError::Transport(format!("{} position of size {size} without a side", p.symbol)))
        }
    };
    let leg = match p.position_idx {
        0 => None,
        1 => Some(Side::Buy),
        2 => Some(Side::Sell),
        other => return Err(ExchangeError::Transport(format!("{} positionIdx {other}", p.symbol))),
    };
    let entry_price = required(p.avg_price, &format!("{} avgPrice", p.symbol))?;
    Ok(Some(Position { symbol: p.symbol.clone(), size: signed, entry_price, leg }))
}

/// What a coin of a wallet is worth to botai: the account's own funds
/// (borrowing never counts) and what of them is free for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoinFunds {
    pub own: Decimal,
    pub available: Decimal,
    pub locked: Decimal,
}

impl models::WalletCoin {
    /// The coin's own funds and what is available, by the venue's figures
    /// (v5/account/wallet-balance):
    /// - own = walletBalance − spotBorrow (borrowAmount when spotBorrow is
    ///   not given); unknown borrowing in a unified account is an error,
    ///   never taken as none;
    /// - available = own − locked − totalPositionIM − totalOrderIM − bonus
    ///   ("walletBalance - totalPositionIM - totalOrderIM - locked - bonus"
    ///   of isolated margin), no more than `availableToWithdraw` when
    ///   given, no more than the account's `totalAvailableBalance` (USD)
    ///   at the coin's price when given (cross margin); never below 0.
    pub fn funds(&self, account: &models::WalletAccount) -> Result<CoinFunds, String> {
        let coin = &self.coin;
        let wallet = self.wallet_balance.required(&format!("{coin} walletBalance"))?;
        let borrowed = match (self.spot_borrow.known(), self.borrow_amount.known()) {
            (Some(b), _) | (None, Some(b)) => b.max(Decimal::ZERO),
            (None, None) if account.account_type == models::AccountType::Unified => {
                return Err(format!(
                    "{coin}: spotBorrow and borrowAmount are both empty; borrowing unknown, own funds unknown"
                ))
            }
            (None, None) => Decimal::ZERO,
        };
        let own = (wallet - borrowed).max(Decimal::ZERO);
        let held = self.locked.or_zero()
            + self.total_position_im.or_zero()
            + self.total_order_im.or_zero()
            + self.bonus.or_zero();
        let mut available = own - held;
        if let Some(w) = self.available_to_withdraw.known() {
            available = available.min(w);
        }
        if let (Some(usd), Some(price)) = (account.total_available_balance.known(), self.usd_price()) {
            available = available.min(usd / price);
        }
        let available = available.clamp(Decimal::ZERO, own);
        Ok(CoinFunds { own, available, locked: own - available })
    }

    /// The coin's price in USD, from its own usdValue and equity.
    fn usd_price(&self) -> Option<Decimal> {
        let (usd, equity) = (self.usd_value.known()?, self.equity.known()?);
        (equity > Decimal::ZERO && usd > Decimal::ZERO).then(|| usd / equity)
    }
}

/// /v5/user/query-api: `readOnly` 1 is a key that cannot trade; a
/// `Withdraw` in its `Wallet` permissions is a key that can move funds out.
pub fn parse_key_info(key: &models::ApiKeyInfo) -> KeyInfo {
    let group = |name: &str| key.permissions.get(name).map(Vec::as_slice).unwrap_or_default();
    let read_only = key.read_only == 1;
    let can_trade = !read_only && ["Spot", "ContractTrade", "Derivatives"].iter().any(|g| !group(g).is_empty());
    let can_withdraw = group("Wallet").iter().any(|p| p == "Withdraw");
    let permissions = key
        .permissions
        .iter()
        .filter(|(_, words)| !words.is_empty())
        .map(|(name, words)| format!("{name}: {}", words.join("+")))
        .collect::<Vec<_>>()
        .join(", ");
    KeyInfo { read_only, can_trade, can_withdraw, ips: key.ips.clone(), permissions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::OrderStatus;
    use serde_json::json;
    use serde_json::Value;

    fn coin(wallet: &str, borrow: &str, withdraw: &str) -> models::WalletCoin {
        serde_json::from_value(serde_json::json!({
            "coin": "USDT", "equity": "1000", "usdValue": "1000", "walletBalance": wallet, "locked": "0",
            "spotBorrow": borrow, "borrowAmount": borrow, "availableToWithdraw": withdraw,
            "totalOrderIM": "", "totalPositionIM": "", "bonus": "0"}))
        .unwrap()
    }

    fn unified(available: &str) -> models::WalletAccount {
        serde_json::from_value(serde_json::json!({"accountType": "UNIFIED", "totalAvailableBalance": available,
            "coin": []}))
        .unwrap()
    }

    #[test]
    fn borrowed_money_is_never_the_accounts_own() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let f = coin("1200", "200", "800").funds(&unified("")).unwrap();
        assert_eq!((f.own, f.available), (d("1000"), d("800")));
        // availableToWithdraw deprecated (""): own funds less what is held.
        let f = coin("1200", "200", "").funds(&unified("")).unwrap();
        assert_eq!((f.own, f.available), (d("1000"), d("1000")));
        // Cross margin: no more than the account's available balance.
        let f = coin("1200", "200", "").funds(&unified("650")).unwrap();
        assert_eq!(f.available, d("650"));
        // Borrowing unknown: no figure at all.
        assert!(coin("1200", "", "").funds(&unified("")).unwrap_err().contains("borrowing unknown"));
        assert!(coin("", "0", "").funds(&unified("")).unwrap_err().contains("walletBalance is empty"));
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../data/bybit/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
    }

    #[test]
    fn parses_bybit_wallet_balance() {
        let body = fixture("http_get_wallet_balance.json");
        let page: models::Page<models::WalletAccount> = model("wallet", body["result"].clone()).unwrap();
        let w = parse_wallet(&page.list, Utc::now()).unwrap();
        // The recorded account says 3.00326056 USD is available under cross
        // margin (totalAvailableBalance): that binds the USDT coin's 1000.50.
        let usdt = w.assets.iter().find(|a| a.asset == "USDT").unwrap();
        assert_eq!(usdt.total, Decimal::new(100050, 2));
        assert_eq!(usdt.available, Decimal::new(300326056, 8));
        // ETH: a walletBalance of 0 and 0.06142 borrowed is nothing of its own.
        let eth = w.assets.iter().find(|a| a.asset == "ETH").unwrap();
        assert_eq!((eth.total, eth.available), (Decimal::ZERO, Decimal::ZERO));
    }

    #[test]
    fn parses_bybit_orders() {
        let body = fixture("http_get_orders_realtime.json");
        let o: models::Order = serde_json::from_value(body["result"]["list"][0].clone()).unwrap();
        let o = parse_order(&o, Category::Linear).unwrap();
        assert_eq!(o.client_order_id, "client-open-1");
        assert_eq!(o.status, OrderStatus::New);
        assert_eq!(o.qty, Decimal::new(10, 3));
        assert_eq!(o.filled_qty, Decimal::ZERO);
        assert!(!o.status.is_final());
    }

    #[test]
    fn parses_every_order_of_the_recorded_history() {
        let body = fixture("http_get_orders_history_with_duplicate.json");
        let list = body["result"]["list"].as_array().unwrap();
        assert!(!list.is_empty());
        for o in list {
            let parsed = parse_order(&serde_json::from_value(o.clone()).unwrap(), Category::Linear).unwrap();
            assert_eq!(parsed.exchange_order_id, o["orderId"].as_str().unwrap());
            if parsed.status == OrderStatus::Filled {
                assert_eq!(parsed.filled_qty, parsed.qty, "{o}");
            }
        }
    }

    #[test]
    fn parses_the_private_stream_s_order_push() {
        let push = fixture("ws_account_order_filled.json");
        let o = parse_order(&serde_json::from_value(push["data"][0].clone()).unwrap(), Category::Linear).unwrap();
        assert_eq!(o.status, OrderStatus::Filled);
        assert!(o.filled_qty > Decimal::ZERO && o.avg_price > Decimal::ZERO);
    }

    #[test]
    fn limit_headers_parse_and_refuse_nonsense() {
        let mut h = HeaderMap::new();
        h.insert("X-Bapi-Limit-Status", "7".parse().unwrap());
        h.insert("X-Bapi-Limit", "10".parse().unwrap());
        h.insert("X-Bapi-Limit-Reset-Timestamp", "1700000000123".parse().unwrap());
        let (remaining, limit, reset) = limit_headers(&h).unwrap();
        assert_eq!((remaining, limit), (7, 10));
        assert_eq!(reset.unwrap().timestamp_millis(), 1_700_000_000_123);
        h.insert("X-Bapi-Limit", "0".parse().unwrap());
        assert!(limit_headers(&h).is_none(), "a limit of 0 is no limit header");
        h.insert("X-Bapi-Limit", "ten".parse().unwrap());
        assert!(limit_headers(&h).is_none());
    }

    #[test]
    fn a_key_that_can_withdraw_is_seen() {
        let info = json!({"readOnly": 0, "ips": ["*"], "permissions": {
            "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
            "Wallet": ["AccountTransfer", "SubMemberTransfer", "Withdraw"], "Options": []}});
        let k = parse_key_info(&serde_json::from_value(info).unwrap());
        assert!(k.can_trade && k.can_withdraw && !k.read_only);
        assert_eq!(
            k.permissions,
            "ContractTrade: Order+Position, Spot: SpotTrade, Wallet: AccountTransfer+SubMemberTransfer+Withdraw"
        );
        let read_only = parse_key_info(
            &serde_json::from_value(json!({"readOnly": 1, "permissions": {"Spot": ["SpotTrade"]}})).unwrap(),
        );
        assert!(!read_only.can_trade && !read_only.can_withdraw);
    }

    #[test]
    fn instruments_of_both_categories() {
        let spot = json!({"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT",
            "lotSizeFilter": {"basePrecision": "0.000001", "minOrderQty": "0.000048", "minOrderAmt": "1"},
            "priceFilter": {"tickSize": "0.01"}});
        let linear = json!({"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT",
            "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001", "minNotionalValue": "5"},
            "priceFilter": {"tickSize": "0.10"}});
        let s = parse_instrument(&serde_json::from_value(spot).unwrap()).unwrap();
        assert_eq!((s.qty_step, s.min_notional), (Decimal::new(1, 6), Decimal::ONE));
        let l = parse_instrument(&serde_json::from_value(linear).unwrap()).unwrap();
        assert_eq!((l.qty_step, l.min_notional), (Decimal::new(1, 3), Decimal::new(5, 0)));
    }
}
