-- The job pipeline (issue 4).

-- What the probe learns about a video.
ALTER TABLE videos ADD COLUMN video_codec TEXT;
ALTER TABLE videos ADD COLUMN audio_codec TEXT;
ALTER TABLE videos ADD COLUMN width BIGINT;
ALTER TABLE videos ADD COLUMN height BIGINT;

-- Transactional outbox: written in the same transaction as the change that causes the job
-- (an upload's video row, a probe's result); the relay publishes rows to the queue and stamps
-- `published_at`. `id` is the job id, so a row published twice is one job to the handlers.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    trace_context TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (published_at, created_at);

-- The embedded queue (used when Redis is not configured). `attempt` counts deliveries;
-- a lease (`lease_token`, `lease_until`) hides a claimed job until it is acknowledged,
-- retried, dead-lettered, released, or its worker goes silent past `lease_until`.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    trace_context TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ready', 'leased', 'dead')),
    attempt BIGINT NOT NULL DEFAULT 0,
    enqueued_at BIGINT NOT NULL,
    available_at BIGINT NOT NULL,
    lease_token TEXT,
    lease_until BIGINT,
    error_class TEXT,
    last_error TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (status, available_at);

-- Completed job ids, for both queues: a redelivered or republished job whose id is here is
-- acknowledged without running again (exactly once in effect).
CREATE TABLE job_results (
    job_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    completed_at BIGINT NOT NULL
);
