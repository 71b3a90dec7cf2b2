//! Running `homeward` in a child process, for tests that must kill a role
//! (`kill -9`) or talk to it as a separate peer.
//!
//! The child is this very test binary, re-executed so that it runs only its
//! `child_entry` test, which reads the arguments from the environment and runs
//! `homeward::cli::run`. So a child always runs the code under test, never a
//! stale binary. A test file that spawns children declares the entry point:
//!
//! ```ignore
//! #[test]
//! #[ignore = "entry point of child processes, run by the other tests"]
//! fn child_entry() {
//!     homeward_tests::child::entry();
//! }
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ARGS_VAR: &str = "HOMEWARD_TEST_CHILD_ARGS";
const SEPARATOR: char = '\u{1f}';

/// Runs `homeward` with the arguments in the environment, then exits the process.
/// Without them (a plain `--include-ignored` run) it does nothing.
pub fn entry() {
    let Ok(args) = std::env::var(ARGS_VAR) else {
        return;
    };
    let argv =
        std::iter::once("homeward".to_string()).chain(args.split(SEPARATOR).map(str::to_string));
    let mut stdout = std::io::stdout();
    let code = match homeward::cli::run(argv, &mut stdout) {
        Ok(code) if code == std::process::ExitCode::SUCCESS => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// A `homeward` child process; killed when dropped.
pub struct HomewardChild {
    child: Child,
    /// Lines the child printed before the one [`spawn_until`] waited for.
    pub lines: Vec<String>,
}

impl HomewardChild {
    /// Kills the child with SIGKILL (`kill -9`): no cleanup runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Asks the child to stop (SIGTERM) and waits for it; returns how it ended.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        self.child.wait().expect("wait for the child")
    }
}

impl Drop for HomewardChild {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `homeward ARGS` in a child and waits (up to 60 s) for a stdout line
/// containing `ready`; returns the child and that line.
pub fn spawn_until(args: &[&str], ready: &str) -> (HomewardChild, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "child_entry",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ARGS_VAR, args.join(&SEPARATOR.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => {
                return (HomewardChild { child, lines }, line);
            }
            Ok(line) => lines.push(line),
            Err(_) => panic!(
                "child `homeward {}` never printed `{ready}`; it printed {lines:?}",
                args.join(" ")
            ),
        }
    }
}

/// Starts a master target on an ephemeral loopback port writing under `root`;
/// returns it and its `http://127.0.0.1:PORT` URL.
pub fn master_target(root: &std::path::Path, extra: &[&str]) -> (HomewardChild, String) {
    master_target_on(root, "127.0.0.1:0", extra)
}

/// Like [`master_target`], on a given address (to restart on the same port).
pub fn master_target_on(
    root: &std::path::Path,
    listen: &str,
    extra: &[&str],
) -> (HomewardChild, String) {
    serve("master-target", listen, "--target-root", root, extra)
}

/// Starts a process server on an ephemeral loopback port reading under
/// `source_root`, plaintext; returns it and its `http://127.0.0.1:PORT` URL.
pub fn process_server(source_root: &std::path::Path, extra: &[&str]) -> (HomewardChild, String) {
    serve(
        "process-server",
        "127.0.0.1:0",
        "--source-root",
        source_root,
        extra,
    )
}

/// `homeward serve --role ROLE` in plaintext on `listen`, with one root
/// directory; returns the child and the URL it listens on.
fn serve(
    role: &str,
    listen: &str,
    root_flag: &str,
    root: &std::path::Path,
    extra: &[&str],
) -> (HomewardChild, String) {
    let root = root.to_str().expect("utf-8 path");
    let mut args = vec![
        "serve",
        "--role",
        role,
        "--listen",
        listen,
        root_flag,
        root,
        "--plaintext-loopback",
    ];
    args.extend_from_slice(extra);
    let (child, line) = spawn_until(&args, "listening on");
    let addr = line.rsplit(' ').next().expect("address").to_string();
    (child, format!("http://{addr}"))
}
