//! The worker's own series: created at 0 before the first job, and the queue-depth gauge.

use opentelemetry::KeyValue;
use vidscope_core::queue::Queue;
use vidscope_telemetry::Metrics;

use crate::jobs::Registry;

/// The error classes a failed job is counted under.
const ERROR_CLASSES: [&str; 2] = ["transient", "permanent"];
/// The `state` label of `job.queue_depth`, as the queues' `depth()` name them.
const DEPTH_STATES: [&str; 4] = ["ready", "delayed", "in_flight", "dead"];
/// The `status` label of `workflow.run.status`.
const RUN_STATUSES: [&str; 3] = ["success", "retry", "failure"];

/// The `status` label of `workflow.step.status`.
const STEP_STATUSES: [&str; 2] = ["success", "failure"];

/// Creates the worker's counters at 0 for every label set known before the first job, the
/// usual Prometheus practice: a counter first seen at its first increment has no series
/// before it, so "no failures" reads "No data" and `rate()`/`increase()` miss the first one.
/// Steps come from each job's [`crate::jobs::Job::STEPS`]. A retry's `step_name` is the
/// error's type, an open set: `workflow.retry.count` is primed with `workflow_name` alone,
/// a zero series that sums correctly with the real ones. Counters only some jobs record are
/// primed by those jobs ([`crate::jobs::Job::prime_metrics`]).
pub(super) fn prime_metrics(metrics: &Metrics, registry: &Registry, queue: &Queue) {
    let system = queue.system();
    for &kind in queue.kinds() {
        let job = KeyValue::new("job.type", kind.as_str());
        for class in ERROR_CLASSES {
            let labels = [job.clone(), KeyValue::new("error.class", class)];
            metrics.job_failures_total.add(0, &labels);
            metrics.job_dead_letter_total.add(0, &labels);
        }
        metrics.messaging_client_sent_messages.add(
            0,
            &[
                KeyValue::new("messaging.system", system),
                KeyValue::new("messaging.destination.name", kind.as_str()),
            ],
        );
    }
    for (kind, steps) in registry.steps() {
        let workflow = KeyValue::new("workflow_name", kind.as_str());
        metrics
            .workflow_run_total
            .add(0, std::slice::from_ref(&workflow));
        metrics
            .workflow_retry_count
            .add(0, std::slice::from_ref(&workflow));
        for status in RUN_STATUSES {
            metrics
                .workflow_run_status
                .add(0, &[workflow.clone(), KeyValue::new("status", status)]);
        }
        for step in steps {
            for status in STEP_STATUSES {
                metrics.workflow_step_status.add(
                    0,
                    &[
                        workflow.clone(),
                        KeyValue::new("step_name", *step),
                        KeyValue::new("status", status),
                    ],
                );
            }
        }
        if steps.contains(&"db.update") {
            metrics.workflow_db_upsert.add(
                0,
                &[
                    workflow.clone(),
                    KeyValue::new("table_name", crate::jobs::VIDEOS_TABLE),
                ],
            );
        }
    }
    registry.prime_metrics(metrics);
}

/// Records `job.queue_depth` for every (job type, state), 0 for those the queue did not
/// list: a gauge recorded only for the pairs present keeps exporting the last value of a
/// pair that drained, so a cleared backlog would look stuck for ever.
pub(super) fn record_depths(
    metrics: &Metrics,
    queue: &Queue,
    depths: &[vidscope_core::queue::Depth],
) {
    for &kind in queue.kinds() {
        for state in DEPTH_STATES {
            let count = depths
                .iter()
                .filter(|d| d.kind == kind && d.state == state)
                .map(|d| d.count)
                .sum();
            metrics.job_queue_depth.record(
                count,
                &[
                    KeyValue::new("job.type", kind.as_str()),
                    KeyValue::new("state", state),
                ],
            );
        }
    }
}
