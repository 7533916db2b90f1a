"""TCP echo servers: anyevent Handle against asyncio, uvloop, Twisted and Perl.

Every server runs in its own subprocess (pinned to one CPU when there are
two or more); the load comes from ``echo_client`` (bench/echo_client.c,
compiled here with gcc), a small epoll client pinned to another CPU that
keeps CONNS connections busy: send a message, wait for the whole echo,
repeat.  It uses a fraction of the CPU the Python servers need, so the
server is what is measured.

* raw echo: 1 KiB and 64 KiB messages; our server is ``on_read`` pushing
  ``hdl.rbuf`` back, on our own loop and, the same code, on the asyncio and
  uvloop models (``anyevent.reactor.detect``).  Ratios are against the
  asyncio Protocol server.
* line echo: 1 KiB messages of sixteen 64-byte lines; our server does one
  ``push_read("line")`` and one ``push_write`` per line, with and without
  ``autocork``.  Ratios are against Twisted's LineReceiver.  As in Perl,
  ``push_write`` hands each line to the kernel at once (one send per line);
  with ``autocork`` the lines go out together on the next write pass, as
  Twisted's do.  The target is checked with the default settings.
* memory: RSS growth per idle connection over 3000 connections (each
  server's handle/transport with its read watcher), against asyncio.

Each throughput figure is the best of ROUNDS runs (servers interleaved).
Exits 1 when an issue-3 target is missed.

usage: echo.py [--seconds S] [--rounds N] [--skip-memory]
       echo.py --serve KIND   (internal: run one server, print its port)
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401  (puts the repository on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_SRC = os.path.join(HERE, "echo_client.c")
CLIENT_BIN = os.path.join(HERE, "echo_client.bin")
PERL_SERVER = os.path.join(HERE, "echo_server.pl")

CONNS = 10
LINE = 64
IDLE_CONNS = 3000
BACKLOG = 4096

#: asyncio receives into a fresh 256 KiB bytes object per read; glibc serves
#: that with mmap, or trims the heap top after it, and the page faults that
#: follow are expensive on some machines (VMs).  The "-tuned" server runs
#: with these glibc settings so the table shows how much that costs.
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "4194304"}

RAW_SERVERS = ["anyevent", "anyevent-asyncio", "anyevent-uvloop", "asyncio-protocol", "asyncio-protocol-tuned", "asyncio-streams",
               "uvloop-protocol", "twisted-protocol", "perl-anyevent"]
LINE_SERVERS = ["anyevent-line", "anyevent-line-autocork", "twisted-line",
                "asyncio-streams-line", "perl-anyevent-line"]
MEMORY_SERVERS = ["anyevent", "asyncio-protocol", "perl-anyevent"]

LABELS = {
    "anyevent": "anyevent Handle (on_read)",
    "anyevent-asyncio": "anyevent Handle (on_read), asyncio model",
    "anyevent-uvloop": "anyevent Handle (on_read), uvloop model",
    "asyncio-protocol": "asyncio Protocol",
    "asyncio-protocol-tuned": "asyncio Protocol, glibc malloc tuned",
    "asyncio-streams": "asyncio Streams",
    "uvloop-protocol": "uvloop Protocol",
    "twisted-protocol": "Twisted Protocol",
    "perl-anyevent": "Perl AnyEvent::Handle (EV)",
    "anyevent-line": "anyevent Handle (push_read line)",
    "anyevent-line-autocork": "anyevent Handle (push_read line, autocork)",
    "twisted-line": "Twisted LineReceiver",
    "asyncio-streams-line": "asyncio Streams readline",
    "perl-anyevent-line": "Perl AnyEvent::Handle line (EV)",
}


# ---------------------------------------------------------------------------
# The servers (run in a subprocess by --serve)
# ---------------------------------------------------------------------------

def _announce(port):
    print(port, flush=True)


def _listener():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def serve_anyevent(line, autocork=False, model="anyevent"):
    from anyevent import AE, AnyEvent
    from anyevent.handle import Handle

    AnyEvent.detect(model)
    handles = set()

    def gone(hdl, *args):
        handles.discard(hdl)
        hdl.destroy()

    def on_read(hdl):
        hdl.push_write(hdl.rbuf)
        del hdl.rbuf[:]

    def on_line(hdl, data, eol):
        hdl.push_write(data + eol)
        hdl.push_read("line", on_line)

    def accept():
        try:
            sock = lsock.accept()[0]
        except BlockingIOError:
            return
        if line:
            hdl = Handle(fh=sock, no_delay=True, on_error=gone, on_eof=gone,
                         autocork=autocork)
            hdl.push_read("line", on_line)
        else:
            hdl = Handle(fh=sock, no_delay=True, on_error=gone, on_eof=gone, on_read=on_read)
        handles.add(hdl)

    lsock = _listener()
    w = AE.io(lsock, 0, accept)  # noqa: F841  (the watcher lives while stored)
    _announce(lsock.getsockname()[1])
    AE.cv().recv()


def _serve_asyncio(loop, kind):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def streams(reader, writer):
        while True:
            data = await reader.read(262144)
            if not data:
                break
            writer.write(data)
        writer.close()

    async def streams_line(reader, writer):
        while True:
            data = await reader.readline()
            if not data:
                break
            writer.write(data)
        writer.close()

    if kind == "protocol":
        coro = loop.create_server(Echo, "127.0.0.1", 0, backlog=BACKLOG)
    else:
        handler = streams_line if kind == "streams-line" else streams
        coro = asyncio.start_server(handler, "127.0.0.1", 0, backlog=BACKLOG)
    server = loop.run_until_complete(coro)
    _announce(server.sockets[0].getsockname()[1])
    loop.run_forever()


def serve_asyncio(kind):
    import asyncio
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _serve_asyncio(loop, kind)


def serve_uvloop(kind):
    import asyncio
    import uvloop
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    _serve_asyncio(loop, kind)


def serve_twisted(line):
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import LineReceiver

    class Echo(protocol.Protocol):
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)

        def dataReceived(self, data):
            self.transport.write(data)

    class LineEcho(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            self.transport.setTcpNoDelay(True)

        def lineReceived(self, data):
            self.sendLine(data)

    factory = protocol.Factory.forProtocol(LineEcho if line else Echo)
    port = reactor.listenTCP(0, factory, backlog=BACKLOG, interface="127.0.0.1")
    _announce(port.getHost().port)
    reactor.run()


SERVE = {
    "anyevent": lambda: serve_anyevent(False),
    "anyevent-asyncio": lambda: serve_anyevent(False, model="asyncio"),
    "anyevent-uvloop": lambda: serve_anyevent(False, model="uvloop"),
    "anyevent-line": lambda: serve_anyevent(True),
    "anyevent-line-autocork": lambda: serve_anyevent(True, autocork=True),
    "asyncio-protocol": lambda: serve_asyncio("protocol"),
    "asyncio-protocol-tuned": lambda: serve_asyncio("protocol"),
    "asyncio-streams": lambda: serve_asyncio("streams"),
    "asyncio-streams-line": lambda: serve_asyncio("streams-line"),
    "uvloop-protocol": lambda: serve_uvloop("protocol"),
    "twisted-protocol": lambda: serve_twisted(False),
    "twisted-line": lambda: serve_twisted(True),
}


# ---------------------------------------------------------------------------
# Driving them
# ---------------------------------------------------------------------------

def build_client():
    """Compile echo_client.c unless the binary is newer; return its path."""
    if (not os.path.exists(CLIENT_BIN)
            or os.path.getmtime(CLIENT_BIN) < os.path.getmtime(CLIENT_SRC)):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", CLIENT_BIN, CLIENT_SRC], check=True)
    return CLIENT_BIN


def _pin(pid, cpu):
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(pid, {cpu})


class Server:
    """A server subprocess of one KIND, listening on ``self.port``."""

    def __init__(self, kind):
        if kind.startswith("perl-"):
            mode = "line" if kind.endswith("-line") else "raw"
            cmd = ["perl", PERL_SERVER, mode]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind]
        env = dict(os.environ, **MALLOC_TUNED) if kind.endswith("-tuned") else None
        # stderr is kept aside: asyncio logs every send to a peer that left
        self.errors = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errors,
                                     text=True, env=env)
        _pin(self.proc.pid, 1)
        line = self.proc.stdout.readline()
        if not line:
            self.errors.seek(0)
            raise RuntimeError("server %s did not start:\n%s" % (kind, self.errors.read()))
        self.port = int(line)

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1])
        raise RuntimeError("no VmRSS")

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.errors.close()


def drive(client, kind, size, warmup, seconds):
    """Run the load against a fresh server; return (messages/s, MB/s)."""
    server = Server(kind)
    try:
        proc = subprocess.Popen([client, str(server.port), str(CONNS), str(size),
                                 str(warmup), str(seconds)], stdout=subprocess.PIPE, text=True)
        _pin(proc.pid, 0)
        out = proc.communicate()[0]
        if proc.returncode:
            raise RuntimeError("echo_client failed against %s" % kind)
    finally:
        server.close()
    messages, nbytes, secs = out.split()
    return int(messages) / float(secs), int(nbytes) / float(secs) / 1e6


def throughput(client, kinds, size, rounds, seconds):
    """Best (messages/s, MB/s) per server kind over ``rounds`` interleaved runs."""
    best = {}
    for _ in range(rounds):
        for kind in kinds:
            rate = drive(client, kind, size, 0.3, seconds)
            if kind not in best or rate[0] > best[kind][0]:
                best[kind] = rate
    return best


def idle_memory(kind, nconns=IDLE_CONNS):
    """RSS growth of a server per idle connection, in KiB."""
    server = Server(kind)
    socks = []
    try:
        warm = socket.create_connection(("127.0.0.1", server.port))
        warm.sendall(b"x" * 100)
        warm.recv(100)
        warm.close()
        time.sleep(0.3)
        base_fds = server.fds()
        base = server.rss_kib()
        for _ in range(nconns):
            socks.append(socket.create_connection(("127.0.0.1", server.port)))
        deadline = time.monotonic() + 30
        while server.fds() < base_fds + nconns:
            if time.monotonic() > deadline:
                raise RuntimeError("%s accepted only %d connections"
                                   % (kind, server.fds() - base_fds))
            time.sleep(0.05)
        time.sleep(0.3)
        return (server.rss_kib() - base) / nconns
    finally:
        for s in socks:
            s.close()
        server.close()


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise RuntimeError("RLIMIT_NOFILE hard limit %d is below %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def _table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()


def _ratio(value, ref):
    return "%.2f×" % (value / ref)


def report_raw(results):
    sizes = sorted(results)
    head = ["server"]
    for size in sizes:
        head += ["%d KiB msg/s" % (size // 1024), "MB/s", "vs asyncio"]
    rows = []
    for kind in RAW_SERVERS:
        row = [LABELS[kind]]
        for size in sizes:
            msgs, mbs = results[size][kind]
            ref = results[size]["asyncio-protocol"][0]
            row += ["{:,.0f}".format(msgs), "%.1f" % mbs, _ratio(msgs, ref)]
        rows.append(row)
    print("### raw echo, %d connections (ratio vs asyncio Protocol)" % CONNS)
    print()
    _table(head, rows)


def report_line(results):
    ref = results["twisted-line"][0]
    rows = [[LABELS[kind], "{:,.0f}".format(results[kind][0] * 16), _ratio(results[kind][0], ref)]
            for kind in LINE_SERVERS]
    print("### line echo, %d-byte lines, 16 per message, %d connections "
          "(ratio vs Twisted LineReceiver)" % (LINE, CONNS))
    print()
    _table(["server", "lines/s", "vs Twisted"], rows)


def report_memory(results):
    ref = results["asyncio-protocol"]
    rows = [[LABELS[kind], "%.2f" % results[kind], _ratio(results[kind], ref)]
            for kind in MEMORY_SERVERS]
    print("### memory: RSS per idle connection over %d connections (ratio vs asyncio)"
          % IDLE_CONNS)
    print()
    _table(["server", "KiB/conn", "vs asyncio"], rows)


def check_targets(raw, line, memory):
    """Print each issue-3 target with its verdict; return the number missed."""
    checks = []
    if raw:
        for size, goal in ((1024, 1.1), (65536, 1.0)):
            r = raw[size]["anyevent"][0] / raw[size]["asyncio-protocol"][0]
            checks.append(("%d KiB echo ≥ %.1f× asyncio Protocol" % (size // 1024, goal),
                           "%.2f×" % r, r >= goal))
            r = raw[size]["anyevent"][0] / raw[size]["asyncio-protocol-tuned"][0]
            checks.append(("(for reference) %d KiB echo vs asyncio, malloc tuned"
                           % (size // 1024), "%.2f×" % r, None))
    if line:
        r = line["anyevent-line"][0] / line["twisted-line"][0]
        checks.append(("line echo ≥ 1.0× Twisted LineReceiver", "%.2f×" % r, r >= 1.0))
    if memory:
        kib = memory["anyevent"]
        checks.append(("≤ 0.8 KiB per idle handle", "%.2f KiB" % kib, kib <= 0.8))
    print("### targets")
    print()
    verdicts = {True: "ok", False: "MISSED", None: ""}
    _table(["target", "measured", "verdict"], [[t, m, verdicts[ok]] for t, m, ok in checks])
    return sum(ok is False for _, _, ok in checks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=sorted(SERVE))
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve]()
        return 0
    raise_fd_limit(IDLE_CONNS + 200)
    client = build_client()
    raw = {size: throughput(client, RAW_SERVERS, size, args.rounds, args.seconds)
           for size in (1024, 65536)}
    report_raw(raw)
    line = throughput(client, LINE_SERVERS, 16 * LINE, args.rounds, args.seconds)
    report_line(line)
    memory = None
    if not args.skip_memory:
        memory = {kind: idle_memory(kind) for kind in MEMORY_SERVERS}
        report_memory(memory)
    return 1 if check_targets(raw, line, memory) else 0


if __name__ == "__main__":
    sys.exit(main())
