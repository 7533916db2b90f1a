"""TLS inside the Handle: AnyEvent's t/80_ssltest.t modes, real peers, verification."""

import errno
import os
import random
import socket
import ssl
import subprocess
import threading

import pytest

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_connect
from anyevent.tls import TLS

from conftest import free_port, require_tool, run_until, settle
from tlsfixtures import certs


def server_ctx(**kw):
    return TLS(cert_file=certs().server_pem, **kw)


# -- a port of t/80_ssltest.t: five modes, key and certificate in one PEM -------

def _ssltest(mode, listener):
    ctx = server_ctx()
    checks = []
    server_done, client_done = AE.cv(), AE.cv()
    keep = {}

    def ok(cond, name):
        checks.append((bool(cond), name))

    def accept(fh, host, port):
        ok(host == "127.0.0.1", "server_connect %d" % mode)

        def fail(h, fatal, msg):
            ok(False, "server_error <%s>" % msg)
            server_done.send()
            keep.pop("s", None)

        def eof(h):
            ok(True, "server_eof")
            server_done.send()
            keep.pop("s", None)
        hd = keep["s"] = Handle(fh=fh, tls="accept", tls_ctx=ctx, timeout=8,
                                on_error=fail, on_eof=eof)
        if mode == 1:
            hd.push_read("line", lambda h, l, e: ok(l == b"1", "line 1 <%r>" % l))
        elif mode == 2:
            hd.push_write(b"2\n")
            hd.on_drain(lambda h: (ok(True, "server_drain"), server_done.send(), keep.pop("s", None)))
        elif mode == 3:
            def got3(h, line, eol):
                ok(line == b"3", "line 3")
                h.push_write(b"4\n")
                h.on_drain(lambda h: (ok(True, "server_drain"), server_done.send(),
                                      keep.pop("s", None)))
            hd.push_read("line", got3)
        elif mode == 4:
            hd.push_write(b"5\n")
            hd.push_read("line", lambda h, l, e: ok(l == b"6", "line 6"))
        else:
            def on_read(h):
                def got_len(h, line, eol):
                    n = int(line)

                    def block(h, data):
                        ok(len(data) == n, "block server %d" % n)
                        h.push_write(b"%d\n" % n)
                        h.push_write("packstring", "N", data)
                    h.push_read("packstring", "N", block)
                h.push_read("line", got_len)
            hd.on_read(on_read)

    port = listener.serve(accept)

    def connected(fh=None, *rest):
        ok(fh is not None, "client_connect %d" % mode)

        def fail(h, fatal, msg):
            ok(False, "client_error <%s>" % msg)
            client_done.send()
            keep.pop("c", None)

        def eof(h):
            ok(True, "client_eof")
            client_done.send()
            keep.pop("c", None)
        # the default context, as in Perl's test; here it verifies the server (the
        # test CA is trusted through ANYEVENT_CA_FILE, set by the caller)
        hd = keep["c"] = Handle(fh=fh, tls="connect", peername="localhost", timeout=8,
                                on_error=fail, on_eof=eof)
        if mode == 1:
            hd.push_write(b"1\n")
            hd.on_drain(lambda h: (ok(True, "client_drain"), client_done.send(), keep.pop("c", None)))
        elif mode == 2:
            hd.push_read("line", lambda h, l, e: ok(l == b"2", "line 2"))
        elif mode == 3:
            hd.push_write(b"3\n")
            hd.push_read("line", lambda h, l, e: ok(l == b"4", "line 4"))
        elif mode == 4:
            def got5(h, line, eol):
                ok(line == b"5", "line 5")
                h.push_write(b"6\n")
                h.on_drain(lambda h: (ok(True, "client_drain"), client_done.send(),
                                      keep.pop("c", None)))
            hd.push_read("line", got5)
        else:
            rnd = random.Random(0)
            count = 64

            def block():
                n = (16 << rnd.randrange(14)) - 16 + rnd.randrange(32)
                hd.push_write(b"%d\n" % n)
                hd.push_write("packstring", "N", b"\0" * n)
            for i in range(1, count + 1):
                def got_len(h, line, eol, i=i):
                    n = int(line)

                    def echoed(h, data):
                        ok(len(data) == n, "client block %d" % n)
                        if i != count:
                            block()
                        else:
                            ok(True, "client_drain")
                            client_done.send()
                            keep.pop("c", None)
                    h.unshift_read("packstring", "N", echoed)
                hd.push_read("line", got_len)
            block()

    conn = tcp_connect("localhost", port, connected)
    run_until(server_done, 30)
    run_until(client_done, 30)
    return checks


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5])
def test_anyevent_ssltest_modes(mode, monkeypatch, listener):
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)
    checks = _ssltest(mode, listener)
    failed = [name for good, name in checks if not good]
    assert not failed
    assert len(checks) >= {1: 5, 2: 5, 3: 6, 4: 6, 5: 64 * 2 + 2}[mode]


