//! Periodic tasks: work no request causes (retention purges, orphan sweeps, pruning, mail
//! delivery). Each context contributes its own (`periodic_tasks(…)`); the assembly collects them
//! into one [`Schedule`] that runs with the server and stops with it.
//!
//! A task is a name, a period and an async function. The scheduler alone issues the
//! housekeeping [`AdminScope`] a task runs with, so that scope stays reachable only from here,
//! the command line and tests. This is the in-process precursor of durable jobs: a task's name
//! becomes the job kind and its period a schedule, and the function its handler.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::{sync::Notify, task::JoinSet};

use crate::AdminScope;

type Run =
    dyn Fn(AdminScope) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync;

/// One kind of recurring work, owned by the context whose tables it touches.
#[derive(Clone)]
pub struct PeriodicTask {
    name: &'static str,
    every: Duration,
    first_after: Duration,
    wake: Option<Arc<Notify>>,
    every_node: bool,
    run: Arc<Run>,
}

impl std::fmt::Debug for PeriodicTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicTask")
            .field("name", &self.name)
            .field("every", &self.every)
            .field("first_after", &self.first_after)
            .field("every_node", &self.every_node)
            .finish_non_exhaustive()
    }
}

impl PeriodicTask {
    /// `run` every `every`, measured from the end of the previous run (a slow run never
    /// overlaps the next); the first run at once unless [`PeriodicTask::first_after`] says.
    pub fn new<F, Fut>(name: &'static str, every: Duration, run: F) -> Self
    where
        F: Fn(AdminScope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            name,
            every,
            first_after: Duration::ZERO,
            wake: None,
            every_node: false,
            run: Arc::new(move |scope| Box::pin(run(scope))),
        }
    }

    /// Delays the first run (start-up stays quick, and nodes started together do not all
    /// purge at once).
    pub fn first_after(mut self, delay: Duration) -> Self {
        self.first_after = delay;
        self
    }

    /// Runs early whenever `wake` is notified (mail is delivered as soon as it is queued).
    pub fn woken_by(mut self, wake: Arc<Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Upkeep of this process's own memory (rate-limiter keys), which every node must run
    /// for itself. Other tasks work on shared rows: once per period anywhere would do (today
    /// every node runs them, which each tolerates), and they are what become durable jobs.
    pub fn on_every_node(mut self) -> Self {
        self.every_node = true;
        self
    }

    pub fn runs_on_every_node(&self) -> bool {
        self.every_node
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    /// One run, now, with the housekeeping scope.
    pub async fn run_once(&self) -> anyhow::Result<()> {
        (self.run)(AdminScope::for_housekeeping()).await
    }

    /// One run in its own task, so a panic is reported like an error and the loop goes on.
    async fn run_logged(&self) {
        let run = self.run.clone();
        let running = tokio::spawn(async move { run(AdminScope::for_housekeeping()).await });
        // Aborting the schedule aborts the run in flight, not only the loop around it.
        let _abort = AbortOnDrop(running.abort_handle());
        match running.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(task = self.name, error = %format!("{e:#}"), "periodic task failed")
            }
            Err(e) => tracing::error!(task = self.name, error = %e, "periodic task panicked"),
        }
    }

    async fn run_forever(self) {
        self.pause(self.first_after).await;
        loop {
            self.run_logged().await;
            self.pause(self.every).await;
        }
    }

    async fn pause(&self, duration: Duration) {
        match &self.wake {
            Some(wake) => {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(duration) => {}
                }
            }
            None => tokio::time::sleep(duration).await,
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every periodic task of the process.
#[derive(Debug, Clone, Default)]
pub struct Schedule(Vec<PeriodicTask>);

impl Schedule {
    pub fn new(tasks: impl IntoIterator<Item = PeriodicTask>) -> Self {
        Self(tasks.into_iter().collect())
    }

    pub fn tasks(&self) -> &[PeriodicTask] {
        &self.0
    }

    /// Runs the task called `name` once, now (tests, and an operator's "run it now").
    pub async fn run_now(&self, name: &str) -> anyhow::Result<()> {
        let task = self
            .0
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow::anyhow!("no periodic task is called {name}"))?;
        task.run_once()
            .await
            .map_err(|e| e.context(format!("periodic task {name}")))
    }

    /// Runs every task on its own period until `shutdown` resolves (or the returned handle is
    /// aborted); then every task still running is aborted.
    pub fn spawn(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut running = JoinSet::new();
            for task in self.0 {
                running.spawn(task.run_forever());
            }
            shutdown.await;
            running.shutdown().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn counting(name: &'static str, every: Duration, fail: bool) -> (PeriodicTask, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let task = PeriodicTask::new(name, every, move |_scope| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if fail {
                    anyhow::bail!("{name} failed");
                }
                Ok(())
            }
        });
        (task, runs)
    }

    #[tokio::test]
    async fn a_task_runs_by_name() {
        let (ok, runs) = counting("ok", Duration::from_secs(3600), false);
        let (bad, _) = counting("bad", Duration::from_secs(3600), true);
        let schedule = Schedule::new([ok, bad]);
        schedule.run_now("ok").await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let error = schedule.run_now("bad").await.unwrap_err();
        assert_eq!(format!("{error:#}"), "periodic task bad: bad failed");
        assert!(schedule.run_now("missing").await.is_err());
    }

    /// Waits (bounded) until `done` holds; the periods below are milliseconds.
    async fn eventually(done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn failures_and_panics_stop_no_other_task_and_shutdown_stops_all() {
        let (failing, failed) = counting("failing", Duration::from_millis(1), true);
        let (steady, steady_runs) = counting("steady", Duration::from_millis(1), false);
        let panics = Arc::new(AtomicU32::new(0));
        let counter = panics.clone();
        let panicking = PeriodicTask::new("panicking", Duration::from_millis(1), move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { panic!("boom") }
        });
        let (delayed, delayed_runs) = counting("delayed", Duration::from_millis(1), false);
        let delayed = delayed.first_after(Duration::from_secs(3600));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = Schedule::new([failing, steady, panicking, delayed]).spawn(async move {
            let _ = stopped.await;
        });
        eventually(|| {
            [&failed, &steady_runs, &panics]
                .iter()
                .all(|runs| runs.load(Ordering::SeqCst) >= 3)
        })
        .await;
        assert_eq!(
            delayed_runs.load(Ordering::SeqCst),
            0,
            "not before its first delay"
        );
        stop.send(()).unwrap();
        handle.await.unwrap();
        let after = steady_runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            steady_runs.load(Ordering::SeqCst),
            after,
            "nothing runs after shutdown"
        );
    }

    #[tokio::test]
    async fn a_woken_task_runs_early() {
        let wake = Arc::new(Notify::new());
        let (task, runs) = counting("mail", Duration::from_secs(3600), false);
        let handle = Schedule::new([task.woken_by(wake.clone())]).spawn(std::future::pending());
        eventually(|| runs.load(Ordering::SeqCst) == 1).await;
        wake.notify_one();
        eventually(|| runs.load(Ordering::SeqCst) == 2).await;
        handle.abort();
    }
}
