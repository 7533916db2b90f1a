"""The compiled core's C twins (anyevent/_speedups.pyx) against the pure-Python
functions and socket methods the interpreted handle uses for the same job:
same bytes, counts, results and errors."""

import errno
import re
import os
import pickle
import select
import socket
import threading

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyevent import _core
from anyevent.handle import _stream, _wire
from anyevent.handle import Handle

speedups = pytest.importorskip("anyevent._speedups", reason="the compiled core is not in use")

# (recv_append, send) of the compiled core, and the interpreted ones
IMPLS = [(speedups.recv_append, speedups.send), (_stream._sock_recv, socket.socket.send)]
IDS = ["compiled", "interpreted"]


@pytest.fixture
def socks():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("recv, send", IMPLS, ids=IDS)
def test_reads_append_and_writes_take_any_bytes_like(socks, recv, send):
    a, b = socks
    b.sendall(b"hello world")
    buf = bytearray(b">")
    assert recv(a, buf, 5) == 5 and buf == b">hello"
    assert recv(a, buf, 100) == 6 and buf == b">hello world"
    data = bytearray(b"0123456789")
    for chunk in (b"ab", data, memoryview(data)[3:6]):
        assert send(a, chunk) == len(chunk)
    assert b.recv(100) == b"ab0123456789345"


@pytest.mark.parametrize("recv, send", IMPLS, ids=IDS)
def test_nothing_there_is_blocking_io_error_and_nothing_appended(socks, recv, send):
    a, _ = socks
    buf = bytearray(b"kept")
    with pytest.raises(BlockingIOError) as info:
        recv(a, buf, 10)
    assert info.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and buf == b"kept"


@pytest.mark.parametrize("recv, send", IMPLS, ids=IDS)
def test_end_of_stream_reads_zero(socks, recv, send):
    a, b = socks
    b.shutdown(socket.SHUT_WR)
    buf = bytearray()
    assert recv(a, buf, 10) == 0 and buf == b""


@pytest.mark.parametrize("recv, send", IMPLS, ids=IDS)
def test_a_full_kernel_buffer_takes_part_then_blocks(socks, recv, send):
    a, _ = socks
    big = b"x" * (8 << 20)
    taken = send(a, big)
    assert 0 < taken < len(big)
    with pytest.raises(BlockingIOError):
        while True:
            send(a, big)


@pytest.mark.parametrize("recv, send", IMPLS, ids=IDS)
def test_closed_socket_and_closed_peer_are_the_os_errors(socks, recv, send):
    a, b = socks
    b.close()
    with pytest.raises(OSError) as info:
        send(a, b"x")
    assert info.value.errno == errno.EPIPE
    a.close()
    for call in (lambda: recv(a, bytearray(), 10), lambda: send(a, b"x")):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_large_reads_into_empty_and_filled_buffers(socks):
    """An empty buffer takes a read directly; a filled one through the scratch
    buffer (256 KiB at a time)."""
    a, b = socks
    data = os.urandom(1 << 20)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sender = threading.Thread(target=b.sendall, args=(data,))
    sender.start()
    buf = bytearray()
    reads = []
    while len(buf) < len(data):
        select.select([a], [], [], 5)
        filled = bool(buf)
        reads.append((filled, speedups.recv_append(a, buf, 1 << 20)))
    sender.join()
    assert buf == data
    assert all(n <= (262144 if filled else 1 << 20) for filled, n in reads)


def test_handles_on_plain_sockets_use_it(socks):
    assert _core.compiled()
    hdl = Handle(fh=socks[0], close_fh=False)
    assert (hdl._recv, hdl._send) == (speedups.recv_append, speedups.send)
    hdl.destroy()


def test_a_socket_subclass_keeps_its_own_methods(socks):
    class Counting(socket.socket):
        sent = 0

        def send(self, data, *flags):
            Counting.sent += 1
            return super().send(data, *flags)

    a, b = socks
    sub = Counting(fileno=os.dup(a.fileno()))
    hdl = Handle(fh=sub)
    hdl.push_write(b"to the subclass")
    assert Counting.sent == 1 and b.recv(100) == b"to the subclass"
    hdl.destroy()


