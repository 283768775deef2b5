//! The async runtime every binary runs on.

/// Stack of each runtime thread. Tokio's default is 2 MiB; a debug build of `vidscope up` with
/// the S3 store came within one moved future of it (a job's future holds the S3 client's
/// request futures, large without optimisation, and one more move overflowed a thread), so the
/// threads get the 8 MiB a main thread has. Only the pages a thread touches are committed.
pub const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Runs a binary's `main` on a [`build`] runtime; a runtime that cannot start is the failure
/// of `program`.
pub fn block_on(
    program: &str,
    main: impl std::future::Future<Output = std::process::ExitCode>,
) -> std::process::ExitCode {
    match build() {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime with every driver on and [`THREAD_STACK_BYTES`] per thread.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 MiB of frames, one 64 KiB buffer each: past tokio's default stack, within ours.
    fn deep(depth: usize) -> u64 {
        let frame = std::hint::black_box([depth as u8; 64 * 1024]);
        if depth == 0 {
            return 0;
        }
        u64::from(frame[frame.len() - 1]) + deep(depth - 1)
    }

    #[test]
    fn a_task_may_use_more_stack_than_tokios_default() {
        let runtime = build().expect("the runtime starts");
        // Spawned, so it runs on a runtime thread rather than this test's own.
        let task = runtime.spawn(async { deep(48) });
        let sum = runtime.block_on(task).expect("the task did not panic");
        assert_eq!(sum, (1..=48u64).sum::<u64>());
    }
}
