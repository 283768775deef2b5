#!/usr/bin/env bash
# Drill: an upload declares a body far over the limit (Content-Length: 3 GB, limit 2 GiB).
#
# Guarantee: refused at once with 413 (within 2 s), from the declared length, instead of being
# read until the limit or the idle timeout; the API keeps serving.
#
# Setup: SQLite and local store, vidscope-api with the default limits; a signed-in admin sends
# the headers and the first 64 KiB, then waits up to 45 s for an answer.
# Figures: the status and the seconds until it came.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init oversized-upload 120

drill_start sqlite api
drill_client oversized --declared 3000000000 --limit 45 >"$DRILL_WORK/oversized.json"
o=$DRILL_WORK/oversized.json
drill_fig status "$(jq -r '.status // "none"' "$o")"
drill_fig seconds "$(jq .seconds "$o")"

drill_check "413" jq -e '.status == 413' "$o"
drill_check "answered within 2 s" jq -e '.seconds <= 2' "$o"
drill_check "API still serving" drill_http_ok "$API_URL/healthz"
drill_finish
