#!/usr/bin/env python3
"""HTTP clients of the fault drills (scripts/drills/*.sh) where `vidscope loadgen` does not fit:
uploads counted one by one, progress writes whose acknowledgements are remembered, an upload
that trickles, a body declared far too large. Standard library only. Every command signs in as
the drill's admin and prints one JSON object on stdout.

    client.py --base URL --email E --password P COMMAND [options]

Commands:
  upload --count N [--concurrency C] [--tag T] [--file F]
      N uploads of F; {"sent","created","statuses","transport_errors","ids"}
  wait-ready --ids ID,... [--timeout S]
      polls each video until ready or failed; {"expected","ready","failed","pending","seconds"}
  progress --videos ID,... --seconds S [--out FILE] [--pause S] [--near-end]
      one sequential writer per video for S seconds, watchTime rising by 1 per write; FILE gets
      the last acknowledged watchTime per video; {"sent","saved","statuses","status_500",
      "status_5xx","transport_errors","status_503_without_retry_after","p99_ms",
      "longest_outage_seconds","recovered"}
  compare-progress --acked FILE --stored FILE
      FILE of "video_id watch_time" lines from the database; {"videos","lost"}
  store-audit --objects DIR --database URL
      the local store against the videos table; {"half_written","orphans","missing"}: temp
      files of unfinished puts, objects without a row, rows without their object
  slow-upload --bytes N --rate BPS [--tag T] [--limit S]
      an upload of N bytes sent at BPS bytes/s; {"outcome","status","seconds","sent_bytes"}
  oversized --declared BYTES [--limit S]
      headers declaring BYTES, the first 64 KiB, then silence; {"status","seconds"}
"""

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SAMPLE = os.path.join(ROOT, "crates", "cli", "assets", "loadgen-lesson.mp4")


