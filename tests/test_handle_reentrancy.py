"""Re-entrancy of the Handle under Python: refills from on_drain and last
words from on_error never recurse, limits hold on every write path, and no
exception leaves a handle stuck (Perl's behaviour, without its unbounded
recursion)."""

import errno
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

from anyevent import AE
from anyevent.handle import Handle
from conftest import pair, require_tool, run_until, settle
from tlsfixtures import certs

CHUNK = 1024
BLOCK = os.urandom(1 << 20)  # the stream repeats this block


def depth():
    frame, n = sys._getframe(1), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


class Refill:
    """on_drain that pushes the next CHUNK of the stream until ``size`` bytes."""

    def __init__(self, size, done):
        self.size, self.sent, self.done = size, 0, done
        self.depths = set()

    def __call__(self, hdl):
        if self.sent >= self.size:
            hdl.on_drain(None)
            self.done.send(self.sent)
            return
        if not self.sent % (CHUNK << 12):
            self.depths.add(depth())
        pos = self.sent % len(BLOCK)
        hdl.push_write(BLOCK[pos:pos + CHUNK])
        self.sent += CHUNK


def stream_digest(size):
    h = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        h.update(BLOCK)
    return h.hexdigest()


def hash_until_eof(sock, result):
    h, n = hashlib.sha256(), 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        got = sock.recv_into(buf)
        if not got:
            break
        h.update(view[:got])
        n += got
    result.extend((n, h.hexdigest()))


def test_one_gib_in_1k_refills_from_on_drain_with_a_flat_stack(listener):
    size = 1 << 30
    a, b = listener.pair()
    result = []
    reader = threading.Thread(target=hash_until_eof, args=(b, result))
    reader.start()
    done = AE.cv()
    refill = Refill(size, done)
    hdl = Handle(fh=a, on_error=lambda h, f, m: done.croak(m))
    hdl.on_drain(refill)  # the first chunk goes out from here, the rest from writes
    assert run_until(done, 300) == size
    # the stack is as deep at the millionth refill as at the first ones (one
    # depth for refills from the loop, one for the first, from this test)
    assert len(refill.depths) <= 2
    a.shutdown(socket.SHUT_WR)
    reader.join(60)
    b.close()
    hdl.destroy()
    a.close()
    assert result == [size, stream_digest(size)]


def test_tls_refills_from_on_drain_with_a_flat_stack(listener):
    size = 16 << 20
    done, received = AE.cv(), AE.cv()
    digest = hashlib.sha256()
    count = [0]

    def on_read(h):
        digest.update(h.rbuf)
        count[0] += len(h.rbuf)
        del h.rbuf[:]
        if count[0] == size:
            received.send(digest.hexdigest())

    def accept(fh, host, port):
        keep.append(Handle(fh=fh, tls="accept", tls_ctx={"cert_file": certs().server_pem},
                           on_read=on_read, on_error=lambda h, f, m: received.croak(m)))
    keep = []
    port = listener.serve(accept)
    refill = Refill(size, done)
    client = Handle(connect=("127.0.0.1", port), tls="connect",
                    tls_ctx={"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"},
                    peername="localhost", on_error=lambda h, f, m: done.croak(m))
    client.on_drain(refill)
    assert run_until(done, 120) == size
    assert run_until(received, 120) == stream_digest(size)
    assert len(refill.depths) <= 2
    client.destroy()
    keep[0].destroy()


def reset_by_peer(listener):
    """A handle's socket whose peer has gone with a RST."""
    a, b = listener.pair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()
    return a


def test_on_error_pushing_a_last_word_after_a_reset_runs_once(listener):
    calls, cv = [], AE.cv()

    def on_error(h, fatal, message):
        calls.append((fatal, h.errno))
        h.push_write(b"goodbye\n")  # fails again: not reported again
        AE.postpone(cv.send)
    hdl = Handle(fh=reset_by_peer(listener), on_error=on_error, linger=0)
    hdl.push_read("line", lambda *a: None)
    run_until(cv)
    assert calls == [(True, errno.ECONNRESET)]
    assert hdl.destroyed()


