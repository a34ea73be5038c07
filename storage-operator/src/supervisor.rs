//! Supervision of the daemon's long-running tasks.
//!
//! Every task runs under a name in a [`Supervisor`]. A task attempt that ends while the daemon
//! runs (an error, a panic, or a return) is restarted after an exponential back-off when the
//! task is restartable ([`Restart::OnError`]) and the error is not fatal
//! ([`TaskError::transient`]): a dropped broker connection, a chain RPC that went away, a
//! failed write. After [`Policy::max_restarts`] failures in a row, at once for a fatal error,
//! and for any end of a task that cannot restart ([`Restart::Never`]: the HTTP servers), the
//! task **fails**: [`Supervisor::failed`] resolves with its name and error, and the binary
//! stops every task and exits non-zero. A task tells the supervisor it is up with
//! [`TaskContext::ready`] (connected, subscribed); one that stays up for
//! [`Policy::reset_after`] starts its count of failures over.
//!
//! [`Health`] is what `GET /health` reports: each task's state, HTTP 503 unless all run.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{sync::watch, task::JoinHandle};

use crate::metrics::Metrics;

/// How long [`Supervisor::shutdown`] waits for each task before aborting it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Restart limits and back-off (`[supervision]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Restarts in a row after which a failing task fails the daemon (0: the first failure).
    pub max_restarts: u32,
    /// Back-off before the first restart; doubled for each further one.
    pub initial_backoff: Duration,
    /// Cap of the back-off.
    pub max_backoff: Duration,
    /// A task up this long before it fails starts its count of failures over.
    pub reset_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_restarts: 10,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The back-off before restart number `attempt` (from 1): `initial · 2^(attempt−1)`,
    /// capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether a task may be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// After a transient error, with back-off, up to the policy's limit.
    OnError,
    /// Never: the task ending for any reason while the daemon runs fails the daemon.
    Never,
}

/// Why a task attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    message: String,
    fatal: bool,
}

impl TaskError {
    /// An error a restart may cure (a connection dropped, a write failed).
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            fatal: false,
        }
    }

    /// An error no restart cures (the chain refused the registration): the task fails.
    pub fn fatal(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            fatal: true,
        }
    }

    /// Whether the task must not be restarted.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A task failed for good; the daemon must stop.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task {task} failed: {error}")]
pub struct TaskFailure {
    /// The task's name.
    pub task: &'static str,
    /// What happened.
    pub error: String,
}

/// The state of a task, as `/health` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Started, not up yet (connecting).
    Starting,
    /// Up.
    Running,
    /// Failed and waiting for, or in, restart number `attempt`.
    Restarting {
        /// Restarts in a row so far.
        attempt: u32,
        /// The error that ended the last attempt.
        last_error: String,
    },
    /// Failed for good; the daemon stops.
    Failed {
        /// The error.
        error: String,
    },
    /// Stopped by the daemon's shutdown.
    Stopped,
}

/// One task in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    /// The task's name.
    pub name: &'static str,
    /// Its state.
    #[serde(flatten)]
    pub state: TaskState,
    /// Restarts since the daemon started.
    pub restarts: u64,
}

struct Slot {
    name: &'static str,
    inner: Mutex<SlotInner>,
}

struct SlotInner {
    state: TaskState,
    restarts: u64,
    up_since: Option<Instant>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: TaskState) {
        let mut inner = self.lock();
        inner.state = state;
        inner.up_since = None;
    }

    fn status(&self) -> TaskStatus {
        let inner = self.lock();
        TaskStatus {
            name: self.name,
            state: inner.state.clone(),
            restarts: inner.restarts,
        }
    }
}

/// The tasks' states, shared with the HTTP API.
#[derive(Clone, Default)]
pub struct Health {
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
}

impl Health {
    fn add(&self, name: &'static str) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            name,
            inner: Mutex::new(SlotInner {
                state: TaskState::Starting,
                restarts: 0,
                up_since: None,
            }),
        });
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
        slot
    }

    /// Every task's status, in start order.
    pub fn tasks(&self) -> Vec<TaskStatus> {
        let slots: Vec<Arc<Slot>> = self.slots.lock().unwrap_or_else(|p| p.into_inner()).clone();
        slots.iter().map(|s| s.status()).collect()
    }
}

/// What a task attempt gets from its supervisor.
pub struct TaskContext {
    /// Turns true when the daemon stops: the task returns `Ok(())` then.
    pub shutdown: watch::Receiver<bool>,
    slot: Arc<Slot>,
    metrics: Arc<Metrics>,
}

