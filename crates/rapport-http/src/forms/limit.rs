//! A per-address token bucket for form submissions: each client address may send a burst, then one submission per
//! refill interval. Kept in memory: a restart forgives everyone, which is fine for spam control.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many submissions an address may send at once, and how fast its allowance comes back.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub burst: u32,
    pub per_minute: u32,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit { burst: 10, per_minute: 10 }
    }
}

/// Buckets by address. Full buckets are dropped now and then, so the map holds only recently active addresses.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    tokens: HashMap<IpAddr, (f64, Instant)>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter { limit, buckets: Mutex::new(Buckets::default()) }
    }

    /// Takes one token for the address; when none is left, how long until one is.
    pub fn take(&self, address: IpAddr) -> Result<(), Duration> {
        self.take_at(address, Instant::now())
    }

    fn take_at(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let per_second = f64::from(self.limit.per_minute.max(1)) / 60.0;
        // A poisoned lock only means another request panicked mid-update; the counts are still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.last_sweep.is_none_or(|last| now.duration_since(last) > Duration::from_secs(60)) {
            let full_after = burst / per_second;
            buckets.tokens.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full_after);
            buckets.last_sweep = Some(now);
        }
        let (tokens, at) = buckets.tokens.entry(address).or_insert((burst, now));
        let refilled = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(RateLimit { burst: 2, per_minute: 6 });
        let address: IpAddr = [192, 0, 2, 1].into();
        let start = Instant::now();
        assert!(limiter.take_at(address, start).is_ok());
        assert!(limiter.take_at(address, start).is_ok());
        let Err(wait) = limiter.take_at(address, start) else { panic!("the third of a burst of two went through") };
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
        assert!(limiter.take_at([192, 0, 2, 2].into(), start).is_ok(), "other addresses have their own bucket");
        assert!(limiter.take_at(address, start + Duration::from_secs(10)).is_ok());
    }
}
