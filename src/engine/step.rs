//! One step of the loop: the commands that arrived together (group commit)
//! are applied in order, then whatever fell due; the whole step is made
//! durable with one flush; only then are callers answered and executors
//! called.

use super::{Approval, Command, Engine, EngineError, EventResult};
use tokio::sync::oneshot;

/// Most commands applied before one shared flush.
const GROUP_MAX: usize = 1024;

/// Where a command's answer goes.
type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// Answers held back until the step is durable (engineering-notes habit 3:
/// acknowledge only what is durable), sent in this order.
#[derive(Default)]
struct Replies {
    /// Reload, sweep, apply-policy and ping answers, as they came.
    done: Vec<Box<dyn FnOnce() + Send>>,
    approve: Vec<(Reply<Approval>, Result<Approval, EngineError>)>,
    retry: Vec<(Reply<usize>, usize)>,
    ingest: Vec<(Reply<Vec<EventResult>>, Vec<EventResult>)>,
    pause: Vec<Reply<()>>,
}

impl Replies {
    /// Holds back an answer that is ready but not yet durable.
    fn later(&mut self, answer: impl FnOnce() + Send + 'static) {
        self.done.push(Box::new(answer));
    }

    /// Sends every answer (a caller that gave up is not an error).
    fn send(self) {
        for answer in self.done {
            answer();
        }
        for (reply, result) in self.approve {
            let _ = reply.send(result);
        }
        for (reply, n) in self.retry {
            let _ = reply.send(Ok(n));
        }
        for (reply, results) in self.ingest {
            let _ = reply.send(Ok(results));
        }
        for reply in self.pause {
            let _ = reply.send(Ok(()));
        }
    }
}

impl Engine {
    /// The first command and whatever else is already queued, up to a group.
    pub(super) fn gather(&mut self, first: Command) -> Vec<Command> {
        let mut cmds = vec![first];
        while cmds.len() < GROUP_MAX {
            match self.rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        cmds
    }

    /// Applies a group of commands and whatever fell due, makes it durable,
    /// then answers and calls executors.
    pub(super) async fn step(&mut self, cmds: Vec<Command>) -> Result<(), EngineError> {
        let mut replies = Replies::default();
        for cmd in cmds {
            self.apply(cmd, &mut replies)?;
        }
        self.check_clock()?;
        let now = self.clock.now();
        self.tick(now)?;
        self.calls.set_gate(self.rules().may_dispatch && !self.draining);
        self.make_durable().await?;
        replies.send();
        self.dispatch();
        self.answer_clock_waiters();
        Ok(())
    }

    /// Applies one command to the store (not yet durable), holding its
    /// answer back in `replies`.
    fn apply(&mut self, cmd: Command, replies: &mut Replies) -> Result<(), EngineError> {
        match cmd {
            Command::Ingest { events, reply } => {
                let results = self.ingest(&events)?;
                replies.ingest.push((reply, results));
            }
            Command::Clock { op, reply } => self.move_clock(op, reply)?,
            Command::Pause { paused, reply } => {
                self.set_paused(paused)?;
                replies.pause.push(reply);
            }
            Command::Retry { resource, store, reply } => {
                let n = self.retry(&resource, store.as_deref())?;
                replies.retry.push((reply, n));
            }
            Command::RetrySubject { subject, store, reply } => {
                let n = self.retry_subject(&subject, store.as_deref())?;
                replies.retry.push((reply, n));
            }
            Command::Approve { batch_digest, reply } => {
                let result = self.approve(batch_digest)?;
                replies.approve.push((reply, result));
            }
            Command::CopyResult { owner, store, copy, action, outcome } => {
                self.calls.finish(&(owner.clone(), store.clone(), copy.clone()));
                match owner {
                    super::dispatch::Owner::Resource(resource) => {
                        self.copy_result(&resource, &store, &copy, outcome)?
                    }
                    super::dispatch::Owner::Subject(key) => match super::privacy::personal_action(action) {
                        Some(action) => self.personal_result(&key, &copy, &store, action, outcome)?,
                        None => tracing::error!(
                            action = action.as_str(),
                            "a personal call answered for an action it cannot ask"
                        ),
                    },
                }
            }
            Command::NoticeResult { resource, key, outcome } => {
                self.notices.in_flight.remove(&key);
                self.notice_result(&resource, &key, outcome)?;
            }
            Command::Reload { config, reply } => match self.reload(config)? {
                // Answered once its reconcile sweep is done (and durable).
                Ok(report) => {
                    let then = move |_| {
                        let _ = reply.send(Ok(report));
                    };
                    self.sweeps.push_back(super::admin::SweepRun::then(super::SweepKind::Reconcile, then));
                }
                Err(e) => replies.later(move || {
                    let _ = reply.send(Err(e));
                }),
            },
            Command::ReloadFailed { error, reply } => {
                self.reload_failed(error)?;
                replies.later(move || {
                    let _ = reply.send(Ok(()));
                });
            }
            Command::Sweep { kind, reply } => self.sweeps.push_back(super::admin::SweepRun::new(kind, Some(reply))),
            Command::ApplyPolicy { product, reply } => self.apply_policy(product, reply),
            Command::Ping { reply } => replies.later(move || {
                let _ = reply.send(Ok(()));
            }),
        }
        Ok(())
    }
}
