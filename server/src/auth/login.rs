//! A device's login with a secret, under a budget: the source address's failure throttle
//! first, then the secret's check (at once for a keyed digest, on the bounded Argon2 pool
//! otherwise). Transport-neutral: MQTT's CONNECT calls it, and so could any other.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::device::{DeviceBook, SecretCheck};
use super::slow_checks::{Busy, SlowChecks};
use super::throttle::{AddressThrottle, Throttled};

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown device or wrong secret (the two are not told apart).
    BadCredentials,
    /// The address failed too recently or too often; the secret was not checked.
    Throttled(Throttled),
    /// The Argon2 pool and its queue were full; the secret was not checked.
    Busy,
}

/// What device logins share: the address throttle and the Argon2 pool.
pub struct Logins {
    pub throttle: AddressThrottle,
    pub slow: SlowChecks,
}

impl Logins {
    /// Checks `secret` for device `id`, presented from `addr`: the device's patient, or why
    /// not. A wrong secret counts against the address; a refusal before the check does not.
    pub async fn device(
        &self,
        book: &Arc<DeviceBook>,
        addr: IpAddr,
        id: &str,
        secret: &[u8],
    ) -> Result<String, LoginRefusal> {
        self.throttle
            .check(addr, Instant::now())
            .map_err(LoginRefusal::Throttled)?;
        let patient = match book.begin(id, secret) {
            SecretCheck::Done(patient) => patient,
            SecretCheck::Slow(check) => {
                let (book, secret) = (book.clone(), secret.to_vec());
                self.slow
                    .run(move || book.finish(check, &secret))
                    .await
                    .map_err(|Busy| LoginRefusal::Busy)?
            }
        };
        patient.ok_or_else(|| {
            self.throttle.failed(addr, Instant::now());
            LoginRefusal::BadCredentials
        })
    }
}