def test_on_error_pushing_after_wbuf_max_runs_once_and_destroys():
    a, b = pair()
    calls = []

    def on_error(h, fatal, message):
        calls.append(h.errno)
        h.push_write(b"x" * 4096)  # still over the limit
    hdl = Handle(fh=a, on_error=on_error, wbuf_max=1 << 20)
    while not calls:
        hdl.push_write(b"y" * 65536)  # the peer never reads
    assert calls == [errno.ENOSPC]
    assert hdl.destroyed()
    b.close()


def test_on_error_that_raises_still_destroys_and_closes(callback_errors):
    a, b = pair()
    cv = AE.cv()

    def on_error(h, fatal, message):
        AE.postpone(cv.send)
        raise RuntimeError("on_error broke")
    hdl = Handle(fh=a, on_error=on_error, linger=0)
    del a  # the handle holds the only reference to its socket
    hdl.push_read("chunk", 10, lambda *x: None)
    b.sendall(b"short")
    b.shutdown(socket.SHUT_WR)  # EOF with a read queued: fatal EPIPE
    run_until(cv)
    assert hdl.destroyed()
    assert [str(exc) for where, exc in callback_errors] == ["on_error broke"]
    b.settimeout(2)
    assert b.recv(10) == b""  # the fd was closed: the peer sees EOF


def test_wbuf_max_holds_for_writes_from_read_callbacks():
    limit = 1 << 20
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    peak, cv = [0], AE.cv()

    def echo(h):
        h.push_write(bytes(h.rbuf))
        if not h.destroyed():
            del h.rbuf[:]
            peak[0] = max(peak[0], len(h.wbuf))
    hdl = Handle(fh=a, on_read=echo, wbuf_max=limit,
                 on_error=lambda h, f, m: cv.send(h.errno, len(h.wbuf)))
    sender = threading.Thread(target=_send_quietly, args=(b, 40 << 20))
    sender.start()
    err, size = run_until(cv, 30)
    a.close()  # the sender gets EPIPE and stops
    sender.join(10)
    b.close()
    assert err == errno.ENOSPC
    assert size <= limit + (256 << 10) and peak[0] <= limit


def _send_quietly(sock, size):
    try:
        sock.sendall(b"z" * size)
    except OSError:
        pass  # the handle gave up: that is the point


def test_tls_push_write_beyond_wbuf_max_fails_before_encrypting():
    a, b = pair()
    errors = []
    hdl = Handle(fh=a, tls="connect", tls_ctx={"verify": 0}, wbuf_max=1 << 20,
                 on_error=lambda h, f, m: errors.append((h.errno, len(h.wbuf))))
    hdl.push_write(b"p" * (4 << 20))
    assert errors and errors[0][0] == errno.ENOSPC
    assert errors[0][1] < 1 << 16  # not the 4 MiB, encrypted
    b.close()


def test_a_reply_pushed_before_the_callback_raised_goes_out(callback_errors):
    a, b = pair()

    def on_line(h, line, eol):
        h.push_write(b"reply\n")
        raise ValueError("after the reply")
    hdl = Handle(fh=a)
    hdl.push_read("line", on_line)
    b.sendall(b"ask\n")
    AE.now_update()
    settle()
    b.settimeout(2)
    assert b.recv(100) == b"reply\n"  # without the peer sending anything more
    assert [str(exc) for where, exc in callback_errors] == ["after the reply"]
    assert not hdl.destroyed()


def _raise_keyerror(h, line, eol):
    raise KeyError("oops")


def _misuse_push_write(h, line, eol):
    h.push_write("not bytes")  # raises TypeError inside handle.py


@pytest.mark.parametrize("first,raised", [(_raise_keyerror, KeyError),
                                          (_misuse_push_write, TypeError)])
def test_read_callback_exception_is_reported_and_the_queue_goes_on(callback_errors, first,
                                                                    raised):
    """A callback that raises -- itself, or in a library call it makes -- is
    reported; the message stays consumed and the next read request runs."""
    a, b = pair()
    got = []
    hdl = Handle(fh=a, on_error=lambda h, f, m: got.append(("error", m)))
    hdl.push_read("line", first)
    hdl.push_read("line", lambda h, line, eol: got.append(line))
    b.sendall(b"one\ntwo\n")
    AE.now_update()
    settle()
    assert got == [b"two"] and not hdl.destroyed()
    assert [type(exc) for where, exc in callback_errors] == [raised]
    hdl.destroy()


