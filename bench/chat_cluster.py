"""The chat server alone and as a cluster on Redis (issue 21), and the fan-out
of one node against an asyncio relay.

Everything runs as separate processes on this machine: ``redis-server``
(private, no persistence), the chat nodes (examples/chat_server.py, compiled
core unless ``ANYEVENT_PURE_PYTHON=1``) and the load generator of the soak
test (tests/test_chat_soak.py run as a script: asyncio on uvloop, a tenth of
the clients on TLS, every message stamped with its send time).

* chat: CLIENTS clients chat for SECONDS seconds at RATE messages per second
  in all (each delivered to every other client), (a) on one node, (b) on two
  nodes on Redis with the clients split between them.  Reported: deliveries
  per second, latency p50/p99, lost deliveries, and the CPU the servers spent
  per delivery (the nodes'; with redis-server's beside it).  Target: the
  cluster within 1.25x of the single node per delivery, nothing lost.
* fan-out: FANOUT_CLIENTS idle clients on one relay; FANOUT_MESSAGES chat
  lines are PUBLISHed to Redis at once (pipelined); timed until every client
  has every line.  The relays: one node (``--redis``) against the plain
  asyncio relay below -- ``asyncio.start_server`` streams for the clients,
  redis-py's asyncio pub/sub for Redis (hiredis parsing), ``writer.write``
  to each client, as asyncio's documentation teaches -- on asyncio's
  default loop and on uvloop; the better of the two counts.  Reported:
  deliveries per second (wall clock) and per CPU second of the relay.
  Target: >= 1.5x.

``python bench/chat_cluster.py [--seconds S] [--clients N]``; exits 1 when a
target is missed.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from _common import Table, check_core

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from tlsfixtures import certs  # noqa: E402

SERVER = os.path.join(ROOT, "examples", "chat_server.py")
LOAD = os.path.join(ROOT, "tests", "test_chat_soak.py")
CHANNEL = "chat:events"
FANOUT_CLIENTS = 1000
FANOUT_MESSAGES = 2000
LINE = b"<pub> " + b"x" * 53 + b"\n"  # 60 bytes, as a chat line


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port, proc, what):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit("%s did not start" % what)


class Procs:
    """Processes started for one measurement, stopped at the end."""

    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, cmd, **kw):
        proc = subprocess.Popen(cmd, **kw)
        self.procs.append(proc)
        return proc

    def redis(self):
        port = free_port()
        proc = self.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        wait_port(port, proc, "redis-server")
        return proc, port

    def node(self, *args):
        port = free_port()
        log = open(os.path.join(self.tmp, "node-%d.log" % port), "wb")
        proc = self.start([sys.executable, SERVER, "--port", str(port), "--max-per-address",
                           "0", "--cert", certs().server_pem, *args], stderr=log)
        log.close()
        name = os.path.join(self.tmp, "node-%d.log" % port)
        ready = "cluster link up" if "--redis" in args else "listening on"
        deadline = time.monotonic() + 20
        while ready not in open(name).read():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("chat node did not start: " + open(name).read()[-2000:])
            time.sleep(0.02)
        return proc, port

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def report(load, kind):
    while True:
        line = load.stdout.readline()
        if not line:
            sys.exit("load generator ended without a %r report" % kind)
        word, _, data = line.partition(" ")
        if word == kind:
            return json.loads(data)


# -- chat: one node against two ------------------------------------------------------

def chat(a, nodes):
    """Run the soak load against ``nodes`` (1, or 2 on Redis): the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(tmp)
        try:
            servers, redis = [], None
            if nodes == 1:
                servers.append(procs.node())
            else:
                redis = procs.redis()
                url = "redis://127.0.0.1:%d" % redis[1]
                servers += [procs.node("--redis", url) for _ in range(nodes)]
            load = procs.start([sys.executable, LOAD, "--port", ",".join(str(p) for _, p in
                                                                          servers),
                                "--clients", str(a.clients), "--seconds", str(a.seconds),
                                "--cafile", certs().ca_file],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, SOAK_RATE=str(a.rate)))
            report(load, "joined")
            pids = [p.pid for p, _ in servers]
            cpu0 = [cpu_seconds(pid) for pid in pids]
            redis_cpu0 = cpu_seconds(redis[0].pid) if redis else 0.0
            load.stdin.write("go\n")
            load.stdin.flush()
            stats = report(load, "stats")
            cpu = sum(cpu_seconds(pid) - c for pid, c in zip(pids, cpu0))
            redis_cpu = cpu_seconds(redis[0].pid) - redis_cpu0 if redis else 0.0
        finally:
            procs.stop()
    delivered = stats["delivered"]
    return {"deliveries/s": delivered / a.seconds, "p50 ms": 1000 * stats["latency_median"],
            "p99 ms": 1000 * stats["latency_p99"], "lost": stats["expected"] - delivered,
            "cpu µs/delivery": 1e6 * cpu / max(1, delivered),
            "with redis µs/delivery": 1e6 * (cpu + redis_cpu) / max(1, delivered)}


# -- fan-out: one relay, many idle clients ---------------------------------------------

