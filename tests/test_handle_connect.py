"""Handle(connect=...) over tcp_server: round trip, queued I/O, retry, errors."""

import errno
import socket

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_server
from conftest import run_until, free_port


def echo_server():
    """A line echo server on tcp_server + Handle; returns (guard, port)."""
    port = free_port()
    clients = set()

    def accept(fh, host, port_):
        hdl = Handle(fh=fh, on_error=lambda h, f, m: clients.discard(h),
                     on_eof=lambda h: clients.discard(h))

        def line(h, data, eol):
            h.push_write(b"echo:" + data + eol)
            h.push_read("line", line)
        hdl.push_read("line", line)
        clients.add(hdl)
    guard = tcp_server("127.0.0.1", port, accept)
    return guard, port, clients


def test_listen_connect_round_trip_with_io_queued_while_connecting():
    server, port, clients = echo_server()
    cv = AE.cv()
    events = []
    hdl = Handle(connect=("127.0.0.1", port),
                 on_connect=lambda h, host, p, retry: events.append(("connect", host, p)),
                 on_error=lambda h, f, m: cv.croak(m))
    hdl.push_write(b"queued before connect\n")  # kept until connected
    hdl.push_read("line", lambda h, l, e: cv.send(l))
    assert run_until(cv) == b"echo:queued before connect"
    assert events == [("connect", "127.0.0.1", port)]
    assert hdl.peername == "127.0.0.1"


def test_connect_refused_goes_to_on_connect_error():
    cv = AE.cv()
    hdl = Handle(connect=("127.0.0.1", free_port()),
                 on_connect_error=lambda h, msg: cv.send(msg))
    assert run_until(cv) == "Connection refused"
    assert hdl.destroyed()


def test_connect_refused_without_on_connect_error_is_fatal_error():
    cv = AE.cv()
    seen = []
    hdl = Handle(connect=("127.0.0.1", free_port()),
                 on_error=lambda h, fatal, msg: (seen.append((fatal, h.errno, msg)), cv.send()))
    run_until(cv)
    assert seen == [(True, errno.ECONNREFUSED, "Connection refused")]


def test_on_prepare_returns_timeout_and_sees_fh():
    server, port, clients = echo_server()
    cv = AE.cv()
    prepared = []

    def prepare(h):
        prepared.append(isinstance(h.fh, socket.socket))
        return 5
    hdl = Handle(connect=("127.0.0.1", port), on_prepare=prepare,
                 on_connect=lambda *a: cv.send("ok"), on_error=lambda h, f, m: cv.croak(m))
    assert run_until(cv) == "ok"
    assert prepared == [True]


def test_retry_moves_on_and_ends_with_error_when_no_target_left():
    server, port, clients = echo_server()
    cv = AE.cv()
    calls = []

    def on_connect(h, host, p, retry):
        calls.append(p)
        AE.postpone(retry)  # even after the callback returned
    hdl = Handle(connect=("127.0.0.1", port), on_connect=on_connect,
                 on_connect_error=lambda h, msg: cv.send(msg))
    run_until(cv)
    assert calls == [port]
