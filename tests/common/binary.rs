//! The real `linehub` binary as a child process: commands, free ports, waiting until it serves,
//! and SIGKILL.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// `linehub` with no config path or log filter inherited from the environment, so the test
/// decides both.
pub fn linehub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_linehub"));
    c.env_remove("LINEHUB_CONFIG").env_remove("LINEHUB_LOG");
    c
}

/// Runs `command` to its end; returns whether it succeeded and its stdout then stderr.
pub fn output(command: &mut Command) -> (bool, String) {
    let out = command.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A port nothing listens on right now, for a child that must be told its address up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `linehub sandbox` on `127.0.0.1:port` (stdio left to the caller).
pub fn sandbox_command(port: u16) -> Command {
    let mut c = linehub();
    c.args(["sandbox", "--listen", &format!("127.0.0.1:{port}")]);
    c
}

/// Polls GET `url` until it answers 2xx; panics after 10 s.
pub async fn wait_up(http: &reqwest::Client, url: &str) {
    for _ in 0..400 {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not come up");
}

/// A child process that is SIGKILLed and reaped when dropped, so a failing test leaves nothing
/// running.
pub struct Process {
    child: Child,
}

impl Process {
    /// Spawns `command`.
    pub fn spawn(command: &mut Command) -> Process {
        Process { child: command.spawn().unwrap() }
    }

    /// `linehub ARGS` in the background with log filter `log`: stdout dropped, stderr shown.
    pub fn background(args: &[&str], log: &str) -> Process {
        Process::spawn(linehub().args(args).env("LINEHUB_LOG", log).stdout(Stdio::null()).stderr(Stdio::inherit()))
    }

    /// `linehub run --config CONFIG` in the background, as [`Process::background`].
    pub fn daemon(config: &Path, log: &str) -> Process {
        Process::background(&["run", "--config", config.to_str().unwrap()], log)
    }

    /// The child, for its pipes and id.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGKILL: no shutdown path runs. Then reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