@pytest.mark.parametrize("reader", [
    ("line", lambda h, line: None),            # callback with the wrong parameters
    (lambda h: h.rbuf.nonexistent_method(),),  # a custom reader that breaks
])
def test_read_machinery_exception_is_a_fatal_ebadmsg(callback_errors, reader):
    a, b = pair()
    cv = AE.cv()
    hdl = Handle(fh=a, on_error=lambda h, fatal, m: cv.send(fatal, h.errno, m))
    b.sendall(b"data\n")  # first: a reader that breaks at once destroys (and closes) a
    hdl.push_read(*reader)
    fatal, err, message = run_until(cv)
    assert (fatal, err) == (True, errno.EBADMSG)
    assert "Error" in message  # TypeError / AttributeError, with its text
    assert hdl.destroyed() and len(callback_errors) == 1


def test_tls_setup_failure_reaches_on_error():
    a, b = pair()
    cv = AE.cv()
    hdl = Handle(fh=a, on_error=lambda h, fatal, m: cv.send(fatal, h.errno, m))
    hdl.starttls("accept", {"cert_file": "/nonexistent/cert.pem"})
    fatal, err, message = run_until(cv)
    assert (fatal, err) == (True, errno.EPROTO) and "TLS setup failed" in message
    assert hdl.destroyed()
    b.close()


def test_obsolete_tls_options_of_anyevent_http_connect(listener):
    """AnyEvent::HTTP's default context {cache => 1, sslv2 => 1} must work."""
    got = AE.cv()

    def accept(fh, host, p):
        keep.append(Handle(fh=fh, tls="accept", tls_ctx={"cert_file": certs().server_pem},
                           on_error=lambda h, f, m: got.croak(m)))
        keep[-1].push_read("line", lambda h, line, eol: got.send(line))
    keep = []
    client = Handle(connect=("127.0.0.1", listener.serve(accept)), tls="connect",
                    tls_ctx={"cache": 1, "sslv2": 1, "verify": 1, "ca_file": certs().ca_file,
                             "verify_peername": "https"},
                    peername="localhost", on_error=lambda h, f, m: got.croak(m))
    client.push_write(b"over tls\n")
    assert run_until(got) == b"over tls"
    client.destroy()
    keep[0].destroy()


def test_on_timeout_that_raises_stays_armed(callback_errors):
    a, b = pair()
    fired = AE.cv()
    fired.begin()
    fired.begin()

    def on_timeout(h):
        fired.end()
        raise RuntimeError("timeout handler broke")
    AE.now_update()
    hdl = Handle(fh=a, timeout=0.02, on_timeout=on_timeout)
    run_until(fired)  # called again after raising the first time
    assert [str(exc) for where, exc in callback_errors][:2] == ["timeout handler broke"] * 2
    hdl.destroy()
    b.close()


def test_on_starttls_that_raises_does_not_stall_the_stream(callback_errors, listener):
    got = AE.cv()

    def accept(fh, host, p):
        keep.append(Handle(fh=fh, tls="accept", tls_ctx={"cert_file": certs().server_pem},
                           on_error=lambda h, f, m: got.croak(m)))
        keep[-1].push_read("line", lambda h, line, eol: got.send(line))

    def on_starttls(h, ok, message):
        raise RuntimeError("on_starttls broke")
    keep = []
    client = Handle(connect=("127.0.0.1", listener.serve(accept)), tls="connect",
                    tls_ctx={"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"},
                    peername="localhost", on_starttls=on_starttls,
                    on_error=lambda h, f, m: got.croak(m))
    client.push_write(b"still sent\n")
    assert run_until(got) == b"still sent"
    assert [str(exc) for where, exc in callback_errors] == ["on_starttls broke"]
    client.destroy()
    keep[0].destroy()


def test_on_connect_error_that_raises_still_destroys(callback_errors):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]  # closed again: connecting is refused
    cv = AE.cv()

    def on_connect_error(h, message):
        AE.postpone(cv.send)
        raise RuntimeError("on_connect_error broke")
    hdl = Handle(connect=("127.0.0.1", port), on_connect_error=on_connect_error)
    run_until(cv)
    assert hdl.destroyed()
    assert [str(exc) for where, exc in callback_errors] == ["on_connect_error broke"]


