"""I/O watchers (AnyEvent t/07_io.t and the I/O part of t/09_multi.t)."""

import os
import socket

import pytest

from anyevent import AE, AnyEvent, loop
from anyevent import reactor

from conftest import Bits, settle, own_loop_only

WRITE_FIRST = ("asyncio runs an fd's read and write callbacks as separate "
               "handles, not write watchers first")
UVLOOP_STOP = ("uvloop's stop() takes effect an iteration later, so one_event() and "
               "recv() may run an fd's watchers once more")


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()



@pytest.mark.parametrize("as_fd", [False, True], ids=["socket", "fileno"])
def test_io_sequence_like_07_io(pair, as_fd):
    # t/07_io.t: b reads a byte, then writes one back from a write watcher
    a, b = pair
    fh = (lambda s: s.fileno()) if as_fd else (lambda s: s)
    out = []
    cv = AE.cv()
    wb = None

    def b_write():
        nonlocal wb
        out.append("b writes")
        wb = None
        b.send(b"1")

    def b_read():
        nonlocal wb
        out.append("b reads")
        b.recv(1)
        wb = AnyEvent.io(fh=fh(b), poll="w", cb=b_write)

    def a_write():
        nonlocal wa
        a.send(b"0")
        wa = None
        out.append("a wrote")

    def a_read():
        a.recv(1)
        out.append("a reads")
        cv.send()

    rb = AnyEvent.io(fh=fh(b), poll="r", cb=b_read)
    settle()
    assert out == []  # nothing to read yet
    wa = AnyEvent.io(fh=fh(a), poll="w", cb=a_write)
    ra = AnyEvent.io(fh=fh(a), poll="r", cb=a_read)
    cv.recv()
    assert out == ["a wrote", "b reads", "b writes", "a reads"]
    del rb, ra


def test_several_write_watchers_on_one_fd(pair):
    # t/09_multi.t "I/O write": both watchers fire
    a, _ = pair
    bits = Bits(AE.cv())
    cv = bits.cv
    guard = AE.timer(1, 0, cv)
    cv.begin()
    wa = AE.io(a, 1, bits.cb(1))
    cv.begin()
    wb = AE.io(a, 1, bits.cb(2))
    cv.recv()
    assert bits.value == 3
    del guard, wa, wb


def test_several_read_watchers_on_one_fd(pair):
    # t/09_multi.t "I/O read": quiet while empty, both fire on data, quiet again
    a, b = pair
    bits = Bits()
    wa = AE.io(a, 0, bits.cb(1))
    wb = AE.io(a, 0, bits.cb(2))
    settle(0.05)
    assert bits.value == 0
    b.send(b"x")
    cv = bits.cv = AE.cv()
    cv.begin()
    cv.begin()
    guard = AE.timer(1, 0, cv)
    cv.recv()
    assert bits.value == 3
    a.recv(1)
    bits.value = 0
    bits.cv = AE.cv()
    settle(0.05)
    assert bits.value == 0
    del wa, wb, guard


@own_loop_only(WRITE_FIRST)
def test_watchers_on_one_fd_run_in_creation_order_write_first(pair):
    a, b = pair
    b.send(b"x")
    out = []
    ws = [AE.io(a, 0, lambda: out.append("r1")),
          AE.io(a, 1, lambda: out.append("w1")),
          AE.io(a, 0, lambda: out.append("r2")),
          AE.io(a, 1, lambda: out.append("w2"))]
    loop.one_event()
    assert out == ["w1", "w2", "r1", "r2"]
    del ws


@own_loop_only(UVLOOP_STOP, models=("uvloop",))
def test_cancelling_one_watcher_keeps_the_other(pair):
    a, b = pair
    out = []
    w1 = AE.io(a, 0, lambda: out.append(1))
    w2 = AE.io(a, 0, lambda: out.append(2))
    w1.cancel()
    b.send(b"x")
    loop.one_event()
    assert out == [2]
    del w1
    out.clear()
    w2 = None
    w3 = AE.io(a, 1, lambda: out.append("w"))
    loop.one_event()  # the read direction is gone from the poll set
    assert out == ["w"]
    del w2, w3


