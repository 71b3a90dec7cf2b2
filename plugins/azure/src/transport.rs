//! Sending one request under the call's deadline: throttling (429) and
//! service-unavailable (503) answers are retried after the `Retry-After` the
//! service asked for, at most `max-retries` times and never past the
//! deadline; then they become `unavailable` carrying the wait the service
//! asked for. An unreachable endpoint is `unavailable` naming it.
//!
//! Messages name a URL without its query string: a SAS lives there.

use homeward_sdk::http::{self, Request, Response, Url};
use homeward_sdk::{Error, log};
use std::time::{Duration, Instant};

/// Wait between retries when the service does not say (doubling per attempt).
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between retries when the service does not say.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The clock and retry policy of one plugin call.
#[derive(Debug, Clone)]
pub struct Transport {
    deadline: Instant,
    budget_ms: u64,
    max_retries: u32,
}

/// `url` without query and fragment, for messages (a SAS is a query string).
pub fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The wait a throttling answer asks for: `retry-after-ms` or
/// `x-ms-retry-after-ms` (milliseconds), else `Retry-After` in seconds. An
/// HTTP-date `Retry-After` is not read (ARM and Storage send seconds).
pub fn retry_after(response: &Response) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = response
            .header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Transport {
    /// A transport whose deadline is `budget_ms` from now.
    pub fn new(budget_ms: u64, max_retries: u32) -> Transport {
        Transport {
            deadline: Instant::now() + Duration::from_millis(budget_ms),
            budget_ms,
            max_retries,
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The error for running out of time while doing `what`.
    pub fn out_of_time(&self, what: &str) -> Error {
        Error::unavailable(
            format!(
                "{what}: no answer within the call's budget of {} ms (config `timeout-ms`)",
                self.budget_ms
            ),
            None,
        )
    }

    /// Sleeps `wait` when it ends before the deadline; `false` (without
    /// sleeping) when it would not.
    pub fn sleep_within_deadline(&self, wait: Duration) -> bool {
        if wait >= self.remaining() {
            return false;
        }
        std::thread::sleep(wait);
        true
    }

    /// Sends `request` to `service` (e.g. `ARM`, `the token endpoint`, `Blob
    /// storage`), retrying 429 and 503; any other status is returned for the
    /// caller to judge.
    pub fn send(&self, service: &str, request: &Request) -> Result<Response, Error> {
        let place = without_query(&request.url);
        let mut attempt: u32 = 0;
        loop {
            let remaining = self.remaining();
            if remaining.is_zero() {
                return Err(self.out_of_time(&format!("{service} at {place}")));
            }
            let mut this = request.clone();
            this.timeout_ms = Some(millis(remaining).max(1));
            let response = http::send(&this).map_err(|e| unreachable(service, &request.url, e))?;
            if response.status != 429 && response.status != 503 {
                return Ok(response);
            }
            let asked = retry_after(&response);
            let wait = asked.unwrap_or_else(|| {
                DEFAULT_BACKOFF
                    .saturating_mul(1u32 << attempt.min(8))
                    .min(MAX_BACKOFF)
            });
            let reason = if response.status == 429 {
                "429 Too Many Requests (throttled)"
            } else {
                "503 Service Unavailable"
            };
            if attempt >= self.max_retries || wait >= self.remaining() {
                let tried = if attempt == 0 {
                    String::new()
                } else {
                    format!(
                        " after {attempt} retries (config `max-retries` = {})",
                        self.max_retries
                    )
                };
                return Err(Error::unavailable(
                    format!("{service} answered {reason} for {place}{tried}; try again later"),
                    Some(millis(asked.unwrap_or(wait))),
                ));
            }
            attempt += 1;
            log::info(&format!(
                "{service} answered {reason} for {place}; retry {attempt} of {} in {} ms",
                self.max_retries,
                millis(wait)
            ));
            std::thread::sleep(wait);
        }
    }
}

/// A request that never got an answer: `unavailable` naming the endpoint,
/// or the host's refusal (`permission-denied` naming the grant) unchanged.
fn unreachable(service: &str, url: &str, error: Error) -> Error {
    let endpoint = Url::parse(url)
        .map(|u| {
            format!(
                "{}://{}",
                if u.https { "https" } else { "http" },
                u.authority
            )
        })
        .unwrap_or_else(|_| without_query(url).to_string());
    match error {
        Error::Unavailable(u) => Error::unavailable(
            format!("{service} at {endpoint} is unreachable: {}", u.message),
            u.retry_after_ms,
        ),
        Error::NotFound(m) => {
            Error::unavailable(format!("{service} at {endpoint} is unreachable: {m}"), None)
        }
        other => other,
    }
}
