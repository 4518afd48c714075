//! The Prometheus alerting rules (`deploy/prometheus/`): `promtool check rules` and their unit
//! tests (`promtool test rules`: `wholesail.rules.test.yml`, and the latency SLO alerts' in
//! `wholesail.slo.test.yml`, evaluated every 5 minutes over days of input).

use anyhow::Result;

use crate::shell::{self, cmd, root};

/// Checks the rule files and runs their promtool unit tests.
pub fn check() -> Result<()> {
    let dir = root().join("deploy/prometheus");
    shell::run(cmd("promtool", &["check", "rules", "wholesail.rules.yml"]).current_dir(&dir))?;
    shell::run(
        cmd(
            "promtool",
            &[
                "test",
                "rules",
                "wholesail.rules.test.yml",
                "wholesail.slo.test.yml",
            ],
        )
        .current_dir(&dir),
    )
}
