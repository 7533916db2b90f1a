"""Connector(happy_eyeballs=True): RFC 8305 racing of addresses, real loopback sockets."""

import errno
import gc
import socket
import time

import pytest

from anyevent.connector import Connector
from anyevent.reactor import CondVar, loop
from conftest import free_port
from test_connector import BAD_PROTOCOL, open_fds, refused_port  # noqa: F401


def race(delay=0.1, **kw):
    """Race with ``delay``; return (outcome, on_fail calls, seconds taken)."""
    cv = CondVar()
    fails = []
    start = time.monotonic()
    conn = Connector(happy_eyeballs=True, connection_attempt_delay=delay,
                     on_connected=lambda sock: cv.send("connected", sock),
                     on_connect_error=lambda syscall, err: cv.send("error", syscall, err),
                     on_resolve_error=lambda msg: cv.send("resolve", msg),
                     on_fail=lambda *args: fails.append(args), **kw)
    result = cv.recv()
    del conn
    return result, fails, time.monotonic() - start


def v4(port):
    return {"ip": "127.0.0.1", "port": port}


def v6(port):
    return {"ip": "::1", "port": port}


@pytest.fixture
def ipv6_refused_port():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")


def test_silent_target_loses_after_the_delay(blackhole, listener):
    before = open_fds()
    (what, sock), fails, took = race(delay=0.1, timeout=5,
                                     addrs=[v4(blackhole), v4(listener.port)])
    assert what == "connected" and sock.getpeername() == listener.address
    assert 0.08 < took < 1.5          # not the 5 s timeout of the silent target
    assert fails == []                # the loser was closed, not failed
    assert open_fds() == before + 1   # only the winner is open
    sock.close()


def test_failure_starts_the_next_attempt_at_once(refused_port, listener):
    (what, sock), fails, took = race(delay=2, addrs=[v4(refused_port),
                                                     v4(listener.port)])
    assert what == "connected" and took < 1
    assert [(f[0], f[3].errno) for f in fails] == [("connect", errno.ECONNREFUSED)]
    sock.close()


def test_families_interleave_preferred_first(ipv6_refused_port):
    ports4 = [free_port() for _ in range(2)]
    ports6 = [ipv6_refused_port, ipv6_refused_port]
    # both refuse at once, so attempts start (and fail) in the interleaved order
    _, fails, _ = race(delay=2, addrs=[v6(ports6[0]), v4(ports4[0]), v4(ports4[1]), v6(ports6[1])])
    assert [f[2][:2] for f in fails] == [("::1", ports6[0]), ("127.0.0.1", ports4[0]),
                                         ("::1", ports6[1]), ("127.0.0.1", ports4[1])]
    _, fails, _ = race(delay=2, addrs=[v4(ports4[0]), v4(ports4[1]), v6(ports6[0])])
    assert [f[2][0] for f in fails] == ["127.0.0.1", "::1", "127.0.0.1"]


def test_default_keeps_the_given_order(ipv6_refused_port):
    fails = []
    cv = CondVar()
    conn = Connector(addrs=[v4(free_port()), v4(free_port()), v6(ipv6_refused_port)],
                     on_connected=cv.send, on_connect_error=lambda *a: cv.send(a),
                     on_fail=lambda *args: fails.append(args))
    cv.recv()
    del conn
    assert [f[2][0] for f in fails] == ["127.0.0.1", "127.0.0.1", "::1"]


def test_all_fail_reports_every_failure_and_the_most_significant(blackhole, refused_port):
    before = open_fds()
    (what, syscall, err), fails, took = race(delay=0.05, timeout=0.3, addrs=[
        v4(blackhole), BAD_PROTOCOL, v4(refused_port)])
    assert (what, syscall, err.errno) == ("error", "connect", errno.ETIMEDOUT)
    assert sorted((f[0], f[-1].errno) for f in fails) == sorted([
        ("connect", errno.ETIMEDOUT), ("socket", errno.EPROTONOSUPPORT),
        ("connect", errno.ECONNREFUSED)])
    assert took < 1.5
    assert open_fds() == before


def test_cancel_mid_race_closes_every_socket(blackhole):
    before = open_fds()
    seen = []
    conn = Connector(addrs=[v4(blackhole)] * 3, timeout=5, happy_eyeballs=True,
                     connection_attempt_delay=0.02,
                     on_connected=seen.append, on_connect_error=lambda *a: seen.append(a))
    deadline = time.monotonic() + 2
    while open_fds() < before + 3 and time.monotonic() < deadline:
        loop.one_event()
    assert open_fds() == before + 3   # three sockets connecting at once
    del conn
    gc.collect()
    assert open_fds() == before
    t = loop.timer(0.1, 0, lambda: None)
    loop.one_event()
    assert seen == []


def test_retry_continues_with_the_remaining_targets(blackhole, listener):
    got = []
    conn = Connector(addrs=[v4(blackhole), v4(listener.port)] * 2, timeout=0.3,
                     happy_eyeballs=True, connection_attempt_delay=0.05,
                     on_connected=got.append, on_connect_error=lambda *a: got.append(a))
    for n in (1, 2, 3):
        while len(got) < n:
            loop.one_event()
        conn.retry()
    assert [type(g) for g in got[:2]] == [socket.socket] * 2
    assert got[2][0] == "connect" and got[2][1].errno == errno.ETIMEDOUT
    for s in got[:2]:
        s.close()
