-- Issue 28: the lesson list pages by keyset, newest first (`ORDER BY created_at DESC, id DESC`
-- from a cursor `(created_at, id) < (...)`, `videos::list_page`). This index serves that order
-- and range, so a page reads about `limit` rows whatever the library's size or the page's depth,
-- instead of sorting every lesson on each request (measured at 10 000 lessons: docs/capacity.md).
CREATE INDEX videos_listing ON videos (created_at, id);
