//! Finding or provisioning the PostgreSQL server used by tests, benchmarks and the demo.
//!
//! In order: `DATABASE_URL` if set; else a server already answering on 127.0.0.1:5432 as
//! `postgres` without a password; else a private cluster of the project's own, created with
//! the PostgreSQL binaries on the machine (as root, `initdb` runs as the `postgres` user) and
//! listening on 127.0.0.1:55432. The private cluster is left running between tasks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::shell::{cmd, output, run};

/// The port of the project's private cluster.
const PORT: u16 = 55432;
/// The database the tasks use (tests create their own databases beside it).
const DATABASE: &str = "wholesail";

/// Returns a `DATABASE_URL` for a running server, starting one if needed.
pub fn ensure() -> Result<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(url);
    }
    let bin = binaries()?;
    let existing = "postgres://postgres@127.0.0.1:5432";
    if answers(&bin, &format!("{existing}/postgres")) {
        return database(&bin, existing);
    }
    let base = format!("postgres://postgres@127.0.0.1:{PORT}");
    if !answers(&bin, &format!("{base}/postgres")) {
        start_private_cluster(&bin)?;
    }
    database(&bin, &base)
}

/// The directory holding `initdb`, `pg_ctl` and `psql`.
pub(crate) fn binaries() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    if let Some(dir) = output(&mut cmd("pg_config", &["--bindir"])) {
        candidates.push(PathBuf::from(dir));
    }
    candidates
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .context(
            "no PostgreSQL server binaries found (looked for initdb and pg_ctl in \
             /usr/lib/postgresql/*/bin and `pg_config --bindir`). Install them, e.g. \
             `apt-get install postgresql`, or set DATABASE_URL to a server of yours",
        )
}

/// Whether the server at `url` answers over TLS, its certificate checked against `ca`.
pub fn answers_with_tls(url: &str, ca: &Path) -> bool {
    let Ok(bin) = binaries() else { return false };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}sslmode=verify-full&sslrootcert={}", ca.display());
    answers(&bin, &url)
}

/// The URL of the project's private cluster's `wholesail` database.
pub fn private_cluster_url() -> String {
    format!("postgres://postgres@127.0.0.1:{PORT}/{DATABASE}")
}

/// Whether the server at `url` answers `select 1`.
pub(crate) fn answers(bin: &Path, url: &str) -> bool {
    output(&mut cmd(
        bin.join("psql").to_str().expect("utf-8 path"),
        &["-X", "-q", "-tA", "-d", url, "-c", "select 1"],
    ))
    .is_some_and(|o| o == "1")
}

/// Creates the `wholesail` database on the server at `base` if it is missing.
fn database(bin: &Path, base: &str) -> Result<String> {
    let psql = bin.join("psql");
    let admin = format!("{base}/postgres");
    let exists = output(&mut cmd(
        psql.to_str().expect("utf-8 path"),
        &[
            "-X",
            "-tA",
            "-d",
            &admin,
            "-c",
            &format!("select 1 from pg_database where datname = '{DATABASE}'"),
        ],
    ));
    if exists.as_deref() != Some("1") {
        run(&mut cmd(
            psql.to_str().expect("utf-8 path"),
            &[
                "-X",
                "-q",
                "-d",
                &admin,
                "-c",
                &format!("create database {DATABASE}"),
            ],
        ))?;
    }
    Ok(format!("{base}/{DATABASE}"))
}

fn data_dir() -> PathBuf {
    std::env::var_os("WHOLESAIL_PG_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/wholesail-pg"))
}

