//! Waiting for a vSphere task: poll `info.state` until it succeeds, fails
//! (its `info.error` becomes a typed error) or the deadline passes.

use crate::client;
use crate::fault::Fault;
use crate::props;
use crate::xml::{Element, MoRef};
use homeward_sdk::Error;
use std::time::{Duration, Instant};

/// The task reference in a `..._Task` method's answer.
pub fn task_of(answer: &Element, what: &str) -> Result<MoRef, Error> {
    client::returnval(answer, what)?
        .moref()
        .ok_or_else(|| Error::internal(format!("{what}: the endpoint answered no task")))
}

/// Calls a `..._Task` method and waits for its task; returns `info.result`.
pub fn run(body: &str, what: &str) -> Result<Option<Element>, Error> {
    let answer = client::call(body, what)?;
    let task = task_of(&answer, what)?;
    wait(&task, what)
}

/// Waits for `task` until the configured task deadline; returns `info.result`.
pub fn wait(task: &MoRef, what: &str) -> Result<Option<Element>, Error> {
    let limit = Duration::from_millis(client::session()?.settings.task_timeout_ms);
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let info = props::one(task, &["info.state", "info.error", "info.result"])?;
        match info.string("info.state").as_str() {
            "success" => return Ok(info.get("info.result").cloned()),
            "error" => {
                let error = info.get("info.error").ok_or_else(|| {
                    Error::internal(format!(
                        "{what}: task {} failed without saying why",
                        task.value
                    ))
                })?;
                return Err(Fault::from_localized(error).into_error(what));
            }
            _ => {}
        }
        if start.elapsed() >= limit {
            return Err(Error::unavailable(
                format!(
                    "{what}: task {} is still running after {} s; it may yet finish, check the endpoint's recent tasks",
                    task.value,
                    limit.as_secs()
                ),
                Some(5_000),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