@given(st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"\n\n", b""]), max_size=12),
       st.integers(min_value=-20, max_value=40))
def test_take_line_is_the_pure_one(pieces, start):
    data = b"".join(pieces)
    compiled, interpreted = bytearray(data), bytearray(data)
    assert speedups.take_line(compiled, start) == _stream._take_line(interpreted, start)
    assert compiled == interpreted


def test_take_line_wants_an_exact_bytearray():
    class Sub(bytearray):
        pass
    assert speedups.take_line(bytearray(b"x\r\ny"), 0) == (b"x", b"\r\n")
    with pytest.raises(TypeError):
        speedups.take_line(b"x\n", 0)
    assert _stream._take_line(Sub(b"x\ny"), 0) == (b"x", b"\n")


# -- epoll_ready: reactor._ready_recs over select.epoll.poll, in one C call ----------

def _entry(fd, r=True, w=True):
    from anyevent import reactor
    ent = reactor._FdEntry(fd)
    ent.r = (reactor._IORec(print),) if r else ()
    ent.w = (reactor._IORec(print),) if w else ()
    return ent


def test_epoll_ready_is_ready_recs_over_epoll_poll():
    from anyevent import reactor
    ep = select.epoll()
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        both = reactor._IN | reactor._OUT
        quiet, readable, hung_up, no_readers, unknown = (p[0] for p in pairs)
        pairs[1][1].send(b"x")
        pairs[2][1].close()  # EPOLLHUP: wakes readers and writers
        pairs[3][1].send(b"x")
        fds = {s.fileno(): _entry(s.fileno()) for s in (quiet, readable, hung_up)}
        fds[no_readers.fileno()] = _entry(no_readers.fileno(), r=False)
        for s in (quiet, readable, hung_up, no_readers, unknown):  # unknown: not in fds
            ep.register(s.fileno(), both)
        ours = speedups.epoll_ready(ep.fileno(), 0, 10, fds)
        pure = reactor._ready_recs(fds, ep.poll(0, 10))
        assert sorted(map(id, ours)) == sorted(map(id, pure))
        want = [fds[s.fileno()].w for s in (quiet, readable, hung_up, no_readers)]
        want += [fds[s.fileno()].r for s in (readable, hung_up)]
        assert sorted(map(id, ours)) == sorted(map(id, want))
        for s in (readable, hung_up):  # an fd's writers before its readers
            assert ours.index(fds[s.fileno()].w) < ours.index(fds[s.fileno()].r)
    finally:
        ep.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_epoll_ready_waits_its_timeout_rounded_up():
    import time
    ep = select.epoll()
    try:
        t0 = time.monotonic()
        assert speedups.epoll_ready(ep.fileno(), 0.05, 1, {}) == []
        assert time.monotonic() - t0 >= 0.05
        t0 = time.monotonic()
        speedups.epoll_ready(ep.fileno(), 0.0001, 1, {})  # one millisecond, not zero
        assert time.monotonic() - t0 >= 0.001
    finally:
        ep.close()


