//! The async runtime every binary runs on.

/// Stack of each runtime thread. Tokio's default is 2 MiB; a debug build of `vidscope up` with
/// the S3 store came within one moved future of it (a job's future holds the S3 client's
/// request futures, large without optimisation, and one more move overflowed a thread), so the
/// threads get the 8 MiB a main thread has. Only the pages a thread touches are committed.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Runs a binary's `main` on a [`build`] runtime and gives its exit status ([`exit_code`]); a
/// runtime that cannot start is the failure of `program`.
///
/// The runtime is then shut down without waiting for its blocking tasks, not dropped (a drop
/// waits for every one): `main` has flushed telemetry already, and a flush it stopped waiting
/// for (the worker's, at its shutdown deadline, with an unreachable collector) or a password
/// hash still running must not hold the exit.
pub fn block_on(
    program: &str,
    main: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    match build() {
        Ok(runtime) => {
            let code = exit_code(program, runtime.block_on(main));
            runtime.shutdown_timeout(std::time::Duration::ZERO);
            code
        }
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The exit status of a binary's run; a failure is printed to stderr first, with its causes,
/// after the program's name (`vidscope-worker: cannot connect to the database: ...`).
fn exit_code(program: &str, run: anyhow::Result<()>) -> std::process::ExitCode {
    match run {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime with every driver on and [`THREAD_STACK_BYTES`] per thread.
fn build() -> std::io::Result<tokio::runtime::Runtime> {
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

    /// A blocking task still running when `main` returns does not hold the exit. Its 60 s
    /// sleep against a 20 s bound: a plain drop of the runtime would wait the whole minute.
    #[test]
    fn the_exit_does_not_wait_for_blocking_tasks() {
        let started = std::time::Instant::now();
        let code = block_on("test", async {
            drop(tokio::task::spawn_blocking(|| {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }));
            anyhow::Ok(())
        });
        assert_eq!(code, std::process::ExitCode::SUCCESS);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the exit waited {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_failed_main_is_a_failure() {
        let code = block_on("test", async { anyhow::bail!("no database") });
        assert_eq!(code, std::process::ExitCode::FAILURE);
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
