//! The workers' wake-up after intake, coalesced.
//!
//! Idle workers wait on a `LISTEN` ([`inbox::CHANNEL`]) and poll besides. A `NOTIFY` in every
//! intake transaction held PostgreSQL's notification lock through that transaction's commit
//! and WAL flush, so concurrent intake commits queued behind one another instead of sharing a
//! flush: single events went 2,249–2,322/s without it against 1,974/s with it
//! (`BENCHMARKS.md`). Intake now commits without one and asks [`Wake`] instead, which sends
//! `NOTIFY` from a task of its own: at once when it was idle, then at most once per
//! [`INTERVAL`] while wake-ups keep coming, always once more after the last. Each `NOTIFY`
//! starts after the commit that asked for it, so a worker it wakes sees that row; a `NOTIFY`
//! that fails (or a process that dies before sending it) leaves the row to the workers' poll.

use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::inbox;

/// The shortest time between two `NOTIFY`s of one process.
pub const INTERVAL: Duration = Duration::from_millis(5);

/// Asks the wake-up task to `NOTIFY` the workers; cheap to clone, never waits.
#[derive(Clone, Debug)]
pub struct Wake {
    asked: mpsc::Sender<()>,
}

impl Wake {
    /// Starts the task that notifies through `pool`; it ends when the last `Wake` is dropped.
    pub fn start(pool: PgPool) -> Wake {
        Self::start_with(INTERVAL, move || {
            let pool = pool.clone();
            async move { notify(&pool).await }
        })
    }

    /// Starts the task with its own `send` and `interval`.
    fn start_with<F, Fut>(interval: Duration, mut send: F) -> Wake
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        // One slot: a wake-up asked while one is pending is already covered by it.
        let (asked, mut pending) = mpsc::channel(1);
        tokio::spawn(async move {
            while pending.recv().await.is_some() {
                send().await;
                tokio::time::sleep(interval).await;
            }
        });
        Wake { asked }
    }

    /// Asks for a `NOTIFY` after this point (call it after the commit).
    pub fn wake(&self) {
        // Full: one is pending and will be sent after this call. Closed: the task ended with
        // the process's shutdown.
        let _ = self.asked.try_send(());
    }
}

/// One `NOTIFY`, counted in `wholesail_intake_wakeups_total` by result; a failure is logged.
async fn notify(pool: &PgPool) {
    let result = match inbox::notify(pool).await {
        Ok(()) => "sent",
        Err(e) => {
            tracing::warn!(error = %e, "waking the workers failed: they find the rows on their next poll");
            "failed"
        }
    };
    metrics::counter!("wholesail_intake_wakeups_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A `Wake` whose sends are counted, each taking `takes`.
    fn counted(takes: Duration) -> (Wake, Arc<AtomicUsize>) {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let wake = Wake::start_with(INTERVAL, move || {
            let counter = counter.clone();
            async move {
                tokio::time::sleep(takes).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        (wake, sent)
    }

    /// Lets the task run until `sent` reaches `n`, with the clock paused (auto-advanced);
    /// fails after a second of that clock.
    async fn until_sent(sent: &AtomicUsize, n: usize) {
        let started = tokio::time::Instant::now();
        while sent.load(Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "NOTIFY {n} never sent"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_wake_is_sent_at_once() {
        let (wake, sent) = counted(Duration::ZERO);
        let asked = tokio::time::Instant::now();
        wake.wake();
        until_sent(&sent, 1).await;
        // (Tokio's timers tick in milliseconds.)
        assert!(asked.elapsed() < INTERVAL, "{:?}", asked.elapsed());
        tokio::time::sleep(INTERVAL * 10).await;
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one wake-up, one NOTIFY");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_coalesced_and_followed_by_one_more_after_its_last_wake() {
        let (wake, sent) = counted(Duration::from_millis(1));
        wake.wake();
        until_sent(&sent, 1).await;
        // 1,000 wake-ups while the first NOTIFY's interval runs: one more NOTIFY covers them.
        for _ in 0..1000 {
            wake.wake();
        }
        until_sent(&sent, 2).await;
        tokio::time::sleep(INTERVAL * 10).await;
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        // A wake-up during the second one's send is not lost either.
        wake.wake();
        until_sent(&sent, 3).await;
    }

    #[tokio::test(start_paused = true)]
    async fn steady_wake_ups_send_at_most_one_notify_per_interval() {
        let (wake, sent) = counted(Duration::ZERO);
        let started = tokio::time::Instant::now();
        while started.elapsed() < INTERVAL * 100 {
            wake.wake();
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        tokio::time::sleep(INTERVAL * 2).await;
        let n = sent.load(Ordering::SeqCst);
        assert!(
            (90..=102).contains(&n),
            "{n} NOTIFYs for 2,000 wake-ups over 100 intervals"
        );
    }

    /// The wake-ups counted by `notify` through `pool`, as a scrape renders them.
    fn counted_notifies(pool_url: &str, times: usize) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let scrape = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .acquire_timeout(Duration::from_millis(200))
                    .connect_lazy(pool_url)
                    .unwrap();
                for _ in 0..times {
                    notify(&pool).await;
                }
            })
        });
        scrape.render()
    }

    #[test]
    fn a_wake_up_that_fails_is_counted_as_failed() {
        // Nothing listens on port 1: every NOTIFY fails to get a connection.
        let scrape = counted_notifies("postgres://wholesail@127.0.0.1:1/none", 2);
        assert!(
            scrape.contains("wholesail_intake_wakeups_total{result=\"failed\"} 2"),
            "{scrape}"
        );
        assert!(!scrape.contains("result=\"sent\""), "{scrape}");
    }
}
