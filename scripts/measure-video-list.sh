#!/usr/bin/env bash
# The lesson list's page query at 10 000 lessons, on Postgres (and, with VIDSCOPE_TEST_DB=sqlite,
# on SQLite): seeds 10 000 lessons in a throwaway database (made and dropped by the test kit),
# times the first page, a deep page and a title search (median of 25 runs of
# `videos::list_page`), and prints each plan (`EXPLAIN (ANALYZE, BUFFERS)` on Postgres,
# `EXPLAIN QUERY PLAN` on SQLite). The test fails if a page sorts the table instead of reading
# the `videos_listing` index. Figures: docs/capacity.md ("The lesson list at 10 000 lessons").
#
#   scripts/measure-video-list.sh                      # Postgres at $VIDSCOPE_TEST_POSTGRES_URL
#   VIDSCOPE_TEST_DB=sqlite scripts/measure-video-list.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true
export VIDSCOPE_TEST_DB="${VIDSCOPE_TEST_DB:-postgres}"
export VIDSCOPE_TEST_POSTGRES_URL="${VIDSCOPE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ "$VIDSCOPE_TEST_DB" = postgres ]; then
    export DATABASE_URL="$VIDSCOPE_TEST_POSTGRES_URL"
else
    unset DATABASE_URL
fi
nice -n 5 cargo test --workspace --locked --test api -- \
    list_scale::the_list_query_reads_an_index_range_at_10000_lessons --exact --nocapture
