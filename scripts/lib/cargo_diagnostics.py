"""Reads `cargo --message-format json` on stdin: shows every compiler message, passes the
other lines through, and writes the warnings and errors of the workspace's own crates to the
file named by the first argument (empty when there were none).

scripts/test.sh builds the tests through clippy-driver, so that file holds clippy's findings
too: its "cargo clippy" phase fails when the file is not empty, as `-D warnings` would.
"""

import json
import sys


def main() -> None:
    findings = []
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            sys.stderr.write(line)
            continue
        if message.get("reason") != "compiler-message":
            continue
        diagnostic = message["message"]
        rendered = diagnostic.get("rendered") or diagnostic.get("message", "")
        sys.stderr.write(rendered)
        # Dependencies from a registry are built with `--cap-lints allow`; the workspace's own
        # crates are path packages.
        own = message.get("package_id", "").startswith("path+file://")
        if own and diagnostic.get("level") in ("warning", "error"):
            findings.append(f"{message['target']['name']} ({', '.join(message['target']['kind'])}):\n{rendered}")
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        out.write("\n".join(findings))


if __name__ == "__main__":
    main()
