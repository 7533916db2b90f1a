"""Line readers: every spelling of "read a line" at the same speed (issue 22).

200,000 lines of 62 bytes (60 bytes and an end of line) written through a
socketpair by a thread; one ``push_read("line", ...)`` per line (or
``push_read("regex", ...)``, the last row), the next pushed from the callback.  Lines per second for each spelling, on the
compiled core and on the pure-Python modules (each in its own process),
beside Perl AnyEvent::Handle 7.17 (bench/lines.pl, on EV) reading the same
stream with the same spelling.

usage: lines.py [--lines N] [--rounds R]
       lines.py --run SPELLING N  (internal: one measurement, prints lines/s)
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import _common  # noqa: F401  (puts the repository on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))

#: spelling -> (the eol argument as Python writes it, its Perl spelling, the
#: line end sent, the read type)
SPELLINGS = {
    "default": (None, None, b"\n", "line"),
    'b"\\n"': (b"\n", '"\\n"', b"\n", "line"),
    'b"\\r\\n"': (b"\r\n", '"\\015\\012"', b"\r\n", "line"),
    "qr/\\r?\\n/": (re.compile(rb"\r?\n"), "qr/\\r?\\n/", b"\r\n", "line"),
    "qr/(?:\\r?\\n|\\0)/": (re.compile(rb"(?:\r?\n|\x00)"), "qr/(?:\\r?\\n|\\0)/", b"\r\n",
                            "line"),
    "regex qr/\\r\\n/": (re.compile(rb"\r\n"), "qr/\\r\\n/", b"\r\n", "regex"),
}


def run(spelling, n):
    """Read ``n`` lines with one spelling; lines per second."""
    from anyevent import AE
    from anyevent.handle import Handle
    eol, _, end, kind = SPELLINGS[spelling]
    a, b = socket.socketpair()
    data = b"x" * 60 + end
    threading.Thread(target=lambda: (b.sendall(data * n), b.close()), daemon=True).start()
    cv = AE.cv()
    count = 0

    def got(h, line, *e):
        nonlocal count
        count += 1
        if count == n:
            cv.send()
        else:
            h.push_read(*args)
    args = (kind, got) if eol is None else (kind, eol, got)
    h = Handle(fh=a, on_error=lambda *x: cv.croak(x[2]))
    start = time.perf_counter()
    h.push_read(*args)
    cv.recv()
    return n / (time.perf_counter() - start)


def measure(spelling, n, pure=False):
    env = dict(os.environ, ANYEVENT_PURE_PYTHON="1" if pure else "")
    out = subprocess.run([sys.executable, __file__, "--run", spelling, str(n)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def measure_perl(spelling, n):
    _, perl_eol, end, kind = SPELLINGS[spelling]
    out = subprocess.run(["perl", os.path.join(HERE, "lines.pl"), str(n), perl_eol or "",
                          "crlf" if end == b"\r\n" else "lf", kind],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", nargs=2)
    args = parser.parse_args()
    if args.run:
        print(run(args.run[0], int(args.run[1])))
        return
    _common.check_core()
    rows = {}
    for _ in range(args.rounds):
        for spelling in SPELLINGS:
            row = rows.setdefault(spelling, [0, 0, 0])
            row[0] = max(row[0], measure(spelling, args.lines))
            row[1] = max(row[1], measure(spelling, args.lines, pure=True))
            row[2] = max(row[2], measure_perl(spelling, args.lines))
    default = rows["default"][0]
    print("| spelling | compiled, M lines/s | vs default | pure Python | Perl 7.17 (EV) | vs Perl |")
    print("|---|---|---|---|---|---|")
    for spelling, (compiled, pure, perl) in rows.items():
        print("| `%s` | %.2f | %.2f× | %.2f | %.2f | %.1f× |" % (
            spelling.replace("|", "\\|"), compiled / 1e6, default / compiled, pure / 1e6, perl / 1e6, compiled / perl))
    print(json.dumps({k: v for k, v in rows.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
