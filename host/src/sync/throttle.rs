//! Bandwidth limits on the wire.
//!
//! A [`Pacer`] holds an average rate exactly rather than in bursts: before a
//! message of `n` bytes leaves, the sender waits until the bytes sent so far
//! (including these) fit in the time elapsed at the configured rate. Limits
//! compose: a sync waits for its own pacer and for its process server's.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate limit shared by everything that sends through it.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: u64,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    start: Option<Instant>,
    sent: u64,
}

/// Sends are allowed to run this far ahead of the rate, so small messages
/// need no sleep of their own.
const SLACK: Duration = Duration::from_millis(2);

impl Pacer {
    /// A pacer for `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Pacer {
            bytes_per_sec: bytes_per_sec.max(1),
            state: Mutex::new(PacerState {
                start: None,
                sent: 0,
            }),
        }
    }

    /// The configured rate.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Accounts for `n` bytes and says how long to wait before sending them.
    pub fn reserve(&self, n: u64) -> Duration {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let start = *state.start.get_or_insert(now);
        // Credit for time spent idle is capped at SLACK: after a pause the
        // rate starts over instead of bursting to catch up.
        let earned = Duration::from_secs_f64(state.sent as f64 / self.bytes_per_sec as f64);
        if now.duration_since(start) > earned + SLACK {
            state.start = Some(now - earned - SLACK);
        }
        let start = state.start.unwrap_or(start);
        state.sent = state.sent.saturating_add(n);
        let due = Duration::from_secs_f64(state.sent as f64 / self.bytes_per_sec as f64);
        let elapsed = now.duration_since(start);
        due.saturating_sub(elapsed + SLACK)
    }

    /// Blocks the calling thread until `n` more bytes may be sent.
    pub fn wait(&self, n: u64) {
        let delay = self.reserve(n);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}