impl TaskContext {
    /// Reports the task up (connected, subscribed, serving): `/health` shows it running.
    pub fn ready(&self) {
        let mut inner = self.slot.lock();
        if inner.state != TaskState::Running {
            inner.state = TaskState::Running;
            inner.up_since = Some(Instant::now());
            self.metrics.task_up(self.slot.name, true);
        }
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.slot.name
    }

    /// Resolves when the daemon stops.
    pub async fn stopped(&mut self) {
        crate::stopped(&mut self.shutdown).await
    }

    /// Whether the daemon is stopping.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Runs named tasks, restarts them, and reports the first one that fails for good.
pub struct Supervisor {
    policy: Policy,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: watch::Sender<bool>,
    failure: watch::Sender<Option<TaskFailure>>,
    handles: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Supervisor {
    /// A supervisor restarting tasks under `policy`, counting restarts in `metrics`.
    pub fn new(policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self {
            policy,
            metrics,
            health: Health::default(),
            shutdown: watch::channel(false).0,
            failure: watch::channel(None).0,
            handles: Mutex::new(Vec::new()),
        }
    }

    /// The restart policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The tasks' states.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Runs `task` under `name`: each attempt is `task(context)`, restarted as `restart`
    /// and the policy allow.
    pub fn spawn<F, Fut>(&self, name: &'static str, restart: Restart, task: F)
    where
        F: FnMut(TaskContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let slot = self.health.add(name);
        self.metrics.task_up(name, false);
        let run = supervise(
            slot,
            restart,
            self.policy,
            task,
            self.shutdown.subscribe(),
            self.failure.clone(),
            self.metrics.clone(),
        );
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, tokio::spawn(run)));
    }

    /// Runs `task` once under `name`, up from the start; its end while the daemon runs fails
    /// the daemon (servers, whose listener cannot be reopened).
    pub fn spawn_once<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(TaskContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let mut task = Some(task);
        self.spawn(name, Restart::Never, move |ctx| {
            let task = task.take();
            async move {
                ctx.ready();
                match task {
                    Some(task) => task(ctx).await,
                    None => Err(TaskError::fatal("cannot run twice")),
                }
            }
        });
    }

    /// The first task failure, if one happened.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.failure.borrow().clone()
    }

    /// Resolves with the first task that fails for good.
    pub async fn failed(&self) -> TaskFailure {
        let mut failures = self.failure.subscribe();
        loop {
            if let Some(failure) = failures.borrow_and_update().clone() {
                return failure;
            }
            if failures.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stops every task: each gets [`STOP_TIMEOUT`] to finish, then it is aborted.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, mut handle) in handles {
            if tokio::time::timeout(STOP_TIMEOUT, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(task = name, "did not stop within {STOP_TIMEOUT:?}; aborted");
                handle.abort();
            }
        }
    }
}

/// Aborts the attempt if the supervising task is dropped (aborted at shutdown).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return format!("cancelled: {error}");
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("panicked: {text}")
}

