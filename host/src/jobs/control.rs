//! The flags one running job is steered by: cancel (the operator asked) and
//! stop (the scheduler shuts down). Steps poll them cheaply; a backoff wait
//! sleeps on them so that either ends it at once instead of after the delay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Cancel and stop flags of one job, and the sleep they interrupt.
#[derive(Debug, Default)]
pub(crate) struct JobControl {
    cancel: AtomicBool,
    stop: AtomicBool,
    // The condition variable needs a mutex; the flags themselves are atomics
    // so that polling them never takes it.
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

impl JobControl {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn request_cancel(&self) {
        self.cancel.store(true, Ordering::Release);
        self.wake_sleepers();
    }

    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake_sleepers();
    }

    /// Sleeps for `delay` unless cancel or stop is (or gets) set; returns
    /// whether the full delay passed.
    pub(crate) fn sleep(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut guard = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.cancelled() || self.stopping() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = match self.wake.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn wake_sleepers(&self) {
        // Taking the lock orders the flag store before a sleeper's check.
        let _guard = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }
}
