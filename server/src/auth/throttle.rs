//! Failed logins per source address: after a few free failures (a typo, a retry) the
//! address waits a growing delay before its next attempt is checked, and after
//! `max_failures` it is locked out for a while. A device id is never locked out as such: anyone who reads a cuff's serial number
//! could then lock that patient's device out. IPv6 addresses count by their /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Addresses tracked at once; beyond, the least recently failed entry is forgotten.
pub const MAX_ADDRESSES: usize = 65_536;
/// The longest wait between two checked attempts before the lockout.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures an address may have before it must wait: a person mistyping a secret, or a
/// device retrying, is not slowed down at once.
pub const FREE_FAILURES: u32 = 3;

/// How failed logins are limited (`[auth]` `failure_delay`, `max_failures`, `lockout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// The wait after the first failure beyond [`FREE_FAILURES`]; doubled with each further
    /// one, up to [`MAX_DELAY`].
    pub failure_delay: Duration,
    /// Failures (without `lockout` passing in between) that lock the address out; 0: never.
    pub max_failures: u32,
    /// How long a locked-out address is refused, and how long an address's failures are
    /// remembered after its last one.
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            failure_delay: Duration::from_millis(100),
            max_failures: 20,
            lockout: Duration::from_secs(300),
        }
    }
}

/// Why an attempt was refused without checking its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Within the delay after the address's last failure.
    Waiting,
    /// Locked out after too many failures.
    LockedOut,
}

impl Throttled {
    pub fn as_str(self) -> &'static str {
        match self {
            Throttled::Waiting => "throttled",
            Throttled::LockedOut => "locked_out",
        }
    }
}

struct Record {
    failures: u32,
    last_failure: Instant,
}

pub struct AddressThrottle {
    policy: ThrottlePolicy,
    addresses: Mutex<HashMap<IpAddr, Record>>,
}

impl AddressThrottle {
    pub fn new(policy: ThrottlePolicy) -> AddressThrottle {
        AddressThrottle {
            policy,
            addresses: Mutex::default(),
        }
    }

    /// Whether an attempt from `addr` may be checked now.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Throttled> {
        let addresses = self.addresses.lock();
        let Some(r) = addresses.get(&key(addr)) else {
            return Ok(());
        };
        let since = now.saturating_duration_since(r.last_failure);
        if since >= self.policy.lockout {
            return Ok(());
        }
        if self.policy.max_failures > 0 && r.failures >= self.policy.max_failures {
            return Err(Throttled::LockedOut);
        }
        if since < self.delay(r.failures) {
            return Err(Throttled::Waiting);
        }
        Ok(())
    }

    /// Records a failed attempt from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut addresses = self.addresses.lock();
        let lockout = self.policy.lockout;
        if addresses.len() >= MAX_ADDRESSES && !addresses.contains_key(&key(addr)) {
            addresses.retain(|_, r| now.saturating_duration_since(r.last_failure) < lockout);
            if addresses.len() >= MAX_ADDRESSES {
                let oldest = addresses
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    addresses.remove(&oldest);
                }
            }
        }
        let r = addresses.entry(key(addr)).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(r.last_failure) >= lockout {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
    }

    /// Addresses with failures remembered (for the gauge).
    pub fn tracked(&self) -> usize {
        self.addresses.lock().len()
    }

    /// The wait after `failures` failures.
    fn delay(&self, failures: u32) -> Duration {
        if failures <= FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES - 1).min(16);
        (self.policy.failure_delay * (1u32 << doublings)).min(MAX_DELAY)
    }
}

/// The unit an address counts as: itself for IPv4, its /64 for IPv6 (one subscriber's
/// allocation, which an attacker can otherwise walk through).
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            failure_delay: Duration::from_millis(100),
            max_failures: 6,
            lockout: Duration::from_secs(60),
        }
    }

    #[test]
    fn each_failure_doubles_the_wait_then_the_address_is_locked_out() {
        let t = AddressThrottle::new(policy());
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(t.check(a, t0), Ok(()));
        for _ in 0..FREE_FAILURES {
            t.failed(a, t0);
            assert_eq!(t.check(a, t0), Ok(()), "free failures do not wait");
        }
        t.failed(a, t0);
        assert_eq!(
            t.check(a, t0 + Duration::from_millis(50)),
            Err(Throttled::Waiting)
        );
        assert_eq!(t.check(a, t0 + Duration::from_millis(100)), Ok(()));
        assert_eq!(
            t.check(other, t0),
            Ok(()),
            "another address is not concerned"
        );
        t.failed(a, t0);
        assert_eq!(
            t.check(a, t0 + Duration::from_millis(150)),
            Err(Throttled::Waiting)
        );
        assert_eq!(t.check(a, t0 + Duration::from_millis(200)), Ok(()));
        t.failed(a, t0);
        assert_eq!(
            t.check(a, t0 + Duration::from_secs(30)),
            Err(Throttled::LockedOut)
        );
        assert_eq!(
            t.check(a, t0 + Duration::from_secs(60)),
            Ok(()),
            "lockout over"
        );
        t.failed(a, t0 + Duration::from_secs(61));
        assert_eq!(
            t.check(a, t0 + Duration::from_secs(61)),
            Ok(()),
            "failures are forgotten once the lockout has passed"
        );
    }

    #[test]
    fn the_wait_is_capped_and_lockout_can_be_turned_off() {
        let t = AddressThrottle::new(ThrottlePolicy {
            max_failures: 0,
            ..policy()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            t.failed(a, t0);
        }
        assert_eq!(
            t.check(a, t0 + MAX_DELAY - Duration::from_millis(1)),
            Err(Throttled::Waiting)
        );
        assert_eq!(t.check(a, t0 + MAX_DELAY), Ok(()));
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix_and_the_table_is_bounded() {
        let t = AddressThrottle::new(policy());
        let t0 = Instant::now();
        for _ in 0..=FREE_FAILURES {
            t.failed("2001:db8:1:2::1".parse().unwrap(), t0);
        }
        assert_eq!(
            t.check("2001:db8:1:2:ffff::9".parse().unwrap(), t0),
            Err(Throttled::Waiting)
        );
        assert_eq!(t.check("2001:db8:1:3::1".parse().unwrap(), t0), Ok(()));
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(IpAddr::V4(i.into()), t0 + Duration::from_millis(1));
        }
        assert_eq!(t.tracked(), MAX_ADDRESSES);
    }
}
