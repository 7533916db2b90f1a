"""TLS: anyevent Handle (pyOpenSSL on memory BIOs) against asyncio with ``ssl``.

Both sides of every measurement run the same library: a server subprocess
(pinned to CPU 1) and a client subprocess (pinned to CPU 0), so one run
measures "our client + our server" against "asyncio client + asyncio server"
(uvloop too, for reference).  The client verifies the server certificate
(a trustme CA, ECDSA P-256 leaf for ``localhost``) on every side.

* echo: CONNS connections each send a 64 KiB message, wait for the whole echo
  and send again, for a fixed time; MB/s of payload echoed.  Our server is
  ``on_read`` pushing ``hdl.rbuf`` back, the asyncio one a Protocol writing
  what it receives; the clients count bytes the same way.
* handshakes: CONNS connections at a time, each connects, completes a full
  handshake (no resumption), echoes one byte and closes without close_notify
  (``destroy`` / ``transport.abort``); completed connections per second.

Handshakes run twice: with each library's default key-exchange groups
(pyOpenSSL here links OpenSSL 4, which picks X25519MLKEM768; ``ssl`` links
OpenSSL 3.0, X25519), and like for like with both sides restricted to X25519.
The echo runs once (the group does not touch the record layer).  Every figure
is the best of ROUNDS interleaved runs, as a wall rate and as a rate per CPU
second of client + server together (steadier on a shared machine).  The
version, cipher and group each side negotiated are printed.  A ratio above 1
means anyevent is better.  Exits 1 when a target (echo ≥ 1.1×, X25519
handshakes ≥ 1.0× asyncio: the RUNS table) is missed.

usage: tls.py [--seconds S] [--rounds N] [--conns N]
       tls.py --serve KIND --cert PEM --groups G   (internal)
       tls.py --client KIND --test T --port P ...  (internal)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common

# bench/dns.py would shadow dnspython (which anyevent.socket imports): drop bench/ from the path
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

KINDS = ["anyevent", "asyncio", "uvloop"]
SIZE = 65536
BACKLOG = 1024


# ---------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------

def _restrict_groups(ctx, groups):
    """Limit a pyOpenSSL context to ``groups`` (pyOpenSSL has no public setter)."""
    from OpenSSL._util import lib
    if lib.SSL_CTX_set1_curves_list(ctx._context, groups.encode()) != 1:
        raise RuntimeError("OpenSSL refused groups %r" % groups)


def our_ctx(args, server):
    from anyevent.tls import TLS
    prepare = None
    if args.groups != "default":
        prepare = lambda tls: _restrict_groups(tls.ctx, args.groups)  # noqa: E731
    if server:
        return TLS(cert_file=args.cert, prepare=prepare)
    return TLS(verify=1, verify_peername="https", ca_file=args.ca, prepare=prepare)


def stdlib_ctx(args, server):
    import ssl
    if server:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert)
    else:
        ctx = ssl.create_default_context(cafile=args.ca)
    if args.groups != "default":
        ctx.set_ecdh_curve(args.groups)
    return ctx


# ---------------------------------------------------------------------------
# Servers (run by --serve in a subprocess; print the port)
# ---------------------------------------------------------------------------

def serve_anyevent(args):
    from anyevent import AE
    from anyevent.handle import Handle
    from anyevent.socket import tcp_server

    ctx = our_ctx(args, True)
    handles = set()
    port = []

    def gone(hdl, *_):
        handles.discard(hdl)
        hdl.destroy()

    def echo(hdl):
        hdl.push_write(hdl.rbuf)
        del hdl.rbuf[:]

    def accept(sock, host, port):
        handles.add(Handle(fh=sock, tls="accept", tls_ctx=ctx, no_delay=True,
                           on_read=echo, on_error=gone, on_eof=gone))

    def prepare(sock, host, service):
        port.append(sock.getsockname()[1])
        return BACKLOG

    guard = tcp_server("127.0.0.1", 0, accept, prepare)  # noqa: F841
    print(port[0], flush=True)
    AE.cv().recv()


def serve_asyncio(args, loop):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    coro = loop.create_server(Echo, "127.0.0.1", 0, ssl=stdlib_ctx(args, True),
                              backlog=BACKLOG)
    server = loop.run_until_complete(coro)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


# ---------------------------------------------------------------------------
# Clients (run by --client in a subprocess; print one JSON line)
# ---------------------------------------------------------------------------

class Meter:
    """Counts events (bytes or handshakes) between the end of warm-up and the end,
    and the CPU seconds the client and the server spent meanwhile."""

    def __init__(self, server_pid):
        self.count = 0
        self.info = None
        self.stat = "/proc/%d/stat" % server_pid

    def cpu(self):
        with open(self.stat) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")

    def start(self, now):
        self.count = 0
        self.t0, self.cpu0 = now, self.cpu()

    def result(self, now):
        return dict(count=self.count, secs=now - self.t0, cpu=self.cpu() - self.cpu0,
                    info=self.info)


def client_anyevent(args):
    from anyevent import AE
    from anyevent.handle import Handle

    ctx = our_ctx(args, False)
    meter, done = Meter(args.server_pid), AE.cv()
    payload = os.urandom(SIZE)
    handles = set()

    def fail(hdl, fatal, message):
        done.croak("client error: %s" % message)

    def note(hdl):
        if meter.info is None:
            c = hdl.tls
            meter.info = [c.get_protocol_version_name(), c.get_cipher_name(), c.get_group_name()]

    def connect(**opts):
        hdl = Handle(connect=("127.0.0.1", args.port), peername="localhost", tls="connect",
                     tls_ctx=ctx, no_delay=True, on_error=fail, **opts)
        handles.add(hdl)
        return hdl

    def echo_read(hdl):
        got = hdl.got + len(hdl.rbuf)
        meter.count += len(hdl.rbuf)
        del hdl.rbuf[:]
        if got >= SIZE:
            got -= SIZE
            hdl.push_write(payload)
        hdl.got = got

    def handshake():
        hdl = connect()
        hdl.push_write(b"x")
        hdl.push_read("chunk", 1, finished)

    def finished(hdl, data):
        note(hdl)
        meter.count += 1
        handles.discard(hdl)
        hdl.destroy()
        handshake()

    for _ in range(args.conns):
        if args.test == "echo":
            hdl = connect(on_read=echo_read)
            hdl.got = 0
            hdl.on_starttls(lambda h, ok, msg: note(h) if ok else fail(h, True, msg))
            hdl.push_write(payload)
        else:
            handshake()
    w1 = AE.timer(args.warmup, 0, lambda: meter.start(AE.time()))  # noqa: F841
    w2 = AE.timer(args.warmup + args.seconds, 0, lambda: done.send(meter.result(AE.time())))  # noqa: F841
    return done.recv()


def client_asyncio(args, loop):
    import asyncio

    ctx = stdlib_ctx(args, False)
    meter = Meter(args.server_pid)
    payload = os.urandom(SIZE)

    def note(transport):
        if meter.info is None:
            ssl_object = transport.get_extra_info("ssl_object")
            meter.info = [ssl_object.version(), ssl_object.cipher()[0], None]

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.got = transport, 0
            note(transport)
            transport.write(payload)

        def data_received(self, data):
            meter.count += len(data)
            self.got += len(data)
            if self.got >= SIZE:
                self.got -= SIZE
                self.transport.write(payload)

    class Handshake(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.write(b"x")

        def data_received(self, data):
            note(self.transport)
            meter.count += 1
            self.transport.abort()

        def connection_lost(self, exc):
            start(Handshake)

    def start(factory):
        task = loop.create_task(loop.create_connection(
            factory, "127.0.0.1", args.port, ssl=ctx, server_hostname="localhost"))
        task.add_done_callback(lambda t: t.result())

    for _ in range(args.conns):
        start(Echo if args.test == "echo" else Handshake)
    loop.call_later(args.warmup, lambda: meter.start(loop.time()))
    result = []
    loop.call_later(args.warmup + args.seconds,
                    lambda: (result.append(meter.result(loop.time())), loop.stop()))
    loop.run_forever()
    return result[0]


def _loop(kind):
    import asyncio
    if kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def serve(args):
    if args.serve == "anyevent":
        serve_anyevent(args)
    else:
        serve_asyncio(args, _loop(args.serve))


def client(args):
    if args.client == "anyevent":
        result = client_anyevent(args)
    else:
        result = client_asyncio(args, _loop(args.client))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Driving them
# ---------------------------------------------------------------------------

def _pin(pid, cpu):
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(pid, {cpu})


def _self(*args):
    return [sys.executable, os.path.abspath(__file__)] + [str(a) for a in args]


def run_pair(kind, test, groups, files, opts):
    """One server + one client subprocess of ``kind``; the client's result dict."""
    server = subprocess.Popen(_self("--serve", kind, "--cert", files["cert"], "--groups", groups),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        _pin(server.pid, 1)
        port = server.stdout.readline()
        if not port:
            raise RuntimeError("%s server did not start" % kind)
        proc = subprocess.Popen(_self("--client", kind, "--test", test, "--port", int(port),
                                      "--server-pid", server.pid,
                                      "--ca", files["ca"], "--groups", groups,
                                      "--conns", opts.conns, "--warmup", opts.warmup,
                                      "--seconds", opts.seconds),
                                stdout=subprocess.PIPE, text=True)
        _pin(proc.pid, 0)
        out = proc.communicate()[0]
        if proc.returncode:
            raise RuntimeError("%s %s client failed" % (kind, test))
    finally:
        server.terminate()
        server.wait()
    return json.loads(out)


def measure(test, groups, files, opts):
    """Best rate and best rate per CPU-second (client + server) per kind over
    ``opts.rounds`` interleaved runs, and each kind's negotiated parameters."""
    best, per_cpu, info = {}, {}, {}
    scale = 1e6 if test == "echo" else 1
    for _ in range(opts.rounds):
        for kind in KINDS:
            r = run_pair(kind, test, groups, files, opts)
            best[kind] = max(r["count"] / r["secs"] / scale, best.get(kind, 0))
            per_cpu[kind] = max(r["count"] / r["cpu"] / scale, per_cpu.get(kind, 0))
            info[kind] = r["info"]
    return best, per_cpu, info


def stdlib_group(files, groups):
    """The group an ``ssl`` client negotiates, as a pyOpenSSL server sees it (Python 3.11's
    ``ssl`` cannot report it).  Memory BIOs, in process."""
    import ssl

    from OpenSSL import SSL
    args = argparse.Namespace(cert=files["cert"], ca=files["ca"], groups=groups)
    server = SSL.Connection(our_ctx(args, True).ctx, None)
    server.set_accept_state()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = stdlib_ctx(args, False).wrap_bio(incoming, outgoing, server_hostname="localhost")
    for _ in range(10):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        server.bio_write(outgoing.read())
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        incoming.write(server.bio_read(65536))
    return server.get_group_name()


def make_certs(tmp):
    import trustme
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    files = {"cert": os.path.join(tmp, "server.pem"), "ca": os.path.join(tmp, "ca.pem")}
    leaf.private_key_and_cert_chain_pem.write_to_path(files["cert"])
    ca.cert_pem.write_to_path(files["ca"])
    return files


# (test, groups, what is counted, label suffix, target ratio).  The group only changes
# the handshake: the echo runs once, with each side's defaults.
RUNS = [
    ("echo", "default", "64 KiB echo MB", "", 1.1),  # issue 12
    ("handshake", "default", "handshakes", ", each side's default groups", None),
    ("handshake", "X25519", "handshakes", ", both sides X25519", 1.0),
]


def _row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


def report_extra(rows, negotiated):
    """uvloop for reference, and what each side negotiated."""
    print("### uvloop for reference")
    print()
    _row(["metric", "anyevent", "uvloop", "anyevent / uvloop"])
    _row(["---"] * 4)
    for name, values in rows:
        _row([name, "%.1f" % values["anyevent"], "%.1f" % values["uvloop"],
              "%.2f×" % (values["anyevent"] / values["uvloop"])])
    print()
    print("### negotiated")
    print()
    _row(["groups", "library", "version", "cipher", "group"])
    _row(["---"] * 5)
    for row in negotiated:
        _row(row)
    print()


def main():
    _common.check_core()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=KINDS)
    parser.add_argument("--client", choices=KINDS)
    parser.add_argument("--test", choices=["echo", "handshake"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--ca")
    parser.add_argument("--groups", default="default")
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    if args.client:
        return client(args)

    table = _common.Table("TLS, %d connections, both sides the same library, best of %d × %g s"
                          % (args.conns, args.rounds, args.seconds))
    rows, negotiated = [], []
    with tempfile.TemporaryDirectory(prefix="aetls-bench-") as tmp:
        files = make_certs(tmp)
        for test, groups, what, suffix, target in RUNS:
            best, per_cpu, info = measure(test, groups, files, args)
            for name, values, goal in ((what + "/s" + suffix, best, target),
                                       (what + " per CPU-s" + suffix, per_cpu, None)):
                table.add(name, round(values["anyevent"], 1), round(values["asyncio"], 1), target=goal)
                rows.append((name, values))
            if test == "handshake":
                info["asyncio"][2] = info["uvloop"][2] = stdlib_group(files, groups) + " (probe)"
                negotiated += [[groups, kind] + info[kind] for kind in KINDS]
    status = table.print()
    report_extra(rows, negotiated)
    return status


if __name__ == "__main__":
    sys.exit(main())