async fn supervise<F, Fut>(
    slot: Arc<Slot>,
    restart: Restart,
    policy: Policy,
    mut task: F,
    mut shutdown: watch::Receiver<bool>,
    failure: watch::Sender<Option<TaskFailure>>,
    metrics: Arc<Metrics>,
) where
    F: FnMut(TaskContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
{
    let name = slot.name;
    let mut failures = 0u32;
    loop {
        let context = TaskContext {
            shutdown: shutdown.clone(),
            slot: slot.clone(),
            metrics: metrics.clone(),
        };
        let attempt = tokio::spawn(task(context));
        let _guard = AbortOnDrop(attempt.abort_handle());
        let outcome = attempt
            .await
            .unwrap_or_else(|e| Err(TaskError::transient(panic_text(e))));
        metrics.task_up(name, false);
        if *shutdown.borrow() {
            if let Err(e) = outcome {
                tracing::debug!(task = name, "ended at shutdown with: {e}");
            }
            slot.set(TaskState::Stopped);
            return;
        }
        let error = outcome
            .err()
            .unwrap_or_else(|| TaskError::transient("ended while the daemon was running"));
        let up_for = slot.lock().up_since.map(|since| since.elapsed());
        if up_for.is_some_and(|up| up >= policy.reset_after) {
            failures = 0;
        }
        failures += 1;
        let gave_up = if restart == Restart::Never {
            Some(error.message.clone())
        } else if error.fatal {
            Some(format!("{error} (not restartable)"))
        } else if failures > policy.max_restarts {
            Some(format!(
                "failed {failures} times in a row, {} restarts allowed ([supervision] max_restarts); last error: {error}",
                policy.max_restarts
            ))
        } else {
            None
        };
        if let Some(error) = gave_up {
            tracing::error!(task = name, "failed: {error}");
            slot.set(TaskState::Failed {
                error: error.clone(),
            });
            failure.send_if_modified(|first| {
                if first.is_some() {
                    return false;
                }
                *first = Some(TaskFailure { task: name, error });
                true
            });
            return;
        }
        let backoff = policy.backoff(failures);
        tracing::warn!(
            task = name,
            attempt = failures,
            "failed: {error}; restarting in {backoff:?}"
        );
        {
            let mut inner = slot.lock();
            inner.state = TaskState::Restarting {
                attempt: failures,
                last_error: error.message,
            };
            inner.restarts += 1;
            inner.up_since = None;
        }
        metrics.task_restart(name);
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => {
                slot.set(TaskState::Stopped);
                return;
            }
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(max_restarts: u32) -> Policy {
        Policy {
            max_restarts,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            reset_after: Duration::from_secs(60),
        }
    }

    async fn wait_state(health: &Health, pick: impl Fn(&TaskState) -> bool) -> TaskStatus {
        for _ in 0..400 {
            if let Some(status) = health.tasks().into_iter().find(|t| pick(&t.state)) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("state not reached: {:?}", health.tasks());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = Policy {
            max_restarts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            reset_after: Duration::from_secs(1),
        };
        let steps: Vec<u128> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(steps, vec![100, 200, 400, 700, 700]);
        assert_eq!(policy.backoff(200), Duration::from_millis(700));
    }

    #[tokio::test]
    async fn a_failing_task_restarts_up_to_the_limit_then_fails_the_supervisor() {
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(quick(3), metrics.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        supervisor.spawn("flaky", Restart::OnError, move |_ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Err(TaskError::transient(format!("boom {n}"))) }
        });
        let failure = tokio::time::timeout(Duration::from_secs(5), supervisor.failed())
            .await
            .unwrap();
        assert_eq!(failure.task, "flaky");
        assert!(failure.error.contains("boom 4"), "{failure}");
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        let tasks = supervisor.health().tasks();
        assert!(
            matches!(tasks[0].state, TaskState::Failed { .. }),
            "{tasks:?}"
        );
        assert_eq!(tasks[0].restarts, 3);
        assert!(metrics
            .render()
            .contains("fastdata_operator_task_restarts_total{task=\"flaky\"} 3"));
        supervisor.shutdown().await;
    }

    #[tokio::test]
    async fn recovery_shows_running_fatal_errors_and_once_tasks_fail_at_once() {
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(quick(5), metrics.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        // Fails twice, then stays up.
        supervisor.spawn("recovers", Restart::OnError, move |mut ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    return Err(TaskError::transient("not yet"));
                }
                ctx.ready();
                ctx.stopped().await;
                Ok(())
            }
        });
        let status = wait_state(&supervisor.health(), |s| *s == TaskState::Running).await;
        assert_eq!((status.name, status.restarts), ("recovers", 2));
        assert!(supervisor.failure().is_none());
        assert!(metrics
            .render()
            .contains("fastdata_operator_task_up{task=\"recovers\"} 1"));

        // A panic in a task that cannot restart fails the supervisor at once.
        supervisor.spawn_once("server", |_ctx| async move {
            if std::hint::black_box(true) {
                panic!("listener gone");
            }
            Ok(())
        });
        let failure = tokio::time::timeout(Duration::from_secs(5), supervisor.failed())
            .await
            .unwrap();
        assert_eq!(failure.task, "server");
        assert!(failure.error.contains("listener gone"), "{failure}");

        // A clean shutdown stops the running task; its state says so.
        supervisor.shutdown().await;
        let tasks = supervisor.health().tasks();
        assert_eq!(tasks[0].state, TaskState::Stopped);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn fatal_errors_are_not_restarted_and_status_serializes() {
        let supervisor = Supervisor::new(quick(5), Arc::new(Metrics::new()));
        supervisor.spawn("follower", Restart::OnError, |_ctx| async {
            Err(TaskError::fatal("registration refused"))
        });
        let failure = supervisor.failed().await;
        assert_eq!(
            failure.to_string(),
            "task follower failed: registration refused (not restartable)"
        );
        let json = serde_json::to_value(supervisor.health().tasks()).unwrap();
        assert_eq!(json[0]["name"], "follower");
        assert_eq!(json[0]["state"], "failed");
        assert_eq!(json[0]["restarts"], 0);
        let restarting = TaskStatus {
            name: "ingest",
            state: TaskState::Restarting {
                attempt: 2,
                last_error: "broker connection: refused".into(),
            },
            restarts: 2,
        };
        assert_eq!(
            serde_json::to_value(restarting).unwrap(),
            serde_json::json!({"name": "ingest", "state": "restarting", "attempt": 2,
                "last_error": "broker connection: refused", "restarts": 2})
        );
        supervisor.shutdown().await;
    }
}