def test_epoll_ready_signal_runs_the_handler_and_returns_empty():
    import signal
    import time

    class Stop(Exception):
        pass
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        if len(calls) == 2:
            raise Stop
    ep = select.epoll()
    old = signal.signal(signal.SIGALRM, handler)
    try:
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert speedups.epoll_ready(ep.fileno(), 5, 1, {}) == []
        assert calls == [signal.SIGALRM] and time.monotonic() - t0 < 2
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Stop):  # a handler's exception comes out of the wait
            speedups.epoll_ready(ep.fileno(), 5, 1, {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        ep.close()


def test_epoll_ready_on_a_bad_descriptor_is_the_os_error():
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            speedups.epoll_ready(r, 0, 1, {})  # not an epoll descriptor
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(r)
        os.close(w)


def test_the_loop_polls_through_it():
    from anyevent import reactor
    loop = reactor.Loop()
    try:
        assert loop._epfd == loop._poller.fileno()
    finally:
        loop._poller.close()


def test_epoll_ready_in_two_threads_at_once_each_gets_its_own_events():
    """Loops in two threads poll at the same time (the GIL is released in the
    wait): neither sees the other's events."""
    from anyevent import reactor
    sets = []
    for count in (1, 40):
        ep = select.epoll()
        pairs = [socket.socketpair() for _ in range(count)]
        fds = {}
        for a, b in pairs:
            b.send(b"x")
            fds[a.fileno()] = _entry(a.fileno(), w=False)
            ep.register(a.fileno(), reactor._IN)
        sets.append((ep, pairs, fds))
    wrong = []

    def poll(ep, fds, rounds):
        want = sorted(id(ent.r) for ent in fds.values())
        for _ in range(rounds):
            got = speedups.epoll_ready(ep.fileno(), 1, len(fds), fds)
            if sorted(map(id, got)) != want:
                wrong.append((len(fds), len(got)))
    try:
        threads = [threading.Thread(target=poll, args=(ep, fds, 3000)) for ep, _, fds in sets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert wrong == []
    finally:
        for ep, pairs, _ in sets:
            ep.close()
            for a, b in pairs:
                a.close()
                b.close()


@given(st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"--", b""]), max_size=12),
       st.integers(min_value=-20, max_value=40), st.sampled_from([b"\n", b"\r\n", b"--", b"\r\n\r\n", b""]))
def test_take_until_is_the_pure_one(pieces, start, eol):
    data = b"".join(pieces)
    compiled, interpreted = bytearray(data), bytearray(data)
    assert speedups.take_until(compiled, start, eol) == _stream._take_until(interpreted, start, eol)
    assert compiled == interpreted


def _regexes():
    """Small bytes regexes of the kinds whose matches are a list of strings:
    literals, classes, alternatives, groups and bounded repeats (greedy
    and lazy)."""
    atom = st.sampled_from([b"a", b"b", b"\\r", b"\\n", b"\\x00", b"[ab]", b"[\\r\\n]", b"[a-c]"])

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map(b"".join),
            st.tuples(inner, inner).map(lambda p: b"(?:%s|%s)" % p),
            st.tuples(inner, st.sampled_from([b"?", b"??", b"{1,2}", b"{0,2}?", b"{2}"])).map(
                lambda p: b"(?:%s)%s" % p))
    return st.recursive(atom, extend, max_leaves=6)


@given(_regexes(), st.binary(max_size=30).map(lambda b: bytes(b"ab\r\n\x00c"[x % 6] for x in b)),
       st.integers(min_value=-3, max_value=32))
def test_a_regex_s_literals_match_where_and_as_the_regex_does(pattern, data, start):
    """_speedups' literal search gives what the regex engine gives: the same
    line and end of line taken (take_match), the same end (search_end)."""
    rx = re.compile(pattern)
    literals = _stream._literal_search(rx)
    if literals is None:  # too many strings, or an empty match: the regex engine does it
        strings = _stream._alternatives(_stream._parse_regex(rx))
        assert strings is None or b"" in strings
        return
    compiled, interpreted = bytearray(data), bytearray(data)
    assert speedups.search_end(compiled, start, *literals) == _stream._search_end(
        interpreted, start, rx)
    assert speedups.take_match(compiled, start, *literals) == _stream._take_match(
        interpreted, start, rx)
    assert compiled == interpreted


@pytest.mark.parametrize("pattern", [rb"^\n", rb"\b\n", rb"(?=a)\n", rb"(a)\1", rb".\n", rb"\d",
                                     rb"[^a]", rb"(?i)a", rb"a*", rb"a{0,100}", rb"(?:a|)"])
def test_regexes_with_more_than_literals_are_left_to_the_engine(pattern):
    assert _stream._literal_search(re.compile(pattern)) is None


_CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats()
    | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=5),
    max_leaves=20)


def _scan_pieces(scan, data, cuts):
    """What ``scan.end`` says after each piece of ``data`` arrives."""
    buf, said = bytearray(), []
    for piece in [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]:
        buf += piece
        try:
            said.append(scan.end(buf, 0))
        except ValueError as exc:
            return said + [str(exc)]
    return said


