//! One step of the loop: the commands that arrived together (group commit)
//! are applied in order, then whatever fell due; the whole step is made
//! durable with one flush; only then are callers answered and executors
//! called.

use super::{ClockOp, Command, Engine, EngineError};
use crate::audit::AuditKind;
use crate::store::{Flag, WriteSet};
use crate::time::fmt_rfc3339;
use serde_json::json;

/// Most commands applied before one shared flush.
const GROUP_MAX: usize = 1024;

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
        let mut ingest_replies = Vec::new();
        let mut pause_replies = Vec::new();
        let mut approve_replies = Vec::new();
        let mut retry_replies = Vec::new();
        let mut done: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        for cmd in cmds {
            match cmd {
                Command::Ingest { events, reply } => {
                    let now = self.clock.now();
                    let mut results = Vec::with_capacity(events.len());
                    for ev in &events {
                        let result = self.ingest_one(ev, now)?;
                        self.metrics.event(ev.type_name(), result.status);
                        results.push(result);
                    }
                    ingest_replies.push((reply, results));
                }
                Command::Clock { op, reply } => match self.clock.as_manual() {
                    None => {
                        let _ = reply.send(Err(EngineError::ClockNotManual));
                    }
                    Some(manual) => {
                        let now = match op {
                            ClockOp::Advance(d) => manual.advance(d.to_chrono()),
                            ClockOp::Set(t) => Some(manual.set(t)),
                        };
                        let Some(now) = now else {
                            let _ = reply.send(Err(EngineError::ClockRange));
                            continue;
                        };
                        self.store.commit(WriteSet { clock: Some(now), ..Default::default() })?;
                        tracing::info!(now = %fmt_rfc3339(now), "manual clock moved");
                        self.clock_waiters.push(reply);
                    }
                },
                Command::Pause { paused, reply } => {
                    let now = self.clock.now();
                    let mut w = WriteSet { flags: vec![(Flag::Paused, paused)], ..Default::default() };
                    let kind = if paused { AuditKind::DeletionsPaused } else { AuditKind::DeletionsResumed };
                    self.record(&mut w, now, kind, None, None, json!({}));
                    self.store.commit(w)?;
                    self.safety.paused = paused;
                    tracing::warn!(paused, "deletions {}", if paused { "paused" } else { "resumed" });
                    pause_replies.push(reply);
                }
                Command::Retry { resource, store, reply } => {
                    let now = self.clock.now();
                    let mut n = 0;
                    if let Some(mut r) = self.store.resource(&resource)? {
                        n = r.copies.iter().filter(|c| c.stuck && store.as_ref().is_none_or(|s| *s == c.store)).count();
                        let fx = r.retry_stuck(store.as_deref(), now);
                        if !fx.is_empty() {
                            let mut w = WriteSet::default();
                            self.effects(&mut w, now, &mut r, fx);
                            let due = self.due_of(&r);
                            w.put_resource(r, due);
                            self.store.commit(w)?;
                        }
                    }
                    retry_replies.push((reply, n));
                }
                Command::Approve { batch_digest, reply } => {
                    let result = self.approve(batch_digest)?;
                    approve_replies.push((reply, result));
                }
                Command::CopyResult { resource, store, copy, outcome } => {
                    self.calls.in_flight.remove(&(resource.clone(), store.clone(), copy.clone()));
                    self.copy_result(&resource, &store, &copy, outcome)?;
                }
                Command::NoticeResult { resource, key, outcome } => {
                    self.notices.in_flight.remove(&key);
                    self.notice_result(&resource, &key, outcome)?;
                }
                Command::Reload { config, reply } => {
                    let result = self.reload(config)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(result);
                    }));
                }
                Command::ReloadFailed { error, reply } => {
                    let now = self.clock.now();
                    let mut w = WriteSet::default();
                    self.record(&mut w, now, AuditKind::ConfigReloadFailed, None, None, json!({ "error": error }));
                    self.store.commit(w)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(Ok(()));
                    }));
                }
                Command::Sweep { kind, reply } => {
                    let report = self.sweep(kind)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(Ok(report));
                    }));
                }
                Command::ApplyPolicy { product, reply } => {
                    let result = self.apply_policy(&product)?;
                    done.push(Box::new(move || {
                        let _ = reply.send(result);
                    }));
                }
                Command::Ping { reply } => done.push(Box::new(move || {
                    let _ = reply.send(Ok(()));
                })),
            }
        }
        self.check_clock()?;
        let now = self.clock.now();
        self.tick(now)?;
        self.calls.set_gate(self.rules().may_dispatch && !self.draining);
        self.make_durable().await?;
        for answer in done {
            answer();
        }
        for (reply, result) in approve_replies {
            let _ = reply.send(result);
        }
        for (reply, n) in retry_replies {
            let _ = reply.send(Ok(n));
        }
        for (reply, results) in ingest_replies {
            let _ = reply.send(Ok(results));
        }
        for reply in pause_replies {
            let _ = reply.send(Ok(()));
        }
        self.dispatch();
        if self.calls.in_flight.is_empty() && self.notices.in_flight.is_empty() {
            let now = self.clock.now();
            for w in self.clock_waiters.drain(..) {
                let _ = w.send(Ok(now));
            }
        }
        Ok(())
    }
}
