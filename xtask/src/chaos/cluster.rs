//! The chaos test's own PostgreSQL cluster, which it restarts: never the shared one that
//! `cargo xtask test` and the demo use. Created with the machine's PostgreSQL binaries in
//! `/var/tmp/wholesail-chaos-pg` (`WHOLESAIL_CHAOS_PG_DATA` overrides) on 127.0.0.1:55440
//! (`WHOLESAIL_CHAOS_PG_PORT`), and left running between runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::postgres::{answers, binaries, init_and_start, pg, query};

/// A private cluster the caller may restart.
pub struct Cluster {
    bin: PathBuf,
    dir: String,
    port: u16,
}

impl Cluster {
    /// Initialises the cluster if needed and starts it unless it already answers.
    pub fn start() -> Result<Cluster> {
        let dir = std::env::var("WHOLESAIL_CHAOS_PG_DATA")
            .unwrap_or_else(|_| "/var/tmp/wholesail-chaos-pg".into());
        let port = match std::env::var("WHOLESAIL_CHAOS_PG_PORT") {
            Ok(p) => p.parse().context("WHOLESAIL_CHAOS_PG_PORT is not a port")?,
            Err(_) => 55440,
        };
        let cluster = Cluster {
            bin: binaries()?,
            dir,
            port,
        };
        if !cluster.answers() {
            cluster.init_and_start()?;
        }
        Ok(cluster)
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Drops and creates database `name`; its URL.
    pub fn recreate_database(&self, name: &str) -> Result<String> {
        let admin = self.url("postgres");
        query(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        query(&admin, &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// `pg_ctl restart -m fast`: every session is disconnected, the server shuts down
    /// cleanly and starts again with the same options; returns once it answers.
    pub fn restart_fast(&self) -> Result<()> {
        let log = self.log();
        pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.dir, "-l", &log, "-m", "fast", "-w", "restart"],
        )
        .with_context(|| format!("restarting PostgreSQL; see {log}"))?;
        self.wait_answering()
    }

    fn answers(&self) -> bool {
        answers(&self.bin, &self.url("postgres"))
    }

    fn log(&self) -> String {
        format!("{}/server.log", self.dir)
    }

    fn init_and_start(&self) -> Result<()> {
        init_and_start(
            &self.bin,
            &self.dir,
            self.port,
            "-c max_connections=100 -c shared_buffers=64MB",
            "the chaos test's PostgreSQL cluster",
        )
    }

    fn wait_answering(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            if Instant::now() > deadline {
                bail!("PostgreSQL did not answer within 30 s; see {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}
