//! Periodic sweeps on tokio-cron-scheduler (`[schedule]`).
//!
//! Deadlines never depend on these: the engine runs every deadline from its
//! own store-driven schedule. The sweeps re-check that schedule (reconcile)
//! and the backup expiries, so an index entry that was ever lost cannot
//! lose a deletion. They are coarse, idempotent triggers, which is what
//! tokio-cron-scheduler is good at (engineering-notes.md: it reads the
//! system clock itself and cannot run under paused time, so the tests call
//! [`crate::engine::EngineHandle::sweep`] directly).

use crate::config::ScheduleConfig;
use crate::engine::{EngineHandle, SweepKind};
use tokio_cron_scheduler::{Job, JobScheduler};

/// Why the sweeps could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting the [schedule] sweeps: {0}")]
pub struct SweepsError(String);

/// The running cron scheduler.
pub struct Sweeps {
    scheduler: JobScheduler,
}

impl Sweeps {
    /// Starts one cron job per configured sweep; each sends the sweep to
    /// the engine and logs what it did.
    pub async fn start(schedule: &ScheduleConfig, engine: EngineHandle) -> Result<Sweeps, SweepsError> {
        let err = |e: tokio_cron_scheduler::JobSchedulerError| SweepsError(e.to_string());
        let scheduler = JobScheduler::new().await.map_err(err)?;
        for (kind, cron) in
            [(SweepKind::Reconcile, &schedule.reconcile), (SweepKind::BackupExpiry, &schedule.backup_expiry)]
        {
            let Some(cron) = cron else { continue };
            let engine = engine.clone();
            let job = Job::new_async(cron.as_str(), move |_, _| {
                let engine = engine.clone();
                Box::pin(async move {
                    match engine.sweep(kind).await {
                        Ok(r) => {
                            tracing::debug!(sweep = kind.as_str(), checked = r.checked, fixed = r.fixed, "sweep done")
                        }
                        Err(e) => tracing::warn!(sweep = kind.as_str(), error = %e, "sweep not run"),
                    }
                })
            })
            .map_err(err)?;
            scheduler.add(job).await.map_err(err)?;
            tracing::info!(sweep = kind.as_str(), cron = %cron, "sweep scheduled");
        }
        scheduler.start().await.map_err(err)?;
        Ok(Sweeps { scheduler })
    }

    /// Stops the jobs (a sweep already sent to the engine still completes).
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "stopping the sweeps");
        }
    }
}
