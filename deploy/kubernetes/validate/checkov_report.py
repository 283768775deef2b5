"""Summarizes checkov's JSON report (stdin) for scripts/check-k8s.sh.

Prints each failed check and each skip with its reason (the checkov.io/skipN annotations) on
stderr, the counts on stdout; exits 1 on a failed check, on a file checkov could not parse
(checkov skips those silently otherwise) or when nothing was checked.
"""

import json
import sys

try:
    report = json.load(sys.stdin)
except ValueError:
    sys.exit("checkov printed no JSON report")
runs = report if isinstance(report, list) else [report]
total = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for run in runs:
    summary = run.get("summary", run)  # nothing scanned: checkov prints the summary alone
    for key in total:
        total[key] += summary.get(key, 0)
    results = run.get("results", {})
    for c in results.get("failed_checks", []):
        print(f"FAIL {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})", file=sys.stderr)
    for c in results.get("skipped_checks", []):
        reason = c["check_result"].get("suppress_comment", "")
        print(f"skipped {c['check_id']} on {c['resource']}: {reason}", file=sys.stderr)
    for f in results.get("parsing_errors", []):
        print(f"FAIL checkov could not parse {f}", file=sys.stderr)
print("{passed} passed, {failed} failed, {skipped} skipped, {parsing_errors} unparsable files".format(**total))
sys.exit(1 if total["failed"] or total["parsing_errors"] or not total["passed"] else 0)