@given(st.one_of(_CBOR_VALUES.map(cbor2.dumps),
                 st.binary(max_size=60),  # mostly malformed or incomplete
                 st.integers(0, 430).map(lambda n: b"\x9f" * n + b"\xff" * n),  # deep, indefinite
                 st.integers(0, 430).map(lambda n: b"\x81" * n + b"\x00")),
       st.lists(st.integers(0, 60), max_size=6))
def test_cbor_scan_is_the_pure_one(data, cuts):
    """The C scanner finds the same end, or the same error, as _wire._CborScan,
    however the item arrives."""
    cuts = sorted({c for c in cuts if c < len(data)})
    assert _scan_pieces(speedups.CborScan(), data, cuts) == _scan_pieces(
        _wire._CborScan(), data, cuts)


@given(st.binary(max_size=40), st.integers(0, 40))
def test_take_is_the_pure_one(data, n):
    n = min(n, len(data))
    compiled, interpreted = bytearray(data), bytearray(data)
    assert speedups.take(compiled, n) == _wire._take(interpreted, n)
    assert compiled == interpreted


def _take_items(scan, data, cuts):
    """What scan.take says as data arrives in pieces, twice over (the scanner
    starts afresh after an item), and what is left of the buffer."""
    buf, said = bytearray(), []
    for piece in [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])] + [data]:
        buf += piece
        try:
            said.append(scan.take(buf, 0))
        except ValueError as exc:
            return said + [str(exc)]
    return said + [bytes(buf)]


@given(_CBOR_VALUES.map(cbor2.dumps), st.lists(st.integers(0, 60), max_size=6))
def test_cbor_scan_take_is_the_pure_one(data, cuts):
    """take() gives the same items (None while incomplete) and leaves the same
    buffer in C as in Python."""
    cuts = sorted({c for c in cuts if c < len(data)})
    assert _take_items(speedups.CborScan(), data, cuts) == _take_items(
        _wire._CborScan(), data, cuts)


def _nested(depth, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                   | st.frozensets(st.integers(), max_size=3)
                   | inner.map(lambda x: [x, x])),  # the same object twice: GET/DUP
    max_leaves=15)


def _opcodes(data):
    import pickletools
    try:
        return {op.name for op, _, _ in pickletools.genops(data)}
    except Exception:  # noqa: BLE001 - malformed
        return None


@given(st.one_of(
    st.tuples(_PLAIN, st.integers(0, 5)).map(lambda v: pickle.dumps(v[0], protocol=v[1])),
    st.tuples(st.integers(390, 410), st.integers(0, 5)).map(
        lambda v: pickle.dumps(_nested(v[0], 1), protocol=v[1])),
    st.binary(max_size=40).map(lambda b: b"\x80\x04" + b + b".")))
def test_the_pickle_pre_check_in_c_only_passes_what_the_full_check_passes(data):
    """pickle_plain_depth is a shortcut of _wire._check_pickle_depth: when it
    says 1 or 2 the full check passes too, and 2 means no opcode names a
    class or calls anything (so plain pickle.loads builds builtin values only)."""
    said = speedups.pickle_plain_depth(data, _wire._PICKLE_TABLE, _wire.STORABLE_MAX_DEPTH)
    if not said:
        return
    _wire._check_pickle_depth(data, _wire.STORABLE_MAX_DEPTH)  # raises if it would refuse
    ops = _opcodes(data)
    assert ops is not None and not ops & {"GET", "BINGET", "LONG_BINGET", "DUP"}
    if said == 2:
        assert not ops & _wire._PICKLE_NAMES_OR_CALLS


def test_the_pickle_pre_check_in_c_stops_at_the_limit():
    table, limit = _wire._PICKLE_TABLE, _wire.STORABLE_MAX_DEPTH
    assert speedups.pickle_plain_depth(pickle.dumps(_nested(limit, 1)), table, limit) == 2
    assert speedups.pickle_plain_depth(pickle.dumps(_nested(limit + 1, 1)), table, limit) == 0
    shared = [1]
    assert speedups.pickle_plain_depth(pickle.dumps([shared, shared]), table, limit) == 0
    assert speedups.pickle_plain_depth(pickle.dumps({1, 2}, protocol=2), table, limit) == 1