class _Sink(asyncio.Protocol):
    """One idle client: counts the lines it receives after the reset."""

    def __init__(self, sinks):
        self.sinks, self.lines, self.done = sinks, 0, False

    def connection_made(self, transport):
        transport.write(b"/nick s%d\n" % len(self.sinks.all))  # (a plain client speaks first)
        self.sinks.all.append(self)

    def data_received(self, data):
        self.lines += data.count(b"\n")
        if self.sinks.target and not self.done and self.lines >= self.sinks.target:
            self.done = True
            self.sinks.finished += 1
            if self.sinks.finished == len(self.sinks.all):
                print("done %.6f" % time.monotonic(), flush=True)


class _Sinks:
    def __init__(self):
        self.all, self.target, self.finished = [], 0, 0


async def sinks_main(port, n, messages):
    """The fan-out clients (``--sinks``): connect, say ``ready``; on ``go``
    count lines from zero until each has ``messages``, then say ``done``."""
    sinks = _Sinks()
    loop = asyncio.get_running_loop()
    for i in range(n):
        await loop.create_connection(lambda: _Sink(sinks), "127.0.0.1", port)
        if i % 100 == 99:
            await asyncio.sleep(0.01)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for sink in sinks.all:
        sink.lines = 0
    sinks.target = messages
    await asyncio.sleep(3600)


async def asyncio_relay(port, redis_port):
    """The relay as asyncio's documentation would have it (``--asyncio-relay``)."""
    import redis.asyncio as aioredis

    writers = set()

    async def client(reader, writer):
        writers.add(writer)
        try:
            while await reader.readline():
                pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port)
    async with server, aioredis.Redis(port=redis_port) as r, r.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        print("relay ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                data = message["data"].partition(b"\n")[2]
                for writer in writers:
                    writer.write(data)


def publish_all(redis_port, count):
    """PUBLISH ``count`` chat lines, pipelined, as another node would."""
    payload = b"benchnode#0\n" + LINE
    command = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(CHANNEL), CHANNEL.encode(), len(payload), payload)
    with socket.create_connection(("127.0.0.1", redis_port)) as s:
        s.sendall(command * count)
        replies = 0
        while replies < count:
            replies += s.recv(1 << 20).count(b"\r\n")


def fanout(a, relay):
    """Deliveries per second (wall, and per relay CPU second) of ``relay``."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(tmp)
        try:
            redis, redis_port = procs.redis()
            if relay == "anyevent":
                proc, port = procs.node("--redis", "redis://127.0.0.1:%d" % redis_port,
                                        "--cluster-ttl", "3600")
            else:
                port = free_port()
                proc = procs.start([sys.executable, __file__, "--asyncio-relay", str(port),
                                    str(redis_port), "--loop", relay],
                                   stdout=subprocess.PIPE, text=True)
                proc.stdout.readline()
            sinks = procs.start([sys.executable, __file__, "--sinks", str(port),
                                 str(a.fanout_clients), str(a.fanout_messages)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert sinks.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # the joins settle
            sinks.stdin.write("go\n")
            sinks.stdin.flush()
            time.sleep(0.2)
            cpu0 = cpu_seconds(proc.pid)
            began = time.monotonic()
            publish_all(redis_port, a.fanout_messages)
            word, _, when = sinks.stdout.readline().partition(" ")
            if word != "done":
                sys.exit("fan-out sinks ended early")
            wall = float(when) - began
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            procs.stop()
    deliveries = a.fanout_clients * a.fanout_messages
    return deliveries / wall, deliveries / max(cpu, 1e-3)


def _loop_runner(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.run
    return asyncio.run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=25)
    parser.add_argument("--fanout-clients", type=int, default=FANOUT_CLIENTS)
    parser.add_argument("--fanout-messages", type=int, default=FANOUT_MESSAGES)
    parser.add_argument("--sinks", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--asyncio-relay", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.sinks:
        return _loop_runner("uvloop")(sinks_main(*a.sinks))
    if a.asyncio_relay:
        return _loop_runner(a.loop)(asyncio_relay(*a.asyncio_relay))
    check_core()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    one, two = chat(a, 1), chat(a, 2)
    table = Table("Chat: %d clients, %g messages/s for %gs: two nodes on Redis against one"
                  % (a.clients, a.rate, a.seconds), columns=("two nodes", "one node"))
    table.add("deliveries/s", two["deliveries/s"], one["deliveries/s"])
    for key in ("p50 ms", "p99 ms", "with redis µs/delivery"):
        table.add(key, two[key], one[key], "lower")
    table.add("cpu µs/delivery", two["cpu µs/delivery"], one["cpu µs/delivery"], "lower",
              target=1 / 1.25)
    table.add("deliveries lost (both runs)", two["lost"] + one["lost"], None,
              target=("none", lambda lost: lost == 0))
    table.print()

    ours = fanout(a, "anyevent")
    theirs = {kind: fanout(a, kind) for kind in ("asyncio", "uvloop")}
    best = max(theirs, key=lambda k: theirs[k][1])
    fan = Table("Fan-out: %d messages from Redis to %d clients of one relay; asyncio relay "
                "on %s (best of asyncio, uvloop)" % (a.fanout_messages, a.fanout_clients, best))
    fan.add("deliveries/s (wall clock)", ours[0], theirs[best][0])
    fan.add("deliveries per relay CPU second", ours[1], theirs[best][1], target=1.5)
    for kind, (wall, cpu) in theirs.items():
        print("asyncio relay on %s: %.0f deliveries/s, %.0f per CPU second" % (kind, wall, cpu))
    fan.print()
    return 1 if table.missed or fan.missed else 0


if __name__ == "__main__":
    sys.exit(main())