class Api:
    def __init__(self, base, email, password):
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.cookie = ""
        status, _, headers = self.request(
            "POST",
            "/api/auth/login",
            json.dumps({"email": email, "password": password}).encode(),
            {"content-type": "application/json"},
        )
        if status != 200:
            sys.exit(f"client.py: admin sign-in answered {status}")
        for name, value in headers:
            if name.lower() == "set-cookie" and value.startswith("vidscope_session="):
                self.cookie = value.split(";", 1)[0]

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, body bytes, headers); status 0 when no answer came."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if self.cookie:
                h["cookie"] = self.cookie
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheaders()
        except (OSError, http.client.HTTPException):
            return 0, b"", []
        finally:
            conn.close()

    def raw(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock


def multipart(filename, data, boundary):
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail


def upload_head(api, boundary, length):
    """The request line and headers of a multipart upload declaring `length` bytes."""
    return (
        "POST /api/upload HTTP/1.1\r\n"
        f"Host: {api.host}:{api.port}\r\n"
        f"Cookie: {api.cookie}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def upload(api, args):
    data = open(args.file, "rb").read()
    results, lock = [], threading.Lock()
    next_index = iter(range(args.count))

    def run():
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            boundary = uuid.uuid4().hex
            head, tail = multipart(f"drill-{args.tag}-{i}.mp4", data, boundary)
            status, body, _ = api.request(
                "POST",
                "/api/upload",
                head + data + tail,
                {"content-type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )
            vid = None
            if status == 201:
                vid = json.loads(body).get("id")
            with lock:
                results.append((status, vid))

    threads = [threading.Thread(target=run) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "sent": len(results),
        "created": statuses.get("201", 0),
        "statuses": statuses,
        "transport_errors": statuses.get("0", 0),
        "ids": [vid for _, vid in results if vid],
    }


def wait_ready(api, args):
    ids = [i for i in args.ids.split(",") if i]
    state = {i: "unknown" for i in ids}
    started = time.monotonic()
    while True:
        for i in ids:
            if state[i] in ("ready", "failed"):
                continue
            status, body, _ = api.request("GET", f"/api/videos/{i}", timeout=5)
            if status == 200:
                state[i] = json.loads(body).get("status", "unknown")
        done = all(s in ("ready", "failed") for s in state.values())
        if done or time.monotonic() - started >= args.timeout:
            break
        time.sleep(0.5)
    values = list(state.values())
    return {
        "expected": len(ids),
        "ready": values.count("ready"),
        "failed": values.count("failed"),
        "pending": len(ids) - values.count("ready") - values.count("failed"),
        "seconds": round(time.monotonic() - started, 1),
    }


def progress(api, args):
    videos = [v for v in args.videos.split(",") if v]
    lock = threading.Lock()
    acked = {}
    saved_count = [0]
    no_retry_after = [0]
    statuses = {}
    latencies = []
    events = []  # (time, ok)
    deadline = time.monotonic() + args.seconds

    def writer(video):
        n = 0
        while time.monotonic() < deadline:
            n += 1
            # The position moves 0.55 s per write (more than the duplicate threshold), so no
            # write is skipped as a repeat. --near-end keeps it past 95 % of the 60 s sample:
            # every save is then the completing kind, a transaction of several statements.
            low = 57.5 if args.near_end else 0.0
            span = 5 if args.near_end else 100
            body = {
                "videoId": video,
                "positionSeconds": round(low + (n % span) * 0.55, 2),
                "watchTime": n,
            }
            start = time.monotonic()
            status, reply, headers = api.request(
                "POST",
                "/api/progress",
                json.dumps(body).encode(),
                {"content-type": "application/json"},
                timeout=10,
            )
            took = time.monotonic() - start
            saved = False
            if status == 200:
                try:
                    saved = bool(json.loads(reply).get("saved"))
                except ValueError:
                    pass
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                latencies.append(took)
                events.append((start, status == 200))
                if saved:
                    acked[video] = n
                    saved_count[0] += 1
                if status == 503 and not any(h.lower() == "retry-after" for h, _ in headers):
                    no_retry_after[0] += 1
            # A short breath keeps the CPU modest on a shared machine; longer after a failure.
            time.sleep(0.05 if status != 200 else args.pause)

    threads = [threading.Thread(target=writer, args=(v,)) for v in videos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(acked, f)
    events.sort()
    failures = [t for t, ok in events if not ok]
    # The longest stretch from a failed write to the next successful one (of any writer).
    longest, since = 0.0, None
    for t, ok in events:
        if not ok and since is None:
            since = t
        elif ok and since is not None:
            longest, since = max(longest, t - since), None
    recovered = since is None
    if since is not None:
        longest = max(longest, events[-1][0] - since)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else 0
    return {
        "sent": len(events),
        "saved": saved_count[0],
        "statuses": statuses,
        "status_500": statuses.get("500", 0),
        "status_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "transport_errors": statuses.get("0", 0),
        "status_503_without_retry_after": no_retry_after[0],
        "p99_ms": round(p99 * 1000),
        "longest_outage_seconds": round(longest, 1),
        "recovered": recovered,
    }


def compare_progress(_api, args):
    acked = json.load(open(args.acked))
    stored = {}
    for line in open(args.stored):
        parts = line.split()
        if len(parts) == 2:
            stored[parts[0]] = float(parts[1])
    lost = [v for v, n in acked.items() if stored.get(v, -1) < n]
    return {"videos": len(acked), "lost": len(lost), "lost_videos": lost}


def store_audit(_api, args):
    half, stored = 0, set()
    for root, _dirs, files in os.walk(args.objects):
        for name in files:
            if "~tmp-" in name:
                half += 1
            elif not name.endswith("~meta"):  # the content type beside each object
                stored.add(os.path.relpath(os.path.join(root, name), args.objects))
    # Object keys: the upload's videos/<id>/<filename>, the thumbnail's thumbnail_key.
    query = (
        "SELECT 'videos/' || id || '/' || filename FROM videos "
        "UNION ALL SELECT thumbnail_key FROM videos WHERE thumbnail_key IS NOT NULL"
    )
    if args.database.startswith("sqlite://"):
        import sqlite3

        path = args.database[len("sqlite://") :].split("?", 1)[0]
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = {r[0] for r in db.execute(query)}
    else:
        import subprocess

        out = subprocess.run(
            ["psql", args.database, "-Atqc", query], check=True, capture_output=True, text=True
        ).stdout
        rows = set(out.split())
    return {"half_written": half, "orphans": len(stored - rows), "missing": len(rows - stored)}


def slow_upload(api, args):
    data = open(args.file, "rb").read()
    boundary = uuid.uuid4().hex
    head, tail = multipart(f"drill-{args.tag}-slow.mp4", data, boundary)
    payload = data + bytes(max(0, args.bytes - len(data)))
    total = len(head) + len(payload) + len(tail)
    sock = api.raw(timeout=args.limit)
    request = upload_head(api, boundary, total)
    started = time.monotonic()
    sent = 0
    outcome, status = "limit", None
    sock.settimeout(0)
    body = head + payload + tail
    try:
        sock.sendall(request)
        chunk = max(1, args.rate // 10)
        while time.monotonic() - started < args.limit:
            try:
                got = sock.recv(4096)
                if not got:
                    outcome = "closed"
                    break
                outcome, status = "response", int(got.split(b" ", 2)[1])
                break
            except BlockingIOError:
                pass
            if sent < len(body):
                sock.setblocking(True)
                sock.sendall(body[sent : sent + chunk])
                sock.setblocking(False)
                sent += min(chunk, len(body) - sent)
            time.sleep(0.1)
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    finally:
        sock.close()
    return {
        "outcome": outcome,
        "status": status,
        "seconds": round(time.monotonic() - started, 2),
        "sent_bytes": sent,
    }


def oversized(api, args):
    boundary = uuid.uuid4().hex
    head, _ = multipart("drill-oversized.mp4", b"", boundary)
    sock = api.raw(timeout=args.limit)
    request = upload_head(api, boundary, args.declared)
    data = open(args.file, "rb").read()[: 64 * 1024]
    started = time.monotonic()
    status = None
    try:
        sock.sendall(request + head + data)
        got = sock.recv(4096)
        if got:
            status = int(got.split(b" ", 2)[1])
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sock.close()
    return {"status": status, "seconds": round(time.monotonic() - started, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("upload")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=2)
    s.add_argument("--tag", default=uuid.uuid4().hex[:8])
    s.add_argument("--file", default=SAMPLE)
    s = sub.add_parser("wait-ready")
    s.add_argument("--ids", required=True)
    s.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("progress")
    s.add_argument("--videos", required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--out")
    s.add_argument("--pause", type=float, default=0.005)
    s.add_argument("--near-end", action="store_true")
    s = sub.add_parser("compare-progress")
    s.add_argument("--acked", required=True)
    s.add_argument("--stored", required=True)
    s = sub.add_parser("store-audit")
    s.add_argument("--objects", required=True)
    s.add_argument("--database", required=True)
    s = sub.add_parser("slow-upload")
    s.add_argument("--bytes", type=int, required=True)
    s.add_argument("--rate", type=int, required=True)
    s.add_argument("--tag", default=uuid.uuid4().hex[:8])
    s.add_argument("--limit", type=float, default=90)
    s.add_argument("--file", default=SAMPLE)
    s = sub.add_parser("oversized")
    s.add_argument("--declared", type=int, required=True)
    s.add_argument("--limit", type=float, default=60)
    s.add_argument("--file", default=SAMPLE)
    args = p.parse_args()
    commands = {
        "upload": upload,
        "wait-ready": wait_ready,
        "progress": progress,
        "compare-progress": compare_progress,
        "store-audit": store_audit,
        "slow-upload": slow_upload,
        "oversized": oversized,
    }
    offline = args.command in ("compare-progress", "store-audit")
    api = None if offline else Api(args.base, args.email, args.password)
    print(json.dumps(commands[args.command](api, args)))


if __name__ == "__main__":
    main()
