#!/usr/bin/env python3
"""Every relative link in README.md and docs/*.md points at a file that exists, and README.md
stays within 200 lines. A moved or missing doc (as docs/full-stack.md once was) fails the test
command instead of being found by a reader."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")
README_MAX_LINES = 200

problems = []
files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
for md in files:
    text = md.read_text(encoding="utf-8")
    # Links inside fenced code blocks are examples, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (md.parent / path).exists():
            problems.append(f"{md.relative_to(ROOT)}: link to {target}, which does not exist")

lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
if lines > README_MAX_LINES:
    problems.append(f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/")

for p in problems:
    print(f"FAIL: {p}", file=sys.stderr)
print(f"checked {len(files)} files: {len(problems)} problem(s)", file=sys.stderr)
sys.exit(1 if problems else 0)
