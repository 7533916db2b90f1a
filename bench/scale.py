"""Echo throughput and memory from 10 to 10,000 concurrent connections.

The servers and the C load client are those of ``echo.py`` (1 KiB messages,
each connection sends one and waits for its echo).  For every connection
count and server this prints messages/s, the server's CPU time per message
(user + system, from /proc: the cost per message that must stay flat as the
count grows) and its RSS growth per connection once all connections are busy.
Ratios are against the best of asyncio's configurations in the same run
(default and glibc-malloc-tuned) and against uvloop.

usage: scale.py [--counts 10,100,1000,10000] [--seconds S] [--rounds N] [--plot]

``--plot`` writes ``bench/scale.png`` (matplotlib, from the ``bench`` extra).
"""

import argparse
import os
import subprocess
import sys

import _common
import echo

SERVERS = ["anyevent", "asyncio-protocol", "asyncio-protocol-tuned", "uvloop-protocol"]
ASYNCIO = ("asyncio-protocol", "asyncio-protocol-tuned")
PNG = os.path.join(echo.HERE, "scale.png")


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client, kind, conns, seconds):
    """One run: (messages/s, CPU µs per message, RSS KiB per connection)."""
    server = echo.Server(kind)
    try:
        rss0, cpu0 = server.rss_kib(), _cpu_seconds(server.proc.pid)
        proc = subprocess.Popen([client, str(server.port), str(conns), "1024", "0",
                                 str(seconds)], stdout=subprocess.PIPE, text=True)
        echo._pin(proc.pid, 0)
        out = proc.communicate()[0]
        cpu1, rss1 = _cpu_seconds(server.proc.pid), server.rss_kib()
        if proc.returncode:
            raise RuntimeError("echo_client failed against %s with %d connections" % (kind, conns))
    finally:
        server.close()
    messages, _, secs = out.split()
    messages = int(messages)
    return messages / float(secs), (cpu1 - cpu0) / messages * 1e6, (rss1 - rss0) / conns


def run(client, counts, seconds, rounds):
    """Best round per (count, kind): the highest rate, with its CPU and RSS figures."""
    best = {}
    for conns in counts:
        for _ in range(rounds):
            for kind in SERVERS:
                result = measure(client, kind, conns, seconds)
                if (conns, kind) not in best or result[0] > best[conns, kind][0]:
                    best[conns, kind] = result
    return best


def report(best, counts):
    rows = []
    for conns in counts:
        ref = max(ASYNCIO, key=lambda k: best[conns, k][0])
        for kind in SERVERS:
            rate, cpu, rss = best[conns, kind]
            rows.append(["{:,}".format(conns), echo.LABELS[kind], "{:,.0f}".format(rate),
                         "%.1f" % cpu, "%.2f" % rss,
                         echo._ratio(rate, best[conns, ref][0]),
                         echo._ratio(rate, best[conns, "uvloop-protocol"][0])])
    print("### 1 KiB echo by connection count (ratios: vs the better asyncio row, vs uvloop)")
    print()
    echo._table(["conns", "server", "msg/s", "CPU µs/msg", "RSS KiB/conn", "vs asyncio best",
                 "vs uvloop"], rows)


def plot(best, counts):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in SERVERS:
        left.plot(counts, [best[c, kind][0] for c in counts], marker="o", label=echo.LABELS[kind])
        right.plot(counts, [best[c, kind][1] for c in counts], marker="o", label=echo.LABELS[kind])
    for ax, title in ((left, "messages/s"), (right, "server CPU µs per message")):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent connections")
        ax.set_title("1 KiB echo: " + title)
        ax.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PNG, dpi=100)
    print("wrote %s" % PNG)


def main():
    _common.check_core()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="10,100,1000,10000")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    echo.raise_fd_limit(max(counts) + 200)  # each of client and server inherits it
    client = echo.build_client()
    best = run(client, counts, args.seconds, args.rounds)
    report(best, counts)
    if args.plot:
        plot(best, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
