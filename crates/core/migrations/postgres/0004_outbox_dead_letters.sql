-- Redis can lose what it holds (issue 27): the worker then publishes again, from the outbox,
-- every job published but neither completed (`job_results`) nor given up. This column records
-- the giving up (the dead letter), so a job parked for a human is not run again, and an outbox
-- row is pruned only once its job is settled either way.
ALTER TABLE outbox ADD COLUMN dead_lettered_at BIGINT;
