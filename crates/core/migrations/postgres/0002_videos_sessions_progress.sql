-- Sessions: only a SHA-256 of the cookie token is stored, so a database leak yields no
-- usable session.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Lessons. `filename` is the object name in the store and the streaming URL's last segment.
CREATE TABLE videos (
    id TEXT PRIMARY KEY NOT NULL,
    filename TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    duration_seconds DOUBLE PRECISION,
    thumbnail_key TEXT,
    uploaded_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Resume positions, one row per user and video. `completed` is 0/1 (BIGINT) so the same
-- queries run on both backends through sqlx's Any driver.
CREATE TABLE progress (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    video_id TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    position_seconds DOUBLE PRECISION NOT NULL,
    watch_time_seconds DOUBLE PRECISION NOT NULL,
    completed BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, video_id)
);
