"""2000 A lookups against a local dnsmasq, 10 at a time: anyevent.dns against
dnspython's asyncio resolver, same server, same run.

Each round asks for 2000 distinct names (dnsmasq answers them from one
``address=`` line, so the server does the same work for both).  anyevent
queues all 2000 ``resolve`` calls behind ``max_outstanding=10``; asyncio runs
10 workers over the names.  Rounds alternate; the best of each counts.
Prints a Markdown table; exits 1 when the issue-4 target (≥ 1.0×) is missed.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from time import perf_counter

import _common  # noqa: F401  (puts the repository on sys.path)
from _common import Table

# this file is bench/dns.py: keep it from shadowing dnspython's ``dns`` package
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import dns.asyncresolver  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402

import anyevent.dns as aedns  # noqa: E402
from anyevent.reactor import CondVar  # noqa: E402

N = 2000
CONCURRENCY = 10
ROUNDS = 5
DOMAIN = "bench.test"


def start_dnsmasq(tmpdir):
    """dnsmasq on 127.0.0.1 and a free port; returns (process, port)."""
    path = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if path is None:
        sys.exit("dnsmasq not installed (Debian package dnsmasq-base)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(tmpdir, "dnsmasq.conf")
    with open(conf, "w") as f:
        f.write("port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
                "pid-file=\naddress=/%s/192.0.2.1\n" % (port, DOMAIN))
    user = ["--user=root"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([path, "--keep-in-foreground", "--conf-file=" + conf] + user,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = dns.message.make_query("ready." + DOMAIN, "A")
    for _ in range(100):
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.1)
            return proc, port
        except Exception:
            time.sleep(0.05)
    proc.kill()
    sys.exit("dnsmasq did not start")


def names(round_no):
    return ["h%d-%d.%s." % (round_no, i, DOMAIN) for i in range(N)]


def run_anyevent(port, round_no):
    res = aedns.Resolver(server=["127.0.0.1:%d" % port], max_outstanding=CONCURRENCY)
    cv = CondVar()
    got = []
    cv.begin()

    def done(*rrs):
        got.append(rrs)
        cv.end()
    t0 = perf_counter()
    for name in names(round_no):
        cv.begin()
        res.resolve(name, "a", done)
    cv.end()
    cv.recv()
    elapsed = perf_counter() - t0
    assert len(got) == N and all(got), "anyevent lost answers"
    return N / elapsed


async def _asyncio_round(port, round_no):
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = port
    todo = iter(names(round_no))
    got = []

    async def worker():
        for name in todo:
            answer = await res.resolve(name, "A", search=False)
            got.append(answer)
    t0 = perf_counter()
    await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
    elapsed = perf_counter() - t0
    assert len(got) == N, "asyncio lost answers"
    return N / elapsed


def run_asyncio(port, round_no):
    return asyncio.run(_asyncio_round(port, round_no))


def main():
    _common.check_core()
    with tempfile.TemporaryDirectory() as tmpdir:
        proc, port = start_dnsmasq(tmpdir)
        try:
            ours, theirs = [], []
            for r in range(ROUNDS):
                ours.append(run_anyevent(port, 2 * r))
                theirs.append(run_asyncio(port, 2 * r + 1))
        finally:
            proc.terminate()
            proc.wait()
    table = Table("DNS: %d A lookups, concurrency %d, local dnsmasq (best of %d)"
                  % (N, CONCURRENCY, ROUNDS))
    table.add("lookups", max(ours), max(theirs), "higher", 1.0, "/s")
    return table.print()


if __name__ == "__main__":
    sys.exit(main())
