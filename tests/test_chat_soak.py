"""Soak test for examples/chat_server.py (``make soak``; not part of ``make test``).

1000 clients (a tenth of them TLS) chat at random for 60 seconds.  The load
comes from a separate asyncio process (on uvloop when installed) -- this file
run as a script -- so the server never measures itself.  Reported: messages
sent and delivered, delivery latency (median, 99th percentile, max), server
RSS and CPU; then SIGTERM must say goodbye to all 1000 and exit 0.  Asserted:
no message lost, no crash, RSS flat while chatting.

Knobs (environment): SOAK_CLIENTS (1000), SOAK_SECONDS (60), SOAK_RATE (total
messages per second, 25: each is delivered to every other client).
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from tlsfixtures import certs

HERE = Path(__file__).resolve().parent
SERVER = str(HERE.parent / "examples" / "chat_server.py")
CLIENTS = int(os.environ.get("SOAK_CLIENTS", 1000))
SECONDS = float(os.environ.get("SOAK_SECONDS", 60))
RATE = float(os.environ.get("SOAK_RATE", 25))
TLS_SHARE = 10  # every 10th client talks TLS
SETTLE = 3.0  # seconds after the last message before counting deliveries
MESSAGE = re.compile(r"^<c\d+> m (\d+) ([\d.]+) ")


# ---------------------------------------------------------------------------
# The load process (this file run as a script)
# ---------------------------------------------------------------------------

class Load:
    """Counts what the simulated users send and receive."""

    def __init__(self, n):
        self.n = n
        self.sent = 0
        self.delivered = 0
        self.latencies = []
        self.commands = 0
        self.goodbyes = 0
        self.closed = 0
        self.joined = 0
        self.all_joined = asyncio.Event()

    async def client(self, i, ports, tls_ctx, start, stop):
        ctx = tls_ctx if i % TLS_SHARE == 0 else None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", ports[i % len(ports)], ssl=ctx, server_hostname="localhost" if ctx else None,
            limit=1 << 16)
        writer.write(b"/nick c%d\n" % i)  # a plain client speaking first skips the TLS sniff
        reading = asyncio.ensure_future(self.read(reader, i))
        await start.wait()
        rng = random.Random(i)
        seq = 0
        while True:
            delay = rng.expovariate(RATE / self.n)
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
            roll = rng.random()
            if roll < 0.02:
                writer.write(b"/who\n")
                self.commands += 1
            elif roll < 0.05:
                writer.write(b"/me stretches\n")
                self.commands += 1
            else:
                seq += 1
                chatter = b"x" * rng.randrange(1, 80)
                writer.write(b"m %d %.6f %s\n" % (seq, time.monotonic(), chatter))
                self.sent += 1
        await reading
        writer.close()

    async def read(self, reader, i):
        nick = "* You are now known as c%d" % i
        while True:
            line = await reader.readline()
            if not line:
                self.closed += 1
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            m = MESSAGE.match(text)
            if m:
                self.delivered += 1
                self.latencies.append(time.monotonic() - float(m.group(2)))
            elif text == nick:
                self.joined += 1
                if self.joined == self.n:
                    self.all_joined.set()
            elif text == "* Server is shutting down. Goodbye!":
                self.goodbyes += 1

    def stats(self):
        lat = sorted(self.latencies) or [0.0]
        return {
            "clients": self.n, "sent": self.sent, "commands": self.commands,
            "delivered": self.delivered, "expected": self.sent * (self.n - 1),
            "latency_max": lat[-1], "latency_p99": lat[int(len(lat) * 0.99)],
            "latency_median": lat[len(lat) // 2],
        }


async def run_load(ports, n, seconds, cafile):
    tls_ctx = ssl.create_default_context(cafile=cafile)
    load = Load(n)
    start, stop = asyncio.Event(), asyncio.Event()
    tasks = []
    for i in range(n):  # connect gradually: the listen backlog is 128
        tasks.append(asyncio.ensure_future(load.client(i, ports, tls_ctx, start, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(load.all_joined.wait(), 60)
    say("joined", {"clients": n})
    await _wait_for_line("go")
    start.set()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.sleep(SETTLE)
    say("stats", load.stats())
    await asyncio.wait_for(asyncio.gather(*tasks), 60)  # the server says goodbye and closes
    say("end", {"goodbyes": load.goodbyes, "closed": load.closed})


async def _wait_for_line(word):
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() != word:
        pass


def say(kind, data):
    print(kind, json.dumps(data), flush=True)


def load_main(argv=None):
    parser = argparse.ArgumentParser(description="chat soak load generator")
    parser.add_argument("--port", required=True,
                        help="the server's port, or ports (comma-separated): client i "
                        "connects to the (i mod n)th")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--cafile", required=True)
    args = parser.parse_args(argv)
    raise_fd_limit()
    try:  # the lighter the load process, the less its own lag counts as latency
        from uvloop import run
    except ImportError:  # uvloop comes with the bench extra, which make soak installs
        run = asyncio.run
    ports = [int(p) for p in args.port.split(",")]
    run(run_load(ports, args.clients, args.seconds, args.cafile))


def raise_fd_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def read_report(proc, kind, timeout):
    """The JSON of the load process's next ``kind`` line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        word, _, data = line.partition(" ")
        if word == kind:
            return json.loads(data)
    raise AssertionError("load process: no %r report (exit code %r)" % (kind, proc.poll()))