# -- real peers ---------------------------------------------------------------------

def _pump_bulk(hdl, size, cv, keep=None):
    """Write ``size`` bytes in chunks and read ``size`` bytes back (appended to
    ``keep`` if given), then ``cv.send(count)``."""
    received = [0]
    chunk = os.urandom(65536)
    left = [size]

    def more(h):
        if left[0] <= 0:
            h.on_drain(None)
            return
        n = min(left[0], len(chunk))
        left[0] -= n
        h.push_write(chunk[:n])
    hdl.on_drain(more)

    def on_read(h):
        received[0] += len(h.rbuf)
        if keep is not None:
            keep.extend(h.rbuf)
        h.rbuf.clear()
        if received[0] >= size:
            cv.send(received[0])
    hdl.on_read(on_read)


def _python_ssl_echo_server(listener, version):
    """A thread echoing one TLS connection on ``listener``; returns (port, thread)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs().server_pem)
    ctx.minimum_version = ctx.maximum_version = version

    def serve():
        conn = listener.accept(20)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                tls.sendall(data)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener.port, t


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_our_client_against_python_ssl_server_10mb(version, listener):
    port, thread = _python_ssl_echo_server(listener, getattr(ssl.TLSVersion, version))
    cv = AE.cv()
    hdl = Handle(connect=("127.0.0.1", port), tls="connect",
                 tls_ctx={"method": version, "verify": 1, "ca_file": certs().ca_file,
                          "verify_peername": "https"},
                 peername="localhost",
                 on_error=lambda h, f, m: cv.croak(m))
    _pump_bulk(hdl, 10 * 1024 * 1024, cv)
    assert run_until(cv, 60) == 10 * 1024 * 1024
    version_seen = hdl.tls.get_protocol_version_name()
    assert version_seen == version.replace("_", ".")
    hdl.destroy()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_our_server_against_python_ssl_client_10mb(version, listener):
    ctx = server_ctx(method=version)
    done = AE.cv()
    handles = []

    def accept(fh, host, port):
        hdl = Handle(fh=fh, tls="accept", tls_ctx=ctx, on_eof=lambda h: done.send(),
                     on_error=lambda h, f, m: done.croak(m))
        hdl.on_read(lambda h: (h.push_write(bytes(h.rbuf)), h.rbuf.clear()))
        handles.append(hdl)
    port = listener.serve(accept)
    result = {}

    def client():
        cctx = ssl.create_default_context(cafile=certs().ca_file)
        cctx.minimum_version = cctx.maximum_version = getattr(ssl.TLSVersion, version)
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                cctx.wrap_socket(raw, server_hostname="localhost") as tls:
            payload = os.urandom(10 * 1024 * 1024)
            sender = threading.Thread(target=tls.sendall, args=(payload,))
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                got += tls.recv(1 << 20)
            sender.join()
            result["ok"] = bytes(got) == payload
            result["version"] = tls.version()
            tls.unwrap()
    t = threading.Thread(target=client)
    t.start()
    run_until(done, 60)
    t.join(10)
    assert result == {"ok": True, "version": version.replace("_", ".")}


def _wait_for_line(proc, needle, timeout=10):
    import time
    deadline = time.time() + timeout
    buf = b""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        buf += line
        if needle in line:
            return buf
    raise AssertionError("did not see %r in %r" % (needle, buf))


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_our_client_against_openssl_s_server(version):
    openssl = require_tool("openssl")
    port = free_port()
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", str(port), "-cert", certs().server_pem,
         "-naccept", "1", "-rev", version],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_line(proc, b"ACCEPT")
        cv = AE.cv()
        hdl = Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                     tls_ctx={"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"},
                     on_error=lambda h, f, m: cv.croak(m))
        hdl.push_write(b"hello openssl\n")
        hdl.push_read("line", lambda h, l, e: cv.send(l))
        assert run_until(cv).strip() == b"lssnepo olleh"  # -rev reverses each line
        hdl.stoptls()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_our_server_against_openssl_s_client(version, listener):
    openssl = require_tool("openssl")
    done = AE.cv()
    handles = []

    def accept(fh, host, port):
        def line(h, data, eol):
            h.push_write(b"got:" + data + b"\n")
            h.push_read("line", line)
            if data == b"bye":
                done.send()
        hdl = Handle(fh=fh, tls="accept", tls_ctx=server_ctx(),
                     on_error=lambda h, f, m: done.croak(m), on_eof=lambda h: None)
        hdl.push_read("line", line)
        handles.append(hdl)
    port = listener.serve(accept)
    proc = subprocess.Popen(
        [openssl, "s_client", "-connect", "127.0.0.1:%d" % port, "-quiet", "-no_ign_eof", version,
         "-CAfile", certs().ca_file, "-verify_return_error", "-servername", "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdin.write(b"hello\nbye\n")
    proc.stdin.flush()
    try:
        run_until(done, 15)
        flush = AE.cv()
        t = AE.timer(0.2, 0, flush)
        flush.recv()
        out = _read_all(proc)  # closes stdin: s_client says close_notify and exits
    finally:
        proc.kill()
        proc.wait()
    assert out == b"got:hello\ngot:bye\n"


def _read_all(proc, timeout=10):
    """Everything ``proc`` prints until it exits (bounded)."""
    out, _ = proc.communicate(timeout=timeout)
    return out


# -- verification failures are EPROTO with a reason -------------------------------------

def _client_against(listener, pem, peername="localhost", **client_opts):
    """Connect a verifying client to a server presenting ``pem`` on ``listener``; return
    (fatal, errno, msg)."""
    cv = AE.cv()
    handles = []

    def accept(fh, host, port):
        handles.append(Handle(fh=fh, tls="accept", tls_ctx=TLS(cert_file=pem),
                              on_error=lambda *a: None))
    port = listener.serve(accept)
    opts = {"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"}
    opts.update(client_opts)
    hdl = Handle(connect=("127.0.0.1", port), tls="connect", peername=peername, tls_ctx=opts,
                 on_error=lambda h, fatal, msg: cv.send((fatal, h.errno, msg)))
    hdl.push_read("line", lambda *a: cv.send("no error"))
    return run_until(cv)


def test_good_chain_accepted(listener):
    cv = AE.cv()
    handles = []

    def accept(fh, host, port):
        h = Handle(fh=fh, tls="accept", tls_ctx=server_ctx(), on_error=lambda *a: None)
        h.push_write(b"welcome\n")
        handles.append(h)
    port = listener.serve(accept)
    hdl = Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                 tls_ctx={"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"},
                 on_error=lambda h, f, m: cv.croak(m))
    hdl.push_read("line", lambda h, l, e: cv.send(l))
    assert run_until(cv) == b"welcome"


@pytest.mark.parametrize("which, reason", [
    ("wronghost_pem", "hostname"),
    ("expired_pem", "expired"),
    ("selfsigned_pem", "self-signed"),
    ("unknownca_pem", "local issuer"),
])
def test_bad_certificates_rejected_with_eproto_and_reason(which, reason, listener):
    fatal, err, msg = _client_against(listener, getattr(certs(), which))
    assert (fatal, err) == (True, errno.EPROTO)
    assert reason in msg


def test_on_starttls_reports_failure_instead_of_on_error(listener):
    cv = AE.cv()
    handles = []

    def accept(fh, host, port):
        handles.append(Handle(fh=fh, tls="accept", tls_ctx=TLS(cert_file=certs().expired_pem),
                              on_error=lambda *a: None))
    port = listener.serve(accept)
    hdl = Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                 tls_ctx={"verify": 1, "ca_file": certs().ca_file},
                 on_starttls=lambda h, ok, msg: cv.send((ok, msg)),
                 on_error=lambda h, f, m: cv.croak("on_error called: " + m))
    ok, msg = run_until(cv)
    assert ok is False and "expired" in msg


def test_client_certificate_required_and_checked(listener):
    results = AE.cv()
    handles = []
    sctx = TLS(cert_file=certs().server_pem, verify=1, verify_require_client_cert=1,
               ca_file=certs().ca_file)

    def accept(fh, host, port):
        h = Handle(fh=fh, tls="accept", tls_ctx=sctx,
                   on_starttls=lambda h, ok, msg: results.send(("server", ok, msg)),
                   on_error=lambda h, f, m: results.send(("server-error", False, m)))
        handles.append(h)
    port = listener.serve(accept)

    def connect(**extra):
        nonlocal results
        results = AE.cv()
        client = Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                        tls_ctx=dict(ca_file=certs().ca_file, **extra),
                        on_error=lambda *a: None)
        return run_until(results), client
    (who, ok, msg), c1 = connect(cert_file=certs().client_pem)
    assert (who, ok) == ("server", True)
    (who, ok, msg), c2 = connect()
    assert ok is False and msg
    (who, ok, msg), c3 = connect(cert_file=certs().client_unknownca_pem)
    assert ok is False and msg


# -- tls_autostart: TLS and plaintext on one port -----------------------------------------

def test_tls_autostart_serves_tls_and_plain_clients_on_one_port(monkeypatch, listener):
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)  # the default client verifies
    handles = []
    ctx = server_ctx()

    def accept(fh, host, port):
        h = Handle(fh=fh, tls_ctx=ctx, on_error=lambda *a: None, on_eof=lambda h: None)
        h.push_read("tls_autostart", "accept")
        h.push_read("line", lambda h, l, e: h.push_write(
            b"%s:%s\n" % (b"tls" if h.tls else b"plain", l)))
        handles.append(h)
    port = listener.serve(accept)
    answers = AE.cv()
    answers.begin()
    got = {}

    def client(name, **opts):
        answers.begin()
        h = Handle(connect=("127.0.0.1", port), on_error=lambda h, f, m: answers.croak(m), **opts)
        h.push_write(name.encode() + b"\n")
        h.push_read("line", lambda h, l, e: (got.__setitem__(name, l), answers.end()))
        return h
    c1 = client("one", tls="connect")
    c2 = client("two")
    answers.end()
    run_until(answers)
    assert got == {"one": b"tls:one", "two": b"plain:two"}


def test_stoptls_then_plaintext_and_on_stoptls(monkeypatch, listener):
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)  # the default client verifies
    cv = AE.cv()
    handles = []
    ctx = server_ctx()

    def accept(fh, host, port):
        def after_stop(h):
            h.push_read("line", lambda h, l, e: cv.send(("server got plain", l)))
        h = Handle(fh=fh, tls="accept", tls_ctx=ctx, on_error=lambda h, f, m: cv.croak(m),
                   on_stoptls=lambda h: (h.stoptls(), after_stop(h)))
        h.push_read("line", lambda h, l, e: None)
        handles.append(h)
    port = listener.serve(accept)

    def stopped(h):
        h.push_write(b"in the clear\n")
    client = Handle(connect=("127.0.0.1", port), tls="connect", on_stoptls=stopped,
                    on_error=lambda h, f, m: cv.croak(m),
                    on_starttls=lambda h, ok, msg: (h.push_write(b"secret\n"), h.stoptls()))
    assert run_until(cv) == ("server got plain", b"in the clear")


def test_starttls_twice_is_an_error():
    a, b = socket.socketpair()
    h = Handle(fh=a, on_error=lambda *x: None)
    h.starttls("connect")
    with pytest.raises(RuntimeError):
        h.starttls("connect")
    b.close()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_10mb_each_way_with_openssl_s_client(version, tmp_path, listener):
    openssl = require_tool("openssl")
    size = 10 * 1024 * 1024
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(size))
    download = tmp_path / "down.bin"
    done = AE.cv()
    handles = []
    got = bytearray()

    def accept(fh, host, port):
        hdl = Handle(fh=fh, tls="accept", tls_ctx=server_ctx(),
                     on_error=lambda h, f, m: done.croak(m), on_eof=lambda h: None)
        handles.append(hdl)
        _pump_bulk(hdl, size, done, keep=got)
    port = listener.serve(accept)
    with open(upload, "rb") as stdin, open(download, "wb") as stdout:
        proc = subprocess.Popen(
            [openssl, "s_client", "-connect", "127.0.0.1:%d" % port, "-quiet", version],
            stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL)
        try:
            assert run_until(done, 60) == size
            hdl = handles[0]
            drained = AE.cv()
            hdl.on_drain(lambda h: drained.send())
            run_until(drained, 60)
            hdl.stoptls()  # close_notify: s_client exits once it has read everything
            assert proc.wait(30) == 0
        finally:
            proc.kill()
            proc.wait()
    assert bytes(got) == upload.read_bytes()
    assert download.stat().st_size == size


# -- plaintext pushed with TLS up: straight from the caller's buffer ------------

def _tls_client(port, **opts):
    return Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                  tls_ctx={"verify": 1, "ca_file": certs().ca_file}, **opts)


class _WantsReadOnce:
    """A TLS connection whose ``send`` takes one record per call (as in
    partial-write mode) and reports WANT_READ for the second call (as OpenSSL
    may while it waits for the peer); otherwise the real one."""

    def __init__(self, conn):
        self._conn, self.sends = conn, 0

    def send(self, data):
        from OpenSSL import SSL
        self.sends += 1
        if self.sends == 2:
            raise SSL.WantReadError()
        return self._conn.send(data[:16384])

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_tls_push_the_engine_does_not_take_waits_and_keeps_its_order(listener):
    port, thread = _python_ssl_echo_server(listener, ssl.TLSVersion.TLSv1_3)
    cv, started = AE.cv(), AE.cv()
    hdl = _tls_client(port, on_starttls=lambda h, ok, msg: started.send(ok),
                      on_error=lambda h, f, m: cv.croak(m))
    assert run_until(started) is True
    hdl.tls = _WantsReadOnce(hdl.tls)
    first = os.urandom(40000)  # three records: the second is refused
    hdl.push_write(first)
    assert len(hdl._tls_wbuf) == len(first) - 16384  # the rest waits, copied
    hdl.push_write(b"tail")  # behind it, and it makes the rest go out
    hdl.push_read("chunk", len(first) + 4, lambda h, data: cv.send(data))
    assert run_until(cv, 20) == first + b"tail"
    assert not hdl._tls_wbuf
    hdl.destroy()
    thread.join(10)


def test_tls_push_beyond_wbuf_max_is_enospc_before_encrypting(listener):
    cv, started, arrived = AE.cv(), AE.cv(), AE.cv()
    got = bytearray()
    handles = []

    def on_read(h):
        got.extend(h.rbuf)
        h.rbuf.clear()
        if len(got) >= 600:
            arrived.send()

    def accept(fh, host, port):
        handles.append(Handle(fh=fh, tls="accept", tls_ctx=server_ctx(), on_read=on_read,
                              on_error=lambda *a: None, on_eof=lambda h: None))
    hdl = _tls_client(listener.serve(accept), wbuf_max=1000,
                      on_starttls=lambda h, ok, msg: started.send(ok),
                      on_error=lambda h, f, m: cv.send((f, h.errno)))
    assert run_until(started) is True
    hdl.push_write(b"x" * 600)  # encrypted and sent: within the limit
    hdl.push_write(b"y" * 2000)
    assert run_until(cv) == (True, errno.ENOSPC)
    run_until(arrived)
    settle(0.1)
    assert got == b"x" * 600  # nothing of the refused push was encrypted
    for h in handles:
        h.destroy()


def test_tls_push_through_a_given_connection_in_partial_write_mode(listener):
    """A Connection made by the program keeps pyOpenSSL's partial-write mode
    (a record per SSL_write): a large push still goes out whole, in order."""
    from OpenSSL import SSL
    port, thread = _python_ssl_echo_server(listener, ssl.TLSVersion.TLSv1_3)
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    conn.set_connect_state()
    cv = AE.cv()
    hdl = Handle(connect=("127.0.0.1", port), tls=conn, peername="localhost",
                 tls_ctx={"verify": 1, "ca_file": certs().ca_file},
                 on_error=lambda h, f, m: cv.croak(m))
    payload = os.urandom(200000)  # thirteen records
    hdl.push_write(payload)
    hdl.push_read("chunk", len(payload), lambda h, data: cv.send(data))
    assert run_until(cv, 20) == payload
    assert hdl.tls is conn
    hdl.destroy()
    thread.join(10)
