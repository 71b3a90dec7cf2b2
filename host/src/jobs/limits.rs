//! Concurrency limits by resource key. A job names the things it loads
//! ("ps:NAME" a process server, "mt:NAME" a master target, "host:ID" a
//! hypervisor host); the operator sets a limit per prefix (`("mt", 2)`), and
//! it applies to each key of that prefix on its own: at most two running jobs
//! hold `mt:a`, and at most two others hold `mt:b`.
//!
//! A job takes all its keys at once or none (the scheduler decides under one
//! lock), so two jobs can never each hold a key the other waits for.

use std::collections::HashMap;

/// The limits in effect and the keys running jobs hold.
#[derive(Debug, Default)]
pub struct ResourceLimits {
    per_prefix: HashMap<String, usize>,
    held: HashMap<String, usize>,
}

impl ResourceLimits {
    /// Limits per key prefix; a limit of 0 is taken as 1 (a key nobody may
    /// hold would keep its jobs queued forever).
    pub fn new(limits: &[(String, usize)]) -> ResourceLimits {
        ResourceLimits {
            per_prefix: limits
                .iter()
                .map(|(prefix, limit)| (prefix.clone(), (*limit).max(1)))
                .collect(),
            held: HashMap::new(),
        }
    }

    /// The limit of one key: the one of its prefix (the text before the first
    /// `:`, or the whole key without one); `None` for an unlimited key.
    pub fn limit_of(&self, key: &str) -> Option<usize> {
        self.per_prefix.get(prefix_of(key)).copied()
    }

    /// How many running jobs hold `key`.
    pub fn holders(&self, key: &str) -> usize {
        self.held.get(key).copied().unwrap_or(0)
    }

    /// Whether a job holding `keys` may start now.
    pub fn fits(&self, keys: &[String]) -> bool {
        self.fits_beside(keys, &HashMap::new())
    }

    /// Whether a job holding `keys` may start now when `reserved` slots of
    /// some keys are kept for jobs that have waited longer.
    pub fn fits_beside(&self, keys: &[String], reserved: &HashMap<String, usize>) -> bool {
        keys.iter().all(|key| match self.limit_of(key) {
            Some(limit) => self.holders(key) + reserved.get(key).copied().unwrap_or(0) < limit,
            None => true,
        })
    }

    /// Takes `keys` for a starting job (after [`fits`](Self::fits) said yes).
    pub fn acquire(&mut self, keys: &[String]) {
        for key in keys {
            if self.limit_of(key).is_some() {
                *self.held.entry(key.clone()).or_insert(0) += 1;
            }
        }
    }

    /// Gives `keys` back when a job stops running.
    pub fn release(&mut self, keys: &[String]) {
        for key in keys {
            if let Some(count) = self.held.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.held.remove(key);
                }
            }
        }
    }
}

/// A job's keys as the limits count them: each once, in a stable order.
pub fn normalize(keys: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

fn prefix_of(key: &str) -> &str {
    key.split_once(':').map_or(key, |(prefix, _)| prefix)
}
