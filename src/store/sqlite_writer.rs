//! The SQLite writer: one thread owns the only write connection and commits every job waiting
//! in its queue in one transaction (group commit), each job inside its own SAVEPOINT so that a
//! failing job rolls back only itself. The connection runs `synchronous=FULL`: COMMIT returns
//! after the WAL is flushed, and only then are the batch's completions run — a request is
//! answered only once its write is durable.
//!
//! Tried and measured worse (kept out): committing with `synchronous=NORMAL` and flushing the WAL
//! on a second thread while the writer runs the next batch. On one core it split the closed-loop
//! load into many small batches, and every extra flush costs kernel CPU (≈ 10 % fewer refreshes/s).

use rusqlite::Connection;

/// Runs once the job's batch is known committed and durable (`true`) or failed (`false`).
pub type Completion = Box<dyn FnOnce(bool) + Send>;
/// A write: run on the writer's connection (`None`: the transaction could not begin, fail).
/// Returns whether it succeeded (else its savepoint is rolled back) and its completion.
pub type WriteJob = Box<dyn FnOnce(Option<&mut Connection>) -> (bool, Completion) + Send>;

/// The write side of the store: a queue to the writer thread.
pub struct Writer {
    tx: flume::Sender<WriteJob>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection, max_batch: usize) -> std::io::Result<Writer> {
        let (tx, rx) = flume::unbounded::<WriteJob>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch))?;
        Ok(Writer { tx })
    }

    /// Queues a job; false when the writer has stopped.
    pub fn send(&self, job: WriteJob) -> bool {
        self.tx.send(job).is_ok()
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql).and_then(|mut st| st.execute([]).map(|_| ()))
}

/// Puts the calling (writer) thread in Linux's `SCHED_BATCH` class: same CPU share, but waking
/// it does not preempt the thread that woke it. Without this, on a busy core every job sent
/// preempted the request thread at once, so the writer committed batches of one or two while
/// requests were still being parsed (DPoP, C=32, one core: median batch 1, mean 4.8; with it,
/// mean 15 and 73 → 53 µs of writer CPU per refresh). Elsewhere: nothing.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the calling thread (pid 0) with a valid, initialised param.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_BATCH not available for the SQLite writer");
        }
    }
}

fn writer_loop(mut conn: Connection, rx: flume::Receiver<WriteJob>, max_batch: usize) {
    batch_scheduling();
    let batch_size = metrics::histogram!("autional_store_batch_size");
    let mut batch: Vec<WriteJob> = Vec::with_capacity(max_batch);
    let mut done: Vec<Completion> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter().take(max_batch - 1));
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin transaction");
            for job in batch.drain(..) {
                let (_, c) = job(None);
                c(false);
            }
            continue;
        }
        // One job: the transaction is its savepoint. Several: a savepoint each.
        let single = batch.len() == 1;
        let mut all_ok = true;
        for job in batch.drain(..) {
            let sp = !single && exec(&conn, "SAVEPOINT job").is_ok();
            let (ok, c) = job(Some(&mut conn));
            all_ok &= ok;
            if sp {
                let end = if ok {
                    exec(&conn, "RELEASE job")
                } else {
                    exec(&conn, "ROLLBACK TO job").and_then(|_| exec(&conn, "RELEASE job"))
                };
                if let Err(e) = end {
                    tracing::error!(error = %e, "savepoint failed");
                }
            }
            done.push(c);
        }
        let committed = if single && !all_ok {
            let _ = exec(&conn, "ROLLBACK");
            false
        } else {
            match exec(&conn, "COMMIT") {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
                    let _ = exec(&conn, "ROLLBACK");
                    false
                }
            }
        };
        batch_size.record(done.len() as f64);
        for c in done.drain(..) {
            c(committed);
        }
    }
}
