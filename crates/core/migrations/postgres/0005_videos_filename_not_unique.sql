-- Issue 28: a file name is no longer a key. Two lessons may come from files with the same name;
-- a video is found by its id, and its object key (`videos/<id>/<filename>`) stays unique per
-- upload. The index keeps the legacy `/api/videos/{filename}` lookup cheap.
ALTER TABLE videos DROP CONSTRAINT IF EXISTS videos_filename_key;
CREATE INDEX videos_filename ON videos (filename, created_at, id);
