//! Argon2id password hashing on a fixed set of dedicated threads, so a burst of logins
//! queues here instead of starving every other request of CPU, and the 19 MiB each hash
//! needs is held by at most that many threads (`spawn_blocking` would let every blocking
//! thread's allocator arena keep its own copy).
//!
//! By default the threads run under Linux `SCHED_IDLE` (`auth.hash_scheduling`): they get
//! only CPU that request handling does not want, so a login storm barely moves other
//! endpoints' latency, while on an otherwise idle machine hashing still gets every free cycle
//! (measured in docs/benchmarks.md: `me_under_login`). `low` (nice ≈ 9) and `normal` exist for
//! platforms or operators that want logins to compete. The
//! queue in front of them is bounded: beyond [`MAX_QUEUED_PER_THREAD`] waiting jobs per
//! thread, callers are told the server is busy instead of waiting ever longer.

use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, anyhow};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use crate::config::HashScheduling;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs that may wait per hashing thread before new ones are refused.
pub const MAX_QUEUED_PER_THREAD: usize = 128;

/// Applies `scheduling` to the calling thread. Failing is harmless (logged).
fn apply(scheduling: HashScheduling) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let result = match scheduling {
        HashScheduling::Normal => return,
        HashScheduling::Low => match ThreadPriorityValue::try_from(25u8) {
            Ok(value) => {
                thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
            }
            Err(_) => return,
        },
        #[cfg(target_os = "linux")]
        HashScheduling::Idle => thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Min,
            thread_priority::ThreadSchedulePolicy::Normal(
                thread_priority::NormalThreadSchedulePolicy::Idle,
            ),
        ),
        #[cfg(not(target_os = "linux"))]
        HashScheduling::Idle => thread_priority::set_current_thread_priority(ThreadPriority::Min),
    };
    if let Err(e) = result {
        tracing::warn!(error = ?e, ?scheduling, "could not set the hashing threads' scheduling");
    }
}

/// The hashing threads; they exit when the last `PasswordHasher` clone is dropped.
struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    fn start(count: usize, scheduling: HashScheduling) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tenantry-hash-{i}"))
                .spawn(move || {
                    apply(scheduling);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .context("starting a password hashing thread")?;
        }
        Ok(Self { jobs })
    }
}

/// Why a hash did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: answer "busy" rather than make the caller wait.
    #[error("password hashing is saturated")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    workers: Arc<Workers>,
    /// Admission to the queue in front of the threads.
    queue: Arc<tokio::sync::Semaphore>,
    /// A real hash of a random password: verifying against it when an e-mail is unknown makes
    /// "no such user" take as long as "wrong password".
    decoy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .finish()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl PasswordHasher {
    /// `memory_kib` and `iterations` are floored at OWASP's argon2id minimum (19 MiB, t=2).
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        max_concurrent: usize,
        scheduling: HashScheduling,
    ) -> anyhow::Result<Self> {
        Self::with_queue(
            memory_kib,
            iterations,
            max_concurrent,
            scheduling,
            MAX_QUEUED_PER_THREAD,
        )
    }

    fn with_queue(
        memory_kib: u32,
        iterations: u32,
        max_concurrent: usize,
        scheduling: HashScheduling,
        queued_per_thread: usize,
    ) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib.max(19 * 1024), iterations.max(2), 1, None)
            .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
        let decoy = argon2(&params)
            .hash_password(uuid::Uuid::now_v7().as_bytes())
            .map_err(|e| anyhow!("hashing the decoy password: {e}"))?
            .to_string();
        let threads = max_concurrent.max(1);
        Ok(Self {
            params,
            workers: Arc::new(Workers::start(threads, scheduling)?),
            queue: Arc::new(tokio::sync::Semaphore::new(
                threads * queued_per_thread.max(1),
            )),
            decoy: decoy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _admitted = self
            .queue
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let hasher = argon2(&self.params);
        let (done, result) = tokio::sync::oneshot::channel();
        self.workers
            .jobs
            .send(Box::new(move || {
                let _ = done.send(work(hasher));
            }))
            .map_err(|_| HashError::Failed(anyhow!("password hashing threads stopped")))?;
        result
            .await
            .map_err(|_| HashError::Failed(anyhow!("password hashing job failed")))
    }

    /// A PHC string (`$argon2id$v=19$m=…`) for storage.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.as_bytes().to_vec();
        self.run(move |argon| argon.hash_password(&password).map(|h| h.to_string()))
            .await?
            .map_err(|e| HashError::Failed(anyhow!("hashing password: {e}")))
    }

    /// True when `password` matches `stored`; with no stored hash, spends the same time and
    /// answers false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let password = password.as_bytes().to_vec();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.decoy.to_string(), false),
        };
        let matched = self
            .run(move |argon| argon.verify_password(&password, hash.as_str()).is_ok())
            .await?;
        Ok(matched && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = PasswordHasher::with_queue(1, 1, 1, HashScheduling::Idle, 2).unwrap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        // Six tasks reach the queue within microseconds; a hash takes milliseconds.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            tasks.spawn(async move { hasher.verify("correct horse battery", Some(&hash)).await });
        }
        let results = tasks.join_all().await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(HashError::Busy)))
            .count();
        let ok = results.iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!((ok, busy), (2, 4), "two admitted, the rest refused");
        // Admission frees up once those finished.
        assert!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let hasher = PasswordHasher::new(1, 1, 2, HashScheduling::Low).unwrap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("correct horse battery", None).await.unwrap());
        assert!(!hasher.verify("x", Some("not a phc string")).await.unwrap());
    }
}
