//! The background worker: the job runtime ([`runtime::Worker`]), the jobs
//! ([`jobs::Registry::standard`]: `video.probe`, `video.thumbnail`, `video.purge`,
//! `crm.sync`), the ffmpeg
//! runner, the CRM client, the health endpoint and the worker's temporary directory. The
//! queue and outbox live in `vidscope_core` because the API writes to the outbox too.

pub mod crm;
pub mod error;
pub mod ffmpeg;
pub mod health;
pub mod jobs;
pub mod reconcile;
pub mod runtime;
pub mod scratch;
pub mod settings;

pub use error::JobError;
pub use runtime::Worker;
pub use settings::WorkerSettings;
