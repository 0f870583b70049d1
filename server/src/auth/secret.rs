//! How a device secret is kept: a secret Vigil generated (192 random bits) as a keyed
//! SHA-256 digest, checked in a microsecond; a secret a person chose as an Argon2id hash,
//! slow on purpose because it may be guessable. Only the hash is ever stored.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use thiserror::Error;

use super::token::hex;

/// The prefix of a keyed digest: `$vigil-hmac-sha256$<salt: 32 hex>$<mac: 64 hex>`.
pub const KEYED_PREFIX: &str = "$vigil-hmac-sha256$";
/// Random bytes in a generated secret: 192 bits, beyond any guessing, so a fast digest
/// protects it as well as a slow one would.
pub const GENERATED_BYTES: usize = 24;

/// Why a secret could not be hashed or a stored hash read.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("`secret_hash` is not a keyed digest or an Argon2 PHC string ({0}); `vigil device add` prints one")]
    BadHash(String),
    #[error("cannot hash the secret: {0}")]
    Hashing(String),
}

/// A stored secret hash, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretHash {
    /// HMAC-SHA256 of the secret, keyed with a per-device random salt.
    Keyed { salt: [u8; 16], mac: [u8; 32] },
    /// An Argon2 PHC string.
    Argon2(String),
    /// No secret: the device logs in with a client certificate only.
    None,
}

impl SecretHash {
    /// Parses what `secret_hash` holds (empty: no secret).
    pub fn parse(text: &str) -> Result<SecretHash, SecretError> {
        if text.is_empty() {
            return Ok(SecretHash::None);
        }
        if let Some(rest) = text.strip_prefix(KEYED_PREFIX) {
            let bad = || {
                SecretError::BadHash(format!(
                    "a keyed digest is `{KEYED_PREFIX}` then 32 hex digits, `$` and 64 hex digits"
                ))
            };
            let (salt, mac) = rest.split_once('$').ok_or_else(bad)?;
            return Ok(SecretHash::Keyed {
                salt: unhex(salt).ok_or_else(bad)?,
                mac: unhex(mac).ok_or_else(bad)?,
            });
        }
        PasswordHash::new(text).map_err(|e| SecretError::BadHash(e.to_string()))?;
        Ok(SecretHash::Argon2(text.to_string()))
    }

    /// Whether checking a secret against this costs an Argon2 computation.
    pub fn is_slow(&self) -> bool {
        matches!(self, SecretHash::Argon2(_))
    }

    /// Whether `secret` is the one hashed (constant time in the secret's content; blocking
    /// for tens of milliseconds for an Argon2 hash).
    pub fn verify(&self, secret: &[u8]) -> bool {
        match self {
            SecretHash::Keyed { salt, mac } => keyed(salt, secret).verify_slice(mac).is_ok(),
            SecretHash::Argon2(phc) => PasswordHash::new(phc)
                .is_ok_and(|h| Argon2::default().verify_password(secret, &h).is_ok()),
            SecretHash::None => false,
        }
    }
}

/// The keyed digest of a secret Vigil generated.
pub fn hash_generated(secret: &str) -> Result<String, SecretError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| SecretError::Hashing(e.to_string()))?;
    let mac = keyed(&salt, secret.as_bytes()).finalize().into_bytes();
    Ok(format!("{KEYED_PREFIX}{}${}", hex(&salt), hex(&mac)))
}

/// The Argon2id hash of a secret a person chose, with a fresh salt (RFC 9106 / OWASP
/// parameters, the crate's defaults: 19 MiB, 2 passes).
pub fn hash_chosen(secret: &str) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hashing(e.to_string()))
}

/// A new random device secret ([`GENERATED_BYTES`], hex).
pub fn generate() -> Result<String, SecretError> {
    let mut bytes = [0u8; GENERATED_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Hashing(e.to_string()))?;
    Ok(hex(&bytes))
}

fn keyed(salt: &[u8], secret: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes a key of any length");
    mac.update(secret);
    mac
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_gets_a_keyed_digest_that_verifies_only_itself() {
        let secret = generate().unwrap();
        assert_eq!(secret.len(), 2 * GENERATED_BYTES);
        let stored = hash_generated(&secret).unwrap();
        assert!(stored.starts_with(KEYED_PREFIX), "{stored}");
        let hash = SecretHash::parse(&stored).unwrap();
        assert!(!hash.is_slow());
        assert!(hash.verify(secret.as_bytes()));
        assert!(!hash.verify(b"not the secret"));
        assert!(!hash.verify(&secret.as_bytes()[1..]));
        // The same secret hashes differently each time (a fresh salt).
        assert_ne!(hash_generated(&secret).unwrap(), stored);
        // Known answer: HMAC-SHA256 with a zero key of 16 bytes over "abc".
        let known = SecretHash::Keyed {
            salt: [0; 16],
            mac: unhex("fd7adb152c05ef80dccf50a1fa4c05d5a3ec6da95575fc312ae7c5d091836351").unwrap(),
        };
        assert!(known.verify(b"abc"));
    }

    #[test]
    fn a_chosen_secret_gets_argon2_and_both_forms_parse() {
        let stored = hash_chosen("correct horse battery").unwrap();
        let hash = SecretHash::parse(&stored).unwrap();
        assert!(hash.is_slow());
        assert!(hash.verify(b"correct horse battery"));
        assert!(!hash.verify(b"wrong horse battery"));
        assert_eq!(SecretHash::parse("").unwrap(), SecretHash::None);
        assert!(!SecretHash::None.verify(b""));
        assert!(SecretHash::parse("plain").is_err());
        assert!(SecretHash::parse(&format!("{KEYED_PREFIX}00$11")).is_err());
        assert!(SecretHash::parse(&format!("{KEYED_PREFIX}{}", "0".repeat(97))).is_err());
    }
}
