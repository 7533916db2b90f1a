"""anyevent.connector.Connector: addresses tried in turn, on_fail per failure, the most
significant error, local binding, cancellation without leaking descriptors."""

import errno
import gc
import os
import socket

import pytest

from anyevent.connector import Connector, addrinfo
from anyevent.reactor import CondVar, loop
from conftest import free_port


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def refused_port():
    return free_port()


def run(**kw):
    """Start a Connector; return (outcome, on_fail calls) once it ends."""
    cv = CondVar()
    fails = []
    conn = Connector(on_connected=kw.pop("on_connected", lambda sock: cv.send("connected", sock)),
                     on_connect_error=lambda syscall, err: cv.send("error", syscall, err),
                     on_resolve_error=lambda msg: cv.send("resolve", msg),
                     on_fail=lambda *args: fails.append(args), **kw)
    result = cv.recv()
    del conn
    return result, fails


def test_refused_then_connected(listener, refused_port):
    (what, sock), fails = run(addrs=[
        {"family": "inet", "socktype": "stream", "ip": "127.0.0.1", "port": refused_port},
        ("inet", "stream", 0, listener.address)])
    assert what == "connected" and sock.getpeername() == listener.address
    assert [(f[0], f[2], f[3].errno) for f in fails] == [
        ("connect", ("127.0.0.1", refused_port), errno.ECONNREFUSED)]
    sock.close()


def test_unreachable_refused_and_timeout_each_reported(refused_port, blackhole):
    (what, syscall, err), fails = run(timeout=0.2, addrs=[
        {"ip": "255.255.255.255", "port": 80},       # ENETUNREACH at once
        {"ip": "127.0.0.1", "port": refused_port},   # ECONNREFUSED
        {"ip": "127.0.0.1", "port": blackhole},      # no answer: ETIMEDOUT
    ])
    assert (what, syscall, err.errno) == ("error", "connect", errno.ETIMEDOUT)
    assert [(f[0], f[3].errno) for f in fails] == [
        ("connect", errno.ENETUNREACH), ("connect", errno.ECONNREFUSED),
        ("connect", errno.ETIMEDOUT)]


BAD_PROTOCOL = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_UDP, ("127.0.0.1", 1))


def test_most_significant_error(listener, refused_port):
    # socket() failures only
    (what, syscall, err), fails = run(addrs=[BAD_PROTOCOL])
    assert (what, syscall) == ("error", "socket")
    assert fails[0][:4] == ("socket",) + BAD_PROTOCOL[:3]
    # bind beats socket
    (what, syscall, err), fails = run(addrs=[BAD_PROTOCOL, ("inet", "stream", 0, listener.address)],
                                      local_addr={"ip": "192.0.2.123"})
    assert (syscall, err.errno) == ("bind", errno.EADDRNOTAVAIL)
    assert [f[0] for f in fails] == ["socket", "bind"]
    # connect beats bind
    (what, syscall, err), fails = run(addr={"ip": "127.0.0.1", "port": refused_port},
                                      local_addrs=[{"ip": "192.0.2.123"}, {"ip": "127.0.0.1"}])
    assert (syscall, err.errno) == ("connect", errno.ECONNREFUSED)
    assert [f[0] for f in fails] == ["bind", "connect"]


def test_local_addr_binding(listener):
    (what, sock), _ = run(addr={"ip": "127.0.0.1", "port": listener.port},
                          local_addr={"family": "inet", "ip": "127.0.0.2", "port": 0})
    peer = listener.accept()
    assert peer.getpeername()[0] == "127.0.0.2" == sock.getsockname()[0]
    sock.close()


def test_host_and_service_resolution(listener):
    (what, sock), _ = run(host="127.0.0.1", service=str(listener.port),
                          socktype="stream")
    assert sock.getpeername() == listener.address
    sock.close()
    (what, msg), _ = run(host="localhost", service="no-such-service-name")
    assert what == "resolve" and "service unknown" in msg
    (what, msg), _ = run(host="name.example", service="80", flags=socket.AI_NUMERICHOST)
    assert what == "resolve"


def test_unix_address(tmp_path):
    path = str(tmp_path / "sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    (what, sock), _ = run(addr={"family": "unix", "socktype": "stream", "path": path})
    assert sock.getpeername() == path
    sock.close()
    srv.close()


def test_no_callback_inside_constructor(listener):
    seen = []
    conn = Connector(addr=("inet", "stream", 0, listener.address),
                     on_connected=seen.append, on_connect_error=lambda *a: seen.append(a))
    assert seen == []
    while not seen:
        loop.one_event()
    seen[0].close()
    del conn


def test_cancel_mid_connect_leaves_no_fd(blackhole):
    before = open_fds()
    seen = []
    conn = Connector(addr={"ip": "127.0.0.1", "port": blackhole}, timeout=5,
                     on_connected=seen.append, on_connect_error=lambda *a: seen.append(a))
    loop.one_event()  # the attempt starts: a socket is open and connecting
    assert open_fds() == before + 1
    del conn
    gc.collect()
    assert open_fds() == before
    t = loop.timer(0.05, 0, lambda: None)
    loop.one_event()
    assert seen == []


def test_retry_after_success(listener):
    got = []
    conn = Connector(addrs=[("inet", "stream", 0, listener.address)] * 2,
                     on_connected=got.append, on_connect_error=lambda *a: got.append(a))
    while not got:
        loop.one_event()
    conn.retry()
    while len(got) < 2:
        loop.one_event()
    conn.retry()
    assert got[2][0] == "connect" and got[2][1].errno == errno.ECONNABORTED
    for s in got[:2]:
        s.close()


def test_addrinfo_forms():
    assert addrinfo({"ip": "::1", "port": 5}) == (socket.AF_INET6, socket.SOCK_STREAM, 0,
                                                  ("::1", 5, 0, 0))
    assert addrinfo({"family": "inet6"}, local=True)[3] == ("::", 0, 0, 0)
    assert addrinfo(("inet", "dgram", 17, ("1.2.3.4", 5))) == (socket.AF_INET, socket.SOCK_DGRAM,
                                                               17, ("1.2.3.4", 5))
    with pytest.raises(ValueError):
        addrinfo({"family": "inet"})
    with pytest.raises(TypeError):
        Connector(addr={"ip": "127.0.0.1", "port": 1}, on_connect_error=print)


def test_connected_socket_makes_a_handle(listener):
    from anyevent.handle import Handle
    cv = CondVar()
    conn = Connector(addr={"ip": "127.0.0.1", "port": listener.port},
                     on_connected=lambda sock: cv.send(Handle(fh=sock)),
                     on_connect_error=lambda *a: cv.send(None))
    hdl = cv.recv()
    peer = listener.accept()
    got = CondVar()
    hdl.push_read("line", lambda h, line, eol: got.send(line))
    peer.sendall(b"hello\n")
    assert got.recv() == b"hello"
    hdl.destroy()
    peer.close()
    del conn