pub(crate) fn is_root() -> bool {
    output(&mut cmd("id", &["-u"])).as_deref() == Some("0")
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root.
pub(crate) fn pg(bin: &Path, tool: &str, args: &[&str]) -> Result<()> {
    let tool = bin.join(tool);
    let tool = tool.to_str().expect("utf-8 path");
    if is_root() {
        let mut all = vec!["-u", "postgres", "--", tool];
        all.extend_from_slice(args);
        run(&mut cmd("runuser", &all))
    } else {
        run(&mut cmd(tool, args))
    }
}

fn start_private_cluster(bin: &Path) -> Result<()> {
    let dir = data_dir();
    let dir = dir.to_str().context("data dir path is not UTF-8")?;
    init_and_start(
        bin,
        dir,
        PORT,
        "-c max_connections=300 -c shared_buffers=256MB",
        "a private PostgreSQL cluster",
    )
}

/// Creates the cluster in `dir` if it is missing (as `postgres` when root), starts it on
/// 127.0.0.1:`port` with the extra server `settings`, and waits until it answers. `what`
/// names the cluster in the message printed when it is created.
pub(crate) fn init_and_start(
    bin: &Path,
    dir: &str,
    port: u16,
    settings: &str,
    what: &str,
) -> Result<()> {
    if !Path::new(dir).join("PG_VERSION").is_file() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        if is_root() {
            run(&mut cmd("chown", &["postgres:postgres", dir]))
                .context("as root, the cluster must belong to the `postgres` user")?;
        }
        eprintln!("initialising {what} in {dir}");
        pg(
            bin,
            "initdb",
            &[
                "-D",
                dir,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
    }
    let opts = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp {settings}"
    );
    let log = format!("{dir}/server.log");
    prepare_log(&log)?;
    pg(
        bin,
        "pg_ctl",
        &["-D", dir, "-l", &log, "-o", &opts, "-w", "start"],
    )
    .with_context(|| format!("starting PostgreSQL; see {log}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(
        bin,
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    ) {
        if Instant::now() > deadline {
            bail!("PostgreSQL did not answer within 30 s; see {log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A server log larger than this is moved aside (replacing the previous one) at start,
/// so a long-lived cluster's log cannot fill the disk.
const LOG_LIMIT: u64 = 64 << 20;

/// Makes the server log at `log` writable by the server and bounded: one larger than
/// [`LOG_LIMIT`] becomes `<log>.1`, and as root an existing log is given to `postgres`
/// (a log created or emptied by another user made `pg_ctl start` fail).
fn prepare_log(log: &str) -> Result<()> {
    let Ok(meta) = std::fs::metadata(log) else {
        return Ok(());
    };
    if meta.len() > LOG_LIMIT {
        std::fs::rename(log, format!("{log}.1"))
            .with_context(|| format!("moving the large server log {log} aside"))?;
        return Ok(());
    }
    if is_root() {
        run(&mut cmd("chown", &["postgres:postgres", log]))
            .with_context(|| format!("giving {log} to the `postgres` user"))?;
    }
    Ok(())
}

/// Runs one SQL statement with psql on `url` and returns its unaligned output.
pub fn query(url: &str, sql: &str) -> Result<String> {
    let psql = binaries()?.join("psql");
    output(&mut cmd(
        psql.to_str().expect("utf-8 path"),
        &[
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ],
    ))
    .with_context(|| format!("psql failed on: {sql}"))
}

/// Runs the SQL file `path` with psql on `url`, stopping at its first error.
pub fn run_file(url: &str, path: &Path) -> Result<()> {
    let psql = binaries()?.join("psql");
    output(&mut cmd(
        psql.to_str().expect("utf-8 path"),
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-f",
            path.to_str().context("utf-8 path")?,
        ],
    ))
    .with_context(|| format!("psql failed on {}", path.display()))?;
    Ok(())
}

/// Drops and creates the database `name` on the server `ensure` found; returns its URL.
pub fn recreate_database(name: &str) -> Result<String> {
    let url = ensure()?;
    let base = url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .context("DATABASE_URL has no database name")?;
    let admin = format!("{base}/postgres");
    query(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    query(&admin, &format!("CREATE DATABASE {name}"))?;
    Ok(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("xtask-postgres-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("log.1"));
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_log_over_the_limit_is_moved_aside_at_start() {
        let path = log("large.log");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(LOG_LIMIT + 1)
            .unwrap();
        prepare_log(&path).unwrap();
        assert!(!Path::new(&path).exists());
        let aside = std::fs::metadata(format!("{path}.1")).unwrap();
        assert_eq!(aside.len(), LOG_LIMIT + 1);
    }

    #[test]
    fn a_small_log_is_kept_and_as_root_given_to_postgres() {
        let path = log("small.log");
        std::fs::write(&path, "x").unwrap();
        prepare_log(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
        if is_root() {
            let owner = output(&mut cmd("stat", &["-c", "%U", &path]));
            assert_eq!(owner.as_deref(), Some("postgres"));
        }
    }

    #[test]
    fn a_missing_log_is_left_to_the_server() {
        let path = log("missing.log");
        prepare_log(&path).unwrap();
        assert!(!Path::new(&path).exists());
    }
}
