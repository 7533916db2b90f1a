#!/usr/bin/env python3
# Parallel HTTP GETs with AnyEvent::HTTP, and a summary.  Twin: fetch.pl.
# usage: python3 fetch.py [-n MAX_PER_HOST] [-t TIMEOUT] [-f FILE] [URL...]
# FILE lists more URLs, one a line (blank lines and #comments skipped).
# Progress goes to stderr, the table to stdout; the exit status is 1 unless
# every answer was a 2xx.
from __future__ import annotations

import getopt
import re
import signal
import sys
from pathlib import Path
from typing import Any

try:  # the installed package; else the one of the clone this file is in
    import anyevent
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
    import anyevent
from anyevent import AE
import anyevent.http
from anyevent.http import http_get

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

usage = "usage: %s [-n MAX_PER_HOST] [-t TIMEOUT] [-f FILE] [URL...]" % sys.argv[0]
opt = {"n": "4", "t": "30"}
try: options, args = getopt.getopt(sys.argv[1:], "n:t:f:")
except getopt.GetoptError as err: sys.exit("%s\n%s" % (err, usage))
opt.update((name[1:], value) for name, value in options)
anyevent.http.MAX_PER_HOST = int(opt["n"])  # connections at once to one host

urls = list(args)
if "f" in opt:
    try: fh = open(opt["f"])
    except OSError as err: sys.exit("%s: %s" % (opt["f"], err.strerror))
    with fh:
        for line in fh:
            line = line.strip()
            if not re.match(r"#|$", line): urls.append(line)
if not urls: sys.exit(usage)

result: dict[int, tuple[int, int, float]] = {}  # (status, bytes, seconds) for each URL by its index
finished = 0
t0 = AE.time()

# all requests at once; anyevent.http queues what exceeds MAX_PER_HOST
cv = AE.cv()
for i in range(len(urls)):
    start = AE.time()
    cv.begin()
    def got(body: bytes | None, hdr: dict[str, Any], i: int = i, start: float = start) -> None:
        global finished
        secs = AE.time() - start
        nbytes = len(body) if body is not None else 0  # no body on errors (59x)
        result[i] = (hdr["Status"], nbytes, secs)
        finished += 1
        print("[%d/%d] %d %d bytes %.3fs %s%s%s" % (
            finished, len(urls), hdr["Status"], nbytes, secs, urls[i],
            (" -> %s" % hdr["URL"] if hdr["URL"] != urls[i] else ""),  # redirected
            ("" if hdr["Status"] // 100 == 2 else " (%s)" % hdr["Reason"])), file=sys.stderr)
        cv.end()
    http_get(urls[i], got,
             timeout=float(opt["t"]),          # seconds without progress
             recurse=5,                        # redirections followed at most
             headers={"User-Agent": "fetch/1.0"})
cv.recv()
elapsed = AE.time() - t0

# the table, in the order of the arguments
w = max([3] + [len(url) for url in urls])
ok, total = 0, 0
print("%-*s %6s %10s %8s" % (w, "URL", "STATUS", "BYTES", "SECONDS"))
for i in range(len(urls)):
    status, nbytes, secs = result[i]
    print("%-*s %6d %10d %8.3f" % (w, urls[i], status, nbytes, secs))
    if status // 100 == 2: ok += 1
    total += nbytes
print("%-*s %6s %10d %8.3f" % (w, "total", "%d/%d" % (ok, len(urls)), total, elapsed))
print("%.1f requests/s" % (len(urls) / elapsed))
sys.exit(0 if ok == len(urls) else 1)
