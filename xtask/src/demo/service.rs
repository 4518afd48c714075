//! The demo's background processes: origin, the edge in workerd, the Shopify simulator.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{
    wait_until, EDGE_PORT, KEY_ID, ORIGIN_ADDR, SHOP, SHOPIFY_SECRET, SHOP_TOKEN, SIGNING_KEY,
    SIMULATOR_ADDR,
};
use crate::shell::{root, target_dir};

/// A background process of the demo, stopped when dropped.
pub struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn origin(config: &Path, dir: &Path) -> Result<Service> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("origin.log"))?;
        let child = Command::new(target_dir().join("debug/origin"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting origin")?;
        Ok(Service {
            child,
            lines: Arc::default(),
        })
    }

    pub fn simulator(dir: &Path, products: u64) -> Result<Service> {
        let log = File::create(dir.join("simulator.log"))?;
        let child = Command::new(target_dir().join("debug/shopify-simulator"))
            .env("SIMULATOR_BIND", SIMULATOR_ADDR)
            .env("SIMULATOR_SHOP", SHOP)
            .env("SIMULATOR_ACCESS_TOKEN", SHOP_TOKEN)
            .env("SIMULATOR_APP_SECRET", SHOPIFY_SECRET)
            .env("SIMULATOR_PRODUCTS", products.to_string())
            .env("SIMULATOR_BULK_MS", "3000")
            // Shopify's finish webhook goes to the edge, like every other webhook.
            .env(
                "SIMULATOR_BULK_FINISH_URL",
                format!("http://127.0.0.1:{EDGE_PORT}/webhooks"),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the Shopify simulator")?;
        let service = Service {
            child,
            lines: Arc::default(),
        };
        wait_until("the simulator to listen", Duration::from_secs(30), || {
            Ok(std::net::TcpStream::connect(SIMULATOR_ADDR).is_ok())
        })?;
        Ok(service)
    }

    pub fn edge(dir: &Path) -> Result<Service> {
        let mut child = Command::new("node")
            .args(["edge/serve.mjs", "--port", EDGE_PORT])
            .current_dir(root())
            .env("ORIGIN_URL", format!("http://{ORIGIN_ADDR}"))
            .env("SHOPIFY_SECRET", SHOPIFY_SECRET)
            .env("EDGE_SIGNING_KEY_ID", KEY_ID)
            .env("EDGE_SIGNING_KEY", SIGNING_KEY)
            .env("SHOP_ALLOWLIST", SHOP)
            .env("RETRY_BASE_DELAY_SECS", "1")
            .env("RETRY_MAX_DELAY_SECS", "1")
            .env("QUEUE_MAX_RETRIES", "3")
            .env("QUEUE_BATCH_TIMEOUT_SECS", "0.2")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so stopping it also stops the workerd it started.
            .process_group(0)
            .spawn()
            .context("starting the edge (node edge/serve.mjs)")?;
        let stdout = child.stdout.take().expect("piped");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = lines.clone();
        let mut log = File::create(dir.join("edge.log"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                seen.lock().expect("log lock").push(line);
            }
        });
        let service = Service { child, lines };
        wait_until("the edge to listen", Duration::from_secs(60), || {
            Ok(service.saw("edge listening"))
        })?;
        Ok(service)
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Kills the process and everything in its process group (the edge's workerd).
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
