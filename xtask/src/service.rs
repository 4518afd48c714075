//! Background processes of the demo and the chaos test (origin, the edge in workerd, the
//! Shopify simulator), each in its own process group with its output in a log file. Waiting
//! for one to be ready also watches it: a process that exits at start (a port already in use,
//! a bad configuration) is reported at once with the last lines of its log.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::shell::{root, target_dir};

/// Lines of a service's log shown when it exits at start.
const TAIL_LINES: usize = 20;

/// A background process, stopped (with its process group) when dropped.
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
    /// Standard output lines, for services whose readiness is a line they print.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts `command` in its own process group, standard output and error appended to
    /// `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Result<Service> {
        let file = append(log)?;
        let child = command
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Service {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            lines: Arc::default(),
        })
    }

    /// Like [`Service::start`], also keeping standard output's lines for [`Service::saw`].
    pub fn start_watched(name: &str, mut command: Command, log: &Path) -> Result<Service> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(append(log)?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().expect("piped");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = lines.clone();
        let mut file = append(log)?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                seen.lock().expect("log lock").push(line);
            }
        });
        Ok(Service {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            lines,
        })
    }

    /// `origin --config <config> serve`, logging to `<dir>/origin.log`; returns once
    /// `http://<addr>/readyz` answers.
    pub fn origin(config: &Path, dir: &Path, addr: &str) -> Result<Service> {
        let mut c = Command::new(target_dir().join("debug/origin"));
        c.arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "info");
        let mut origin = Service::start("origin", c, &dir.join("origin.log"))?;
        let url = format!("http://{addr}/readyz");
        origin.wait_ready(Duration::from_secs(60), |_| crate::http::ok(&url))?;
        Ok(origin)
    }

    /// `node edge/serve.mjs --port <port>` (the worker in workerd) with `env` (its vars and
    /// secrets), logging to `<dir>/edge.log`; returns once it listens.
    pub fn edge(dir: &Path, port: u16, env: &[(&str, &str)]) -> Result<Service> {
        let mut c = Command::new("node");
        c.args(["edge/serve.mjs", "--port", &port.to_string()])
            .current_dir(root())
            .envs(env.iter().copied())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
        // Its own process group, so stopping it also stops the workerd it started.
        let mut edge =
            Service::start_watched("the edge (node edge/serve.mjs)", c, &dir.join("edge.log"))?;
        edge.wait_ready(Duration::from_secs(60), |e| Ok(e.saw("edge listening")))?;
        Ok(edge)
    }

    /// Waits until `ready` holds, at most `limit`; fails at once, with the last lines of the
    /// log, if the process exits meanwhile.
    pub fn wait_ready(
        &mut self,
        limit: Duration,
        mut ready: impl FnMut(&Service) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}); last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, TAIL_LINES)
                );
            }
            if ready(self).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within {limit:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process printed a line containing `needle` (only for
    /// [`Service::start_watched`]).
    pub fn saw(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// SIGKILLs the process and everything in its process group (the edge's workerd).
    pub fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last `n` lines of a file (empty if it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn log(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_service_that_exits_at_start_is_reported_at_once_with_its_log() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "for i in $(seq 1 30); do echo line $i; done; echo 'address in use' >&2; exit 3",
        ]);
        let mut s = Service::start("failing", c, &log("failing.log")).unwrap();
        let started = Instant::now();
        let err = s
            .wait_ready(Duration::from_secs(60), |_| Ok(false))
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert!(err.contains("failing exited at start"), "{err}");
        assert!(err.contains("address in use"), "{err}");
        assert!(err.contains("line 30") && err.contains("line 12"), "{err}");
        assert!(
            !err.contains("line 11\n"),
            "only the last {TAIL_LINES} lines: {err}"
        );
    }

    #[test]
    fn a_watched_service_whose_port_is_taken_is_reported_at_once() {
        // A listener on a port the "service" then fails to bind, as a second demo would.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let script = format!(
            "require('net').createServer().listen({port}, '127.0.0.1', () => console.log('edge listening'))"
        );
        let mut c = Command::new("node");
        c.args(["-e", &script]);
        let mut s = Service::start_watched("node", c, &log("port.log")).unwrap();
        let started = Instant::now();
        let err = s
            .wait_ready(Duration::from_secs(60), |s| Ok(s.saw("edge listening")))
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(err.contains("EADDRINUSE"), "{err}");
    }
}
