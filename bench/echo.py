"""TCP echo servers: anyevent Handle against asyncio, uvloop, Twisted and Perl.

Every server runs in its own subprocess (pinned to one CPU when there are
two or more); the load comes from ``echo_client`` (bench/echo_client.c,
compiled here with gcc), a small epoll client pinned to another CPU that
keeps CONNS connections busy: send a message, wait for the whole echo,
repeat.  It uses a fraction of the CPU the Python servers need, so the
server is what is measured.

* raw echo: 1 KiB and 64 KiB messages; our server is ``on_read`` pushing
  ``hdl.rbuf`` back: on the compiled core and on the pure-Python modules
  (``ANYEVENT_PURE_PYTHON=1``), on our own loop and, the same code, on the
  asyncio and uvloop models (``anyevent.reactor.detect``).  Ratios are
  against the better of asyncio's two configurations in the same run
  (default, and glibc malloc tuned), against uvloop, and against a bare
  epoll echo loop in pure Python (the practical ceiling of Python code).
* line echo: 1 KiB messages of sixteen 64-byte lines; our server does one
  ``push_read("line")`` and one ``push_write`` per line, with and without
  ``autocork``, and spelled ``push_read("line", b"\\n")``; and with CRLF
  lines, ``push_read("line", b"\\r\\n")``.  Ratios are against Twisted's
  LineReceiver (delimiter ``b"\\n"``, or ``b"\\r\\n"`` for CRLF lines).  The replies a
  read callback pushes go out in one send when its dispatch ends (Perl
  sends each at once; nothing observable differs, see PORTING.md).  The
  target is checked with the default settings.
* memory: RSS growth per idle connection over 3000 connections (each
  server's handle/transport with its read watcher), against asyncio.

Each throughput figure is the best of ROUNDS runs (servers interleaved).
Servers run pinned to CPU 1 and the client to CPU 0 unless ``--no-pin``
(the tables say which).  Exits 1 when an issue-12 target is missed.

usage: echo.py [--seconds S] [--rounds N] [--skip-memory] [--no-pin]
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

RAW_SERVERS = ["anyevent", "anyevent-pure", "anyevent-asyncio", "anyevent-uvloop",
               "asyncio-protocol", "asyncio-protocol-tuned", "asyncio-streams",
               "uvloop-protocol", "twisted-protocol", "bare-epoll", "perl-anyevent"]
LINE_SERVERS = ["anyevent-line", "anyevent-line-lf", "anyevent-line-pure",
                "anyevent-line-autocork", "twisted-line", "asyncio-streams-line",
                "perl-anyevent-line", "anyevent-line-crlf", "twisted-line-crlf"]
#: the peer configurations a ratio is taken against: the best of each group
ASYNCIO = ("asyncio-protocol", "asyncio-protocol-tuned")
#: environment per server-kind suffix
SUFFIX_ENV = {"-tuned": MALLOC_TUNED, "-pure": {"ANYEVENT_PURE_PYTHON": "1"}}
PIN = True
MEMORY_SERVERS = ["anyevent", "asyncio-protocol", "perl-anyevent"]

LABELS = {
    "anyevent": "anyevent Handle (on_read)",
    "anyevent-pure": "anyevent Handle (on_read), pure Python",
    "bare-epoll": "bare epoll loop, pure Python (ceiling)",
    "anyevent-line-pure": "anyevent Handle (push_read line), pure Python",
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
    "anyevent-line-lf": 'anyevent Handle (push_read line, b"\\n")',
    "anyevent-line-crlf": 'anyevent Handle (push_read line, b"\\r\\n"), CRLF lines',
    "twisted-line-crlf": "Twisted LineReceiver (delimiter CRLF), CRLF lines",
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


def serve_anyevent(line, autocork=False, model="anyevent", eol=None):
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

    def on_line(hdl, data, end):
        hdl.push_write(data + end)
        hdl.push_read("line", on_line)

    def on_line_eol(hdl, data, end):  # (a call of its own: no *args in the measured path)
        hdl.push_write(data + end)
        hdl.push_read("line", eol, on_line_eol)
    read = ("line", on_line) if eol is None else ("line", eol, on_line_eol)

    def accept():
        try:
            sock = lsock.accept()[0]
        except BlockingIOError:
            return
        if line:
            hdl = Handle(fh=sock, no_delay=True, on_error=gone, on_eof=gone,
                         autocork=autocork)
            hdl.push_read(*read)
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


def serve_bare_epoll():
    """The least a Python echo server can do: one epoll, recv_into, send."""
    import select

    lsock = _listener()
    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)
    conns = {}
    buf = bytearray(262144)
    view = memoryview(buf)
    _announce(lsock.getsockname()[1])
    while True:
        for fd, _ in ep.poll():
            if fd == lsock.fileno():
                try:
                    sock = lsock.accept()[0]
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[sock.fileno()] = sock
                ep.register(sock.fileno(), select.EPOLLIN)
                continue
            sock = conns[fd]
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if not n:
                ep.unregister(fd)
                del conns[fd]
                sock.close()
                continue
            sock.send(view[:n])  # the client waits for each echo: the kernel takes it


def serve_twisted(line, delimiter=b"\n"):
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
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)

        def lineReceived(self, data):
            self.sendLine(data)
    LineEcho.delimiter = delimiter

    factory = protocol.Factory.forProtocol(LineEcho if line else Echo)
    port = reactor.listenTCP(0, factory, backlog=BACKLOG, interface="127.0.0.1")
    _announce(port.getHost().port)
    reactor.run()


SERVE = {
    "anyevent": lambda: serve_anyevent(False),
    "anyevent-asyncio": lambda: serve_anyevent(False, model="asyncio"),
    "anyevent-uvloop": lambda: serve_anyevent(False, model="uvloop"),
    "anyevent-pure": lambda: serve_anyevent(False),
    "anyevent-line": lambda: serve_anyevent(True),
    "anyevent-line-pure": lambda: serve_anyevent(True),
    "bare-epoll": lambda: serve_bare_epoll(),
    "anyevent-line-autocork": lambda: serve_anyevent(True, autocork=True),
    "anyevent-line-lf": lambda: serve_anyevent(True, eol=b"\n"),
    "anyevent-line-crlf": lambda: serve_anyevent(True, eol=b"\r\n"),
    "twisted-line-crlf": lambda: serve_twisted(True, delimiter=b"\r\n"),
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
    if PIN and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(pid, {cpu})


class Server:
    """A server subprocess of one KIND, listening on ``self.port``."""

    def __init__(self, kind):
        if kind.startswith("perl-"):
            mode = "line" if kind.endswith("-line") else "raw"
            cmd = ["perl", PERL_SERVER, mode]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind]
        env = dict(os.environ)
        for suffix, extra in SUFFIX_ENV.items():
            if kind.endswith(suffix):
                env.update(extra)
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
                                 str(warmup), str(seconds)] + (["crlf"] if kind.endswith("-crlf")
                                                               else []),
                                stdout=subprocess.PIPE, text=True)
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


def best_asyncio(results):
    """messages/s of the better asyncio Protocol configuration in this run."""
    return max(results[kind][0] for kind in ASYNCIO)


def _pinning():
    return "pinned: server CPU 1, client CPU 0" if PIN else "unpinned"


def report_raw(results):
    for size in sorted(results):
        res = results[size]
        refs = (best_asyncio(res), res["uvloop-protocol"][0], res["bare-epoll"][0])
        rows = [[LABELS[kind], "{:,.0f}".format(res[kind][0]), "%.1f" % res[kind][1]]
                + [_ratio(res[kind][0], ref) for ref in refs] for kind in RAW_SERVERS]
        print("### raw echo, %d KiB messages, %d connections, %s"
              % (size // 1024, CONNS, _pinning()))
        print()
        _table(["server", "msg/s", "MB/s", "vs best asyncio", "vs uvloop", "vs bare epoll"],
               rows)


def _twisted_ref(kind):
    return "twisted-line-crlf" if kind.endswith("-crlf") else "twisted-line"


def report_line(results):
    rows = [[LABELS[kind], "{:,.0f}".format(results[kind][0] * 16),
             _ratio(results[kind][0], results[_twisted_ref(kind)][0])]
            for kind in LINE_SERVERS]
    print("### line echo, %d-byte lines, 16 per message, %d connections, %s "
          "(ratio vs Twisted LineReceiver)" % (LINE, CONNS, _pinning()))
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
    """Print each issue-12 target with its verdict; return the number missed."""
    checks = []

    def check(text, ratio, goal):
        checks.append((text, "%.2f×" % ratio, ratio >= goal))
    if raw:
        small, big = raw[1024], raw[65536]
        check("1 KiB echo ≥ 1.2× best asyncio Protocol",
              small["anyevent"][0] / best_asyncio(small), 1.2)
        check("1 KiB echo ≥ 1.0× uvloop Protocol",
              small["anyevent"][0] / small["uvloop-protocol"][0], 1.0)
        check("64 KiB echo ≥ 1.0× uvloop Protocol",
              big["anyevent"][0] / big["uvloop-protocol"][0], 1.0)
    if line:
        for kind, spelling in (("anyevent-line", "default"), ("anyevent-line-lf", 'b"\\n"'),
                               ("anyevent-line-crlf", 'b"\\r\\n"')):
            check("line echo (%s) ≥ 1.3× Twisted LineReceiver" % spelling,
                  line[kind][0] / line[_twisted_ref(kind)][0], 1.3)
    if memory:
        kib = memory["anyevent"]
        checks.append(("≤ 0.8 KiB per idle handle", "%.2f KiB" % kib, kib <= 0.8))
    print("### targets")
    print()
    verdicts = {True: "ok", False: "MISSED", None: ""}
    _table(["target", "measured", "verdict"], [[t, m, verdicts[ok]] for t, m, ok in checks])
    return sum(ok is False for _, _, ok in checks)


def main():
    _common.check_core()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=sorted(SERVE))
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin
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