def test_nonfatal_on_error_that_raises_leaves_the_read_queued(callback_errors):
    a, b = pair()
    got = []

    def on_error(h, fatal, message):
        if not fatal:
            raise RuntimeError("handler bug")
    hdl = Handle(fh=a, on_error=on_error)
    hdl.push_read("json", lambda h, value: got.append(value))
    b.sendall(b"] [1,2]")  # a non-fatal EBADMSG, then a good frame
    AE.now_update()
    settle()
    b.sendall(b" ")  # the read resumes with the next arrival, as in Perl
    settle()
    assert got == [[1, 2]] and not hdl.destroyed()
    assert [str(exc) for where, exc in callback_errors] == ["handler bug"]
    hdl.destroy()


def test_on_drain_that_raises_does_not_spin(callback_errors):
    a, b = pair()
    calls = []

    def on_drain(h):
        calls.append(1)
        raise RuntimeError("on_drain broke")
    hdl = Handle(fh=a, on_error=lambda *x: None)
    hdl.push_write(b"x" * (4 << 20))  # more than the socket takes at once
    hdl.on_drain(on_drain)
    reader = threading.Thread(target=_read_exactly, args=(b, 4 << 20))
    reader.start()
    AE.now_update()
    settle(0.3)
    assert len(calls) == 1 and hdl.wbuf == b""
    assert len(callback_errors) == 1
    hdl.destroy()
    b.close()
    reader.join(5)


def _read_exactly(sock, size):
    while size > 0:
        size -= len(sock.recv(min(size, 1 << 20)))


def test_destroyed_handle_reads_none_for_every_key():
    a, b = pair()
    hdl = Handle(fh=a, on_timeout=lambda h: None)
    hdl.destroy()
    assert [hdl[k] for k in ("on_timeout", "on_eof", "fh", "no_such_key")] == [None] * 4
    b.close()


PERL_DESTROY_THEN_DIE = r'''
use AnyEvent; use AnyEvent::Handle; use Socket;
socketpair my $r, my $w, AF_UNIX, SOCK_STREAM, 0 or die;
my $h = AnyEvent::Handle->new(fh => $r, on_error => sub { print "on_error\n" });
$h->push_read(line => sub { $_[0]->destroy; die "boom after destroy\n" });
syswrite $w, "hello\n";
my $t = AE::timer 1, 0, sub { print "still running\n"; exit 0 };
AE::cv->recv;
'''


@pytest.mark.parametrize("kind", ["line", "chunk", "json"])
def test_a_read_callback_that_destroys_then_raises_is_reported(callback_errors, kind):
    """Found porting AnyEvent::Connector: the exception went nowhere (the
    destroyed handle's methods are no-ops, the reporting one included).
    Perl's loop (EV) reports it and goes on; so does ours, to the exception
    handler, once, and on_error is not called."""
    a, b = pair()
    cv = AE.cv()

    def cb(hdl, *value):
        hdl.destroy()
        AE.postpone(cv.send)
        raise RuntimeError("boom after destroy")
    hdl = Handle(fh=a, on_error=lambda h, fatal, message: callback_errors.append(("on_error",)))
    hdl.push_read(*{"line": ("line",), "chunk": ("chunk", 6), "json": ("json",)}[kind], cb)
    b.sendall(b'"json"\n' if kind == "json" else b"hello\n")
    run_until(cv)
    assert [(where, str(exc)) for where, exc in callback_errors] == [
        ("read", "boom after destroy")]
    assert hdl.destroyed()
    b.close()


def test_perl_reports_the_exception_of_a_read_callback_after_destroy_and_goes_on():
    """What the test above holds us to: EV reports the error and goes on."""
    perl = subprocess.run([require_tool("perl"), "-e", PERL_DESTROY_THEN_DIE],
                          capture_output=True, text=True, timeout=20)
    assert "error in callback (ignoring): boom after destroy" in perl.stderr
    assert perl.stdout == "still running\n" and perl.returncode == 0  # no on_error either
