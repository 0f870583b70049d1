//! Bearer tokens: 256 random bits, shown once; the configuration keeps only their SHA-256.

use sha2::{Digest as _, Sha256};

/// Every token starts with this, so a leaked one is recognisable in a secret scanner.
pub const PREFIX: &str = "vigil_";

/// SHA-256 of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Digest, String> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "`sha256` must be 64 hex digits (got {}); `vigil token create` prints it",
                bytes.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| "`sha256` is not hex".to_string())?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| "`sha256` is not hex".to_string())?;
        }
        Ok(Digest(out))
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

/// The token of an `Authorization: Bearer <token>` header value (either capitalisation of
/// the scheme), for gRPC metadata and HTTP headers alike.
pub fn bearer(header_value: &str) -> Option<&str> {
    header_value
        .strip_prefix("Bearer ")
        .or_else(|| header_value.strip_prefix("bearer "))
}

/// The SHA-256 of `token`.
pub fn digest(token: &str) -> Digest {
    Digest(Sha256::digest(token.as_bytes()).into())
}

/// A new token from the operating system's random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_round_trip_through_hex() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        let d = digest(&a);
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert_ne!(digest(&b), d);
        // Known answer: SHA-256("abc").
        assert_eq!(
            digest("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Digest::from_hex("zz").is_err());
        assert!(Digest::from_hex(&"g".repeat(64)).is_err());
    }
}
