//! Opportunistic batching of one kind of call ("group commit").
//!
//! Callers send requests one at a time and await their own answer; a
//! batcher task takes whatever has queued up (at most `max`) and runs it as
//! one statement, so one transaction, one WAL flush and one round trip
//! serve many callers. Nothing waits for a batch to fill: a lone request
//! goes at once, and batches grow only while earlier ones are executing,
//! which is exactly when amortising helps.
//!
//! A batch is one transaction: when it fails, its requests are retried one
//! by one so each caller gets its own answer and one bad request cannot
//! fail the others. (Side effects outside the transaction, such as rate
//! limit bookings in shared memory, are not undone by the failed attempt:
//! they stay booked, which can only make later requests wait longer.)

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use super::{pooled, DbError, Result};

struct Job<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Result<Resp>>,
}

/// The handle callers use; cheap to clone. The batcher task ends when the
/// last handle is dropped.
pub struct Batcher<Req, Resp> {
    name: &'static str,
    tx: mpsc::UnboundedSender<Job<Req, Resp>>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Batcher { name: self.name, tx: self.tx.clone() }
    }
}

impl<Req, Resp> Batcher<Req, Resp>
where
    Req: Clone + Send + 'static,
    Resp: Send + 'static,
{
    /// Starts the batcher. `call` runs a batch on a pooled connection and
    /// answers every request, in order; at most `in_flight` batches run at
    /// once. `sizes` observes each batch's size.
    pub fn spawn<F, Fut>(
        name: &'static str,
        pool: Pool,
        max: usize,
        in_flight: usize,
        sizes: Histogram,
        call: F,
    ) -> Batcher<Req, Resp>
    where
        F: Fn(Object, Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Resp>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job<Req, Resp>>();
        let call = Arc::new(call);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                // Take what queued up while we waited for a slot as well.
                let mut jobs = vec![first];
                while jobs.len() < max {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                sizes.observe(jobs.len() as f64);
                let (call, pool) = (call.clone(), pool.clone());
                tokio::spawn(async move {
                    run(name, &pool, call.as_ref(), jobs).await;
                    drop(slot);
                });
            }
        });
        Batcher { name, tx }
    }

    /// Queues `request` and waits for its answer.
    pub async fn call(&self, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { request, reply })
            .map_err(|_| DbError::Pool(format!("the {} batcher stopped", self.name)))?;
        answer.await.map_err(|_| DbError::Pool(format!("the {} batcher dropped a request", self.name)))?
    }
}

async fn run<Req, Resp, F, Fut>(name: &'static str, pool: &Pool, call: &F, jobs: Vec<Job<Req, Resp>>)
where
    Req: Clone,
    F: Fn(Object, Vec<Req>) -> Fut,
    Fut: Future<Output = Result<Vec<Resp>>>,
{
    let (requests, replies): (Vec<Req>, Vec<_>) = jobs.into_iter().map(|j| (j.request, j.reply)).unzip();
    let n = requests.len();
    let retry = if n > 1 { Some(requests.clone()) } else { None };
    let outcome = match pooled(pool).await {
        Ok(conn) => call(conn, requests).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(answers) if answers.len() == n => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Ok(answers) => {
            let message = format!("the {name} batch answered {} of {n} requests", answers.len());
            for reply in replies {
                let _ = reply.send(Err(DbError::Pool(message.clone())));
            }
        }
        Err(e) => match retry {
            None => {
                let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
            }
            Some(requests) => {
                // One request's bad argument (no such signal, a refused
                // value) is that request's answer, said to its caller: not
                // a log line per batch, which a flood of forged
                // notifications would turn into a flood of lines.
                if e.sqlstate().is_some_and(|c| c == "P0002" || c.starts_with("22")) {
                    debug!(batch = name, size = n, error = %e, "batch failed; retrying its requests one by one");
                } else {
                    warn!(batch = name, size = n, error = %e, "batch failed; retrying its requests one by one");
                }
                for (request, reply) in requests.into_iter().zip(replies) {
                    let answer = match pooled(pool).await {
                        Ok(conn) => call(conn, vec![request]).await.and_then(|mut a| {
                            a.pop().ok_or_else(|| DbError::Pool(format!("the {name} call answered nothing")))
                        }),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
            }
        },
    }
}
