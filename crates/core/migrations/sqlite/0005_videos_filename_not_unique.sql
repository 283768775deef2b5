-- no-transaction
-- Issue 28: a file name is no longer a key. Two lessons may come from files with the same name;
-- a video is found by its id, and its object key (`videos/<id>/<filename>`) stays unique per
-- upload. The index keeps the legacy `/api/videos/{filename}` lookup cheap.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt (the procedure of
-- https://www.sqlite.org/lang_altertable.html#otheralter). Foreign keys are switched off first
-- (outside the transaction, where the pragma is honoured): with them on, dropping the old table
-- would cascade into `progress` and delete every learner's resume position. The copy, the swap
-- and the check run in one transaction, so a failure leaves the old table as it was.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE videos_new (
    id TEXT PRIMARY KEY NOT NULL,
    filename TEXT NOT NULL,
    title TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    duration_seconds REAL,
    thumbnail_key TEXT,
    uploaded_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    video_codec TEXT,
    audio_codec TEXT,
    width BIGINT,
    height BIGINT
);
INSERT INTO videos_new (id, filename, title, content_type, size_bytes, status, duration_seconds,
                        thumbnail_key, uploaded_by, created_at, updated_at, video_codec,
                        audio_codec, width, height)
SELECT id, filename, title, content_type, size_bytes, status, duration_seconds, thumbnail_key,
       uploaded_by, created_at, updated_at, video_codec, audio_codec, width, height
FROM videos;
DROP TABLE videos;
ALTER TABLE videos_new RENAME TO videos;
CREATE INDEX videos_filename ON videos (filename, created_at, id);
COMMIT;
PRAGMA foreign_keys = ON;