@pytest.mark.soak
def test_chat_soak(tmp_path, capsys):
    hard = raise_fd_limit()
    assert hard > 2 * CLIENTS + 100, "RLIMIT_NOFILE hard limit %d is too low" % hard
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as err:
        # every client comes from 127.0.0.1: no per-address cap here
        server = subprocess.Popen([sys.executable, SERVER, "--port", str(port),
                                   "--cert", certs().server_pem, "--max-per-address", "0"],
                                  stderr=err)
    load = None
    try:
        deadline = time.monotonic() + 10
        while "listening on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        rss_idle = rss_kib(server.pid)
        load = subprocess.Popen([sys.executable, __file__, "--port", str(port),
                                 "--cafile", certs().ca_file],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        began = time.monotonic()
        read_report(load, "joined", 90)
        join_seconds = time.monotonic() - began
        rss_start = rss_kib(server.pid)
        cpu_start = cpu_seconds(server.pid)
        load.stdin.write("go\n")
        load.stdin.flush()
        samples = []
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            assert server.poll() is None, "server died: " + log.read_text()[-2000:]
            samples.append(rss_kib(server.pid))
        stats = read_report(load, "stats", SETTLE + 30)
        rss_end = rss_kib(server.pid)
        cpu = cpu_seconds(server.pid) - cpu_start
        load_cpu = cpu_seconds(load.pid)
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        shutdown_seconds = time.monotonic() - began
        ending = read_report(load, "end", 30)
        assert load.wait(30) == 0
    finally:
        for proc in (load, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if load is not None:
            load.stdin.close()
            load.stdout.close()

    report = dict(stats, **ending, rss_idle_kib=rss_idle, rss_start_kib=rss_start,
                  rss_end_kib=rss_end, rss_max_kib=max(samples), server_cpu_seconds=cpu,
                  load_cpu_seconds=load_cpu, join_seconds=join_seconds,
                  shutdown_seconds=shutdown_seconds,
                  seconds=SECONDS, rate=RATE)
    with capsys.disabled():
        print("\nchat soak:", json.dumps(report, indent=1))
    assert "Traceback" not in log.read_text()
    assert stats["sent"] > 0.5 * RATE * SECONDS
    assert stats["delivered"] == stats["expected"], "messages were lost"
    assert ending["goodbyes"] == CLIENTS and ending["closed"] == CLIENTS
    # flat: the chatting itself keeps memory within 10% (+4 MiB slack) of the
    # level reached once everyone had joined
    assert rss_end < rss_start * 1.10 + 4096, report


if __name__ == "__main__":
    load_main()
