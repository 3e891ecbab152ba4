//! A bound on concurrent password hashes. Each argon2id verification takes ~19 MiB and a CPU
//! for tens of milliseconds; on tokio's blocking pool (up to 512 threads) a sign-in flood could
//! run hundreds at once. A verification here first takes a permit of a semaphore (size
//! `rate_limit.max_concurrent_hashes`, default the number of CPUs), waiting at most
//! `rate_limit.hash_wait_ms`; without one the caller answers 503 with `Retry-After`. The permit
//! moves into the blocking task, so it is held until the hash really ends, even when the request
//! that started it is gone.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// No permit came free in time.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

pub struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashGate {
    /// `size` concurrent hashes (0: the number of CPUs), waiting at most `wait` for one.
    pub fn new(size: usize, wait: Duration) -> Self {
        let size = match size {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        HashGate {
            permits: Arc::new(Semaphore::new(size)),
            wait,
        }
    }

    /// Runs `work` (a password hash or verification) on the blocking pool under a permit.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.wait.is_zero() => return Err(Busy),
            Err(_) => tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| Busy)?
                .map_err(|_| Busy)?,
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| Busy)
    }

    /// Checks `password` against the PHC string `phc` under a permit; without one (unknown
    /// user) against a dummy hash, so that the time taken does not tell.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, Busy> {
        self.run(move || match phc {
            Some(phc) => crate::password::verify(&password, &phc),
            None => {
                crate::password::verify(&password, crate::password::dummy_hash());
                false
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn excess_hashes_are_refused_after_the_wait() {
        let gate = Arc::new(HashGate::new(1, Duration::from_millis(50)));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let first = tokio::spawn(async move {
            g.run(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                1
            })
            .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // The only permit is taken: the second waits 50 ms, then gets Busy.
        let t = std::time::Instant::now();
        assert_eq!(gate.run(|| 2).await, Err(Busy));
        assert!(t.elapsed() >= Duration::from_millis(50));
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        // Free again.
        assert_eq!(gate.run(|| 3).await, Ok(3));
    }

    #[tokio::test]
    async fn a_waiting_hash_gets_the_permit_when_one_ends() {
        let gate = Arc::new(HashGate::new(1, Duration::from_secs(5)));
        let g = gate.clone();
        let first = tokio::spawn(async move { g.run(|| std::thread::sleep(Duration::from_millis(100))).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gate.run(|| 2).await, Ok(2));
        assert!(first.await.unwrap().is_ok());
    }
}
