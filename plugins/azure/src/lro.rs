//! ARM long-running operations: an accepted change (201/202) is followed to
//! its end before the call returns.
//!
//! With `Azure-AsyncOperation`, that URL is polled until its `status` is
//! `Succeeded`, `Failed` or `Canceled` (a failure carries an `error` with
//! code and message); otherwise `Location` is polled until it stops
//! answering 202. Polls wait the `Retry-After` ARM asks for (one second when
//! it does not say), and never past the call's deadline: an operation still
//! running then is `unavailable`, saying it goes on in Azure.

use crate::arm::{Arm, json_body};
use crate::fault::{self, ServiceError};
use crate::transport::retry_after;
use homeward_sdk::Error;
use homeward_sdk::http::{Method, Response};
use std::time::Duration;

/// Poll interval when ARM gives no `Retry-After`.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Waits for the operation `accepted` started (a no-op for a finished one).
pub fn wait(arm: &Arm<'_>, accepted: &Response, what: &str) -> Result<(), Error> {
    if let Some(url) = accepted.header("azure-asyncoperation") {
        return poll_async_operation(arm, url, retry_after(accepted), what);
    }
    if accepted.status == 202
        && let Some(url) = accepted.header("location")
    {
        return poll_location(arm, url, retry_after(accepted), what);
    }
    Ok(())
}

fn still_running(arm: &Arm<'_>, what: &str, status: &str) -> Error {
    Error::unavailable(
        format!(
            "{what}: the operation is still {status} at the call's deadline (config \
             `timeout-ms` = {} ms); it goes on in Azure: call again to see its result",
            arm.settings.timeout_ms
        ),
        Some(1000),
    )
}

fn pause(arm: &Arm<'_>, asked: Option<Duration>, what: &str, status: &str) -> Result<(), Error> {
    let wait = asked.unwrap_or(DEFAULT_POLL);
    if arm.transport.sleep_within_deadline(wait) {
        Ok(())
    } else {
        Err(still_running(arm, what, status))
    }
}

fn poll_async_operation(
    arm: &Arm<'_>,
    url: &str,
    first_wait: Option<Duration>,
    what: &str,
) -> Result<(), Error> {
    let mut wait = first_wait;
    let mut status = String::from("InProgress");
    loop {
        pause(arm, wait, what, &status)?;
        let response = arm.send(Method::Get, url, None)?;
        if response.status != 200 {
            return Err(fault::from_response(
                &response,
                "ARM",
                &format!("{what} (operation status)"),
            ));
        }
        let body = json_body(&response, &format!("{what} (operation status)"))?;
        status = body
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        match status.as_str() {
            "Succeeded" => return Ok(()),
            "Failed" | "Canceled" => {
                let error = ServiceError::from_json(&body);
                return Err(fault::from_operation(&error, &format!("{what} ({status})")));
            }
            _ => wait = retry_after(&response),
        }
    }
}

fn poll_location(
    arm: &Arm<'_>,
    url: &str,
    first_wait: Option<Duration>,
    what: &str,
) -> Result<(), Error> {
    let mut wait = first_wait;
    loop {
        pause(arm, wait, what, "running")?;
        let response = arm.send(Method::Get, url, None)?;
        match response.status {
            202 => wait = retry_after(&response),
            200..=299 => return Ok(()),
            _ => return Err(fault::from_response(&response, "ARM", what)),
        }
    }
}
