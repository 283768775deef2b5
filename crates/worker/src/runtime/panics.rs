//! A job handler's panic, turned into a job error with where it happened.

use std::any::Any;

use crate::error::JobError;

/// The job error of a handler's panic, with the panic's message, logged where it is caught:
/// inside the job's span, so the record carries the job's trace. Transient: a panic is a bug,
/// but often one met through a passing state (a race, an odd answer from a dependency); one
/// that recurs reaches the dead letter after `max_attempts` with its message.
pub(super) fn panicked(job_id: &str, payload: &(dyn Any + Send)) -> JobError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    let (file, line) = PANIC_AT
        .with(|p| p.borrow_mut().take())
        .map_or((None, None), |(f, l)| (Some(f), Some(i64::from(l))));
    tracing::error!(
        job.id = %job_id,
        panic.message = %message,
        code.file.path = file,
        code.line.number = line,
        "job handler panicked"
    );
    JobError::transient("job.panicked", format!("the handler panicked: {message}"))
}

thread_local! {
    /// Where the last panic on this thread happened, set by the hook [`remember_panic_locations`]
    /// installs and taken where the panic is caught: `catch_unwind` runs on the thread that
    /// panicked, and its payload carries only the message.
    static PANIC_AT: std::cell::RefCell<Option<(String, u32)>> = const { std::cell::RefCell::new(None) };
}

/// Keeps each panic's file and line for [`panicked`], then runs the hook that was installed
/// before (Rust's default prints to stderr). Installed once per process.
pub(super) fn remember_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                PANIC_AT.with(|p| *p.borrow_mut() = Some((at.file().to_owned(), at.line())));
            }
            previous(info);
        }));
    });
}
