"""User-space instructions per echoed message of an echo server (callgrind).

Runs one of bench/echo.py's servers under ``valgrind --tool=callgrind``,
drives it with echo_client (10 connections) for SECONDS, and divides the
instructions the server executed in that window (counters zeroed before,
dumped after, with ``callgrind_control``) by the messages echoed.  Unlike a
throughput figure, this barely moves with the load of the machine: it is
the no-regression check of the hot paths (issue 22: at most 5,200 for a
1 KiB raw echo message and 97,000 for a 16-line message, the figures of the
last profile in bench/README.md).

usage: instructions.py [--seconds S] [KIND ...]   (default: anyevent, anyevent-line)
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

from echo import CONNS, LINE, build_client

HERE = os.path.dirname(os.path.abspath(__file__))
#: kind -> (message size, the most instructions per message allowed)
KINDS = {"anyevent": (1024, 5200), "anyevent-line": (16 * LINE, 97000),
         "anyevent-line-lf": (16 * LINE, 97000), "anyevent-line-crlf": (16 * LINE, 97000)}


def measure(client, kind, seconds):
    size = KINDS[kind][0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        server = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                                   sys.executable, os.path.join(HERE, "echo.py"), "--serve", kind],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = server.stdout.readline().strip()
            extra = ["crlf"] if kind.endswith("-crlf") else []
            run = [client, port, str(CONNS), str(size)]
            subprocess.run(run + ["0", "2"] + extra, check=True, capture_output=True)  # warm up
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                           capture_output=True)
            got = subprocess.run(run + ["0", str(seconds)] + extra, check=True,
                                 capture_output=True, text=True).stdout.split()
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                           capture_output=True)
            time.sleep(0.5)
            dumps = sorted(glob.glob(out + ".*"), key=os.path.getmtime)
            with open(dumps[-1]) as f:
                total = next(int(line.split()[1]) for line in f
                             if line.startswith(("summary:", "totals:")))
        finally:
            server.kill()
            server.wait()
    return total / int(got[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    # (checked here, not with choices=: argparse versions differ in checking an
    # empty list against them, and some refuse it)
    parser.add_argument("kinds", nargs="*", metavar="kind",
                        help="what to measure, of %s (default: anyevent anyevent-line)"
                        % ", ".join(sorted(KINDS)))
    args = parser.parse_args()
    for kind in args.kinds:
        if kind not in KINDS:
            parser.error("unknown kind %r (choose from %s)" % (kind, ", ".join(sorted(KINDS))))
    args.kinds = args.kinds or ["anyevent", "anyevent-line"]
    client = build_client()
    missed = 0
    print("| server | message | instructions per message | limit |")
    print("|---|---|---|---|")
    for kind in args.kinds:
        per = measure(client, kind, args.seconds)
        size, limit = KINDS[kind]
        ok = per <= limit
        missed += not ok
        print("| %s | %d bytes | %s | %s %s |" % (kind, size, "{:,.0f}".format(per),
                                                 "{:,}".format(limit), "ok" if ok else "MISSED"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
