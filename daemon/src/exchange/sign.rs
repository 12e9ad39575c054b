//! Request signatures as the venues document them: HMAC-SHA256, hex.
//!
//! Bybit V5 signs `timestamp + api_key + recv_window + payload`, where the
//! payload is the query string of a GET or the JSON body of a POST, byte
//! for byte as sent. Binance signs the query string (and the form body).
//! The double verifies with the same functions, but the signatures it
//! checks also come from ccxt, a client nobody here wrote.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lower-case hex HMAC-SHA256 of `payload` under `secret`.
pub fn hmac_sha256_hex(secret: &str, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Bybit V5's signature of a request.
pub fn bybit(secret: &str, timestamp_ms: i64, api_key: &str, recv_window_ms: u64, payload: &str) -> String {
    hmac_sha256_hex(secret, &format!("{timestamp_ms}{api_key}{recv_window_ms}{payload}"))
}

/// Whether `signature` (hex, any case) is `secret`'s over `payload`, in
/// constant time.
pub fn verify_hex(secret: &str, payload: &str, signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn binance_documented_example() {
        // The example of Binance's "SIGNED Endpoint Examples for POST /api/v3/order" (HMAC key and query from the docs).
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(hmac_sha256_hex(secret, query), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
    }

    #[test]
    fn verification_refuses_any_change() {
        let s = bybit("secret", 1_700_000_000_000, "key", 5000, "category=spot");
        assert!(verify_hex("secret", "1700000000000key5000category=spot", &s));
        assert!(verify_hex("secret", "1700000000000key5000category=spot", &s.to_uppercase()));
        assert!(!verify_hex("secret", "1700000000000key5000category=linear", &s));
        assert!(!verify_hex("other", "1700000000000key5000category=spot", &s));
        assert!(!verify_hex("secret", "1700000000000key5000category=spot", "zz"));
    }
}
