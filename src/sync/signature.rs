//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the bytes after `whsec_`.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Messages older (or newer) than this are refused: a captured one cannot be replayed later.
pub const TOLERANCE_SECONDS: i64 = 300;

pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    format!("v1,{}", B64.encode(ctx.sign().as_ref()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing webhook headers")]
    Missing,
    #[error("the timestamp is too old or too far ahead")]
    Stale,
    #[error("no signature matches")]
    BadSignature,
}

/// Checks a message's headers and body against the key, at `now` (Unix seconds).
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(Refused::Missing);
    };
    let ts: i64 = timestamp.trim().parse().map_err(|_| Refused::Missing)?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(Refused::Stale);
    }
    let expected = sign(key, id, ts, body);
    let expected = expected.strip_prefix("v1,").unwrap_or_default();
    let matches = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| constant_time::verify_slices_are_equal(s.as_bytes(), expected.as_bytes()).is_ok());
    if matches {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_verifies() {
        // The example from the Standard Webhooks specification.
        let key = B64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            verify(
                &key,
                Some(id),
                Some("1614265330"),
                Some("v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
                body,
                ts + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn altered_stale_or_unsigned_messages_are_refused() {
        let key = b"0123456789abcdef";
        let sig = sign(key, "m1", 1000, b"{}");
        assert_eq!(
            verify(key, Some("m1"), Some("1000"), Some(&sig), b"{ }", 1000),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(key, Some("m2"), Some("1000"), Some(&sig), b"{}", 1000),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(key, Some("m1"), Some("1000"), Some(&sig), b"{}", 1000 + 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(key, Some("m1"), Some("1000"), Some(&sig), b"{}", 1000 - 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(key, Some("m1"), None, Some(&sig), b"{}", 1000),
            Err(Refused::Missing)
        );
        assert_eq!(
            verify(
                b"another key",
                Some("m1"),
                Some("1000"),
                Some(&sig),
                b"{}",
                1000
            ),
            Err(Refused::BadSignature)
        );
    }
}