@own_loop_only(WRITE_FIRST)
def test_watcher_dropped_in_other_callback_of_same_batch(pair):
    # a read watcher cancelled by the write watcher of the same fd must not run
    a, b = pair
    b.send(b"x")
    out = []

    def on_write():
        nonlocal r
        out.append("w")
        r = None

    w = AE.io(a, 1, on_write)
    r = AE.io(a, 0, lambda: out.append("r"))
    loop.one_event()
    assert out == ["w"]
    del w


@own_loop_only(UVLOOP_STOP, models=("uvloop",))
def test_hangup_wakes_read_watcher(pair):
    a, b = pair
    got = []
    cv = AE.cv()

    def on_read():
        got.append(a.recv(10))
        cv.send()

    w = AE.io(a, 0, on_read)
    b.close()
    cv.recv()
    assert got == [b""]
    del w


def test_pipe_and_raw_fd():
    r, wfd = os.pipe()
    try:
        cv = AE.cv()
        w = AE.io(r, 0, lambda: cv.send(os.read(r, 10)))
        os.write(wfd, b"hello")
        assert cv.recv() == b"hello"
        del w
    finally:
        os.close(r)
        os.close(wfd)


def test_errors_for_unpollable_files(tmp_path):
    s = socket.socket()
    s.close()
    with pytest.raises(ValueError):
        AE.io(s, 0, lambda: None)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError):
        AE.io(r, 0, lambda: None)
    assert r not in loop._fds  # nothing left behind
    with open(tmp_path / "f", "w") as f:
        with pytest.raises(OSError):
            AE.io(f, 1, lambda: None)


def test_fd_closed_and_reused_behind_the_loop(pair):
    # a watcher dropped after its fd was closed, and a new fd with the same
    # number: the new watcher must work
    a, b = pair
    old = AE.io(a, 0, lambda: None)
    num = a.fileno()
    a.close()
    del old
    c, d = socket.socketpair()
    try:
        if c.fileno() != num:
            c, d = d, c
        cv = AE.cv()
        w = AE.io(c, 0, lambda: cv.send(c.recv(1)))
        d.send(b"z")
        g = AE.timer(2, 0, lambda: cv.send("timeout"))
        assert cv.recv() == b"z"
        del w, g
    finally:
        c.close()
        d.close()


def test_selectors_fallback_poller(monkeypatch, pair):
    # systems without epoll get selectors.DefaultSelector behind the same calls
    monkeypatch.setattr(reactor, "_make_poller", reactor._SelectorPoller)
    lp = reactor.Loop()
    a, b = pair
    out = []
    r = lp.io(a, 0, lambda: out.append(a.recv(1)))
    w = lp.io(b, 1, lambda: out.append("b writable"))
    lp.one_event()
    assert out == ["b writable"]
    del w
    b.send(b"q")
    lp.one_event()
    assert out == ["b writable", b"q"]
    r.cancel()
    with pytest.raises(RuntimeError):
        lp.one_event()  # nothing left to wait for


def test_new_watcher_rearms_fd_closed_and_reused_under_an_old_watcher():
    old = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    old.bind(("127.0.0.1", 0))
    stale = loop.io(old, 0, lambda: None)  # kept alive past the close
    fd = old.fileno()
    old.close()
    new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new.bind(("127.0.0.1", 0))
    if new.fileno() != fd:
        new.close()
        pytest.skip("the kernel did not reuse the fd number")
    cv = AE.cv()
    w = loop.io(new, 0, lambda: cv.send("fired"))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"x", new.getsockname())
    t = AE.timer(2, 0, lambda: cv.send("never fired"))
    assert cv.recv() == "fired"
    del stale, w
    new.close()
    sender.close()
