"""Perl's lifetime for handles, connectors and guards, on real loopback sockets.

In Perl an AnyEvent::Handle whose callbacks refer to the handle itself is
kept alive by that reference cycle until ``destroy`` breaks it; the idiom

    my $hdl; $hdl = AnyEvent::Handle->new (fh => $fh,
       on_error => sub { $hdl->destroy }, on_eof => sub { $hdl->destroy });

in an accept callback that returns without storing ``$hdl`` is how most
AnyEvent servers are written.  Python's cyclic garbage collector would end
such a cycle (closing the socket silently); ``anyevent.reactor.refcounted``
takes Handle, Connector and Guard out of its reach, so they live exactly as
in Perl: a cycle keeps them until ``destroy()``/``cancel()`` (or the cycle is
broken otherwise), and the last plain reference going still finalizes them
at once.  Every test here runs the collector hard (the autouse ``_forced_gc``
fixture of conftest.py, and explicit ``gc.collect()`` calls on top).
"""

import ctypes
import gc
import os
import resource
import select
import socket
import subprocess
import weakref
from pathlib import Path

import pytest

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_connect, tcp_server
from anyevent.util import guard

from conftest import Listener, require_tool, run_until, settle

CYCLE_SERVER = Path(__file__).with_name("perl") / "cycle_server.pl"
KiB = 1 << 10
MiB = 1 << 20


# -- helpers ----------------------------------------------------------------------

def wait_for(cond, what, timeout=30):
    """Run the loop until ``cond()`` is true (checked every 5 ms); fail after ``timeout``."""
    if cond():
        return
    cv = AE.cv()
    poll = AE.timer(0.005, 0.005, lambda: cond() and cv.send())
    try:
        run_until(cv, timeout)
    except RuntimeError as exc:
        pytest.fail("%s: %s" % (what, exc))
    finally:
        poll.cancel()


class ForcedGC:
    """A timer forcing a full ``gc.collect()`` every ``period`` seconds.

    Re-armed after each collection, from the time it ends: a periodic timer
    whose callback outlasts its interval would be overdue in every loop
    iteration, and the loop polls for I/O only when no timer is due.
    """

    def __init__(self, period=0.01):
        self.count = 0
        self.period = period
        self.timer = AE.timer(period, 0, self._collect)

    def _collect(self):
        gc.collect()
        self.count += 1
        AE.now_update()
        self.timer = AE.timer(self.period, 0, self._collect)

    def cancel(self):
        self.timer.cancel()


def rss():
    """Resident set size of this process in bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trimmed_rss():
    """RSS after a collection and glibc's malloc_trim: memory that is free but
    still cached by the allocator does not count, a leak does."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    return rss()


def alive(refs):
    """How many of the weak references still reach their object."""
    return sum(1 for r in refs if r() is not None)


def cycle_server(answer, stats, hold=None):
    """The Python twin of tests/perl/cycle_server.pl, on an ephemeral port.

    The accept callback makes the Perl idiom (on_error/on_eof closures refer
    to the handle, which they destroy) and returns without storing the
    handle.  ``answer(line)`` gives the reply to the first line; then the
    handle reads on (to see the EOF) with a no-op ``on_read``, or, if
    ``hold`` is given, with the reader ``hold``, which keeps what follows in
    ``rbuf``.
    ``stats`` (a dict) collects ``refs`` (weak references to the handles),
    ``eof`` (``len(rbuf)`` at each on_eof) and ``errors``.  Returns
    ``(guard, port)``.
    """
    stats.setdefault("refs", [])
    stats.setdefault("eof", [])
    stats.setdefault("errors", [])
    ports = []

    def accept(fh, host, port):
        hdl = None

        def on_error(h, fatal, message):
            stats["errors"].append(message)
            hdl.destroy()

        def on_eof(h):
            stats["eof"].append(len(hdl.rbuf))
            hdl.destroy()

        hdl = Handle(fh, on_error=on_error, on_eof=on_eof)

        def got_line(h, line, eol):
            hdl.push_write(answer(line) + b"\n")
            if hold is not None:
                hdl.push_read(hold)
            else:
                hdl.on_read(lambda h: None)  # read on, to see the EOF
        hdl.push_read("line", got_line)
        stats["refs"].append(weakref.ref(hdl))
        # returns: nothing but the cycle hdl <-> on_error/on_eof keeps the handle

    guard = tcp_server("127.0.0.1", 0, accept, lambda sock, host, port: ports.append(port) or 1024)
    return guard, ports[0]


def converse(port, line, idle):
    """Connect to ``port``, stay idle ``idle`` seconds while the collector is
    forced every 10 ms, send ``line``, return the answer line; then close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    cv = AE.cv()
    client = Handle(sock, on_error=lambda h, fatal, message: cv.croak(message))
    forced = ForcedGC()
    try:
        settle(idle)
        client.push_write(line + b"\n")
        client.push_read("line", lambda h, answer, eol: cv.send(answer))
        answer = run_until(cv, 10)
    finally:
        forced.cancel()
        client.destroy()
        sock.close()
    assert forced.count >= 5, "the collector was hardly forced"
    return answer


@pytest.fixture
def fd_room():
    """Room for 1000+ descriptors: raise RLIMIT_NOFILE's soft limit if needed."""
    need = 1500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- 1. the closure-cycle idiom, 500 connections -------------------------------------

N = 500
PAD = 64 * KiB
HOLD = 10.0


def test_cycle_kept_handles_survive_forced_gc_then_are_freed(fd_room):
    """500 idle connections held only by their closure cycles live through 10 s
    of gc.collect() every 10 ms and all answer; after EOF each handle destroys
    itself through on_eof and is really freed (weakrefs dead, RSS back down,
    although each handle held 64 KiB in its rbuf)."""
    base = trimmed_rss()
    releasing = False

    def hold(h):
        # keep the 64 KiB after the line in rbuf, reading on, until the test
        # lets go; then the EOF ends the read queue and on_eof runs
        return releasing and len(h.rbuf) >= PAD

    stats = {}
    server, port = cycle_server(lambda line: b"pong " + line, stats, hold)
    socks, clients, answers, client_errors = [], [], {}, []
    try:
        for i in range(N):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(sock)
            clients.append(Handle(sock, on_error=lambda h, fatal, msg: client_errors.append(msg)))
        refs = stats["refs"]
        wait_for(lambda: len(refs) == N, "server accepted %d of %d" % (len(refs), N))

        forced = ForcedGC()
        settle(HOLD)
        forced.cancel()
        assert forced.count >= 50, "only %d forced collections in %gs" % (forced.count, HOLD)
        assert alive(refs) == N, "the collector ended cycle-kept handles"
        assert stats["errors"] == stats["eof"] == [] and client_errors == []

        pad = b"x" * PAD
        for i, client in enumerate(clients):
            client.push_write(b"ping %d\n" % i + pad)
            client.push_read("line", lambda h, line, eol, i=i: answers.__setitem__(i, line))
        del client
        wait_for(lambda: len(answers) == N, "%d of %d answers" % (len(answers), N))
        assert answers == {i: b"pong ping %d" % i for i in range(N)}

        def rbufs_full():
            return all((h := r()) is not None and len(h.rbuf) == PAD for r in refs)
        wait_for(rbufs_full, "64 KiB in every server rbuf")
        peak = trimmed_rss()

        releasing = True
        for client in clients:
            client.destroy()
        del client
        for sock in socks:
            sock.close()
        del sock
        clients.clear()
        socks.clear()
        wait_for(lambda: len(stats["eof"]) == N, "on_eof ran for %d of %d" % (len(stats["eof"]), N))
        assert stats["errors"] == [] and client_errors == []
        assert stats["eof"] == [PAD] * N  # each destroyed itself with 64 KiB in rbuf
        # freed by reference counting at destroy (the collector cannot see them)
        assert alive(refs) == 0, "%d destroyed handles leaked" % alive(refs)
    finally:
        del server  # closes the listener
        for r in stats["refs"]:  # after a failure: do not leave cycle-kept handles behind
            h = r()
            if h is not None:
                h.destroy()
        for sock in socks:
            sock.close()
    end = trimmed_rss()
    leak = N * PAD  # what leaking the handles would keep: 32 MiB
    print("RSS MiB: baseline %.1f, 500 full rbufs %.1f, after destroy %.1f"
          % (base / MiB, peak / MiB, end / MiB))
    assert peak - base > leak * 3 // 4, "RSS did not show the rbufs (%d -> %d)" % (base, peak)
    assert end - base < leak // 4, "RSS %d MiB above its baseline after the handles went" % (
        (end - base) // MiB)


# -- 2. no cycle: the last reference going destroys at once --------------------------

def test_dropped_handle_with_pending_data_lingers_and_delivers(listener):
    """A handle without a cycle, dropped with unwritten data, is finalized by
    ``del`` at once, and linger writes the data out: the peer gets every byte,
    then EOF."""
    a, b = listener.pair()
    data = os.urandom(256 * KiB) * 64  # 16 MiB: far more than the socket buffers take
    hdl = Handle(a, on_error=lambda h, fatal, msg: None)
    del a
    assert not gc.is_tracked(hdl)  # reference counting only, as in Perl
    hdl.push_write(data)
    assert hdl.wbuf, "everything was written at once; the test needs pending data"
    ref = weakref.ref(hdl)
    gc.disable()
    try:
        del hdl
        assert ref() is None  # gone with its last reference, no collector involved
    finally:
        gc.enable()
    gc.collect()
    got = bytearray()
    cv = AE.cv()

    def readable():
        chunk = b.recv(4 * MiB)
        got.extend(chunk)
        if not chunk:
            cv.send()
    b.setblocking(False)
    w = AE.io(b, 0, readable)
    run_until(cv, 20)
    del w
    b.close()
    assert len(got) == len(data) and got == data


def test_dropped_handle_without_cycle_is_gone_after_del(listener):
    """A handle with callbacks that do not refer to it is gone right after
    ``del``: its socket closes (the peer reads EOF), no callback runs."""
    a, b = listener.pair()
    called = []
    hdl = Handle(a, on_error=lambda h, fatal, msg: called.append(msg),
                 on_eof=lambda h: called.append("eof"))
    hdl.push_read("line", lambda h, line, eol: called.append(line))
    del a
    ref = weakref.ref(hdl)
    gc.disable()
    try:
        del hdl
        assert ref() is None
    finally:
        gc.enable()
    b.settimeout(5)
    assert b.recv(10) == b""  # closed at once
    b.sendall(b"late\n")
    settle(0.05)
    assert called == []
    b.close()


# -- 3. a connecting handle held by its own closures ---------------------------------

def test_connecting_handle_kept_by_its_closures(listener):
    """``Handle(connect=...)`` referenced only from its own callbacks survives
    gc.collect() before, during and after the connect -- the server sends its
    line only 0.3 s after the connection, while the collector is forced every
    10 ms -- calls on_connect, reads the line, and is freed by its destroy()."""
    port = listener.port
    events, server_side = [], []
    cv = AE.cv()

    def start():
        hdl = None

        def on_connect(h, host, port_, retry):
            events.append(("connect", h is hdl, host))
            gc.collect()
            conn = listener.accept()
            server_side.append(conn)
            server_side.append(AE.timer(0.3, 0, lambda: conn.sendall(b"hello from the server\n")))

        def on_error(h, fatal, message):
            events.append(("error", message))
            hdl.destroy()
            cv.send()

        def on_eof(h):
            events.append("eof")
            hdl.destroy()
            cv.send()

        def on_prepare(h):
            gc.collect()  # mid-connect
            return 5

        def got_line(h, line, eol):
            events.append(("line", line))
            hdl.destroy()
            cv.send()

        hdl = Handle(connect=("127.0.0.1", port), on_prepare=on_prepare,
                     on_connect=on_connect, on_error=on_error, on_eof=on_eof)
        hdl.push_read("line", got_line)
        return weakref.ref(hdl)

    ref = start()
    for _ in range(3):
        gc.collect()
    assert ref() is not None
    forced = ForcedGC()
    try:
        run_until(cv, 10)
    finally:
        forced.cancel()
        for conn in server_side[:1]:
            conn.close()
    assert events == [("connect", True, "127.0.0.1"), ("line", b"hello from the server")]
    assert ref() is None  # destroy() broke the cycle


# -- 4. connector and guards held by a cycle -------------------------------------------

@pytest.mark.parametrize("end", ["cancel", "undef"])
def test_tcp_connect_guard_kept_by_its_callback(end, listener):
    """The guard of ``tcp_connect`` (a Connector) referenced only from its own
    callback survives gc.collect() before and after it connected; ``cancel()``
    afterwards -- or, Perl's idiom, the callback dropping it (``undef
    $guard``) -- frees it, and the delivered socket stays usable."""
    port = listener.port
    cv = AE.cv()

    def start():
        guard = None

        def connected(fh=None, host=None, port_=None, retry=None):
            nonlocal guard
            assert guard is not None  # still there, through the cycle
            if end == "undef":
                guard = None
            cv.send(fh)

        def prepare(fh):
            gc.collect()  # mid-connect
            return 0
        guard = tcp_connect("127.0.0.1", port, connected, prepare)
        return weakref.ref(guard)

    ref = start()
    gc.collect()
    assert ref() is not None
    fh = run_until(cv, 10)
    assert fh is not None, "connect failed"
    if end == "cancel":
        settle(0.05)
        gc.collect()
        assert ref() is not None  # connected, and still kept by its cycle
        ref().cancel()
    assert ref() is None
    conn = listener.accept()
    conn.sendall(b"over the delivered socket\n")
    fh.setblocking(True)
    fh.settimeout(5)
    assert fh.recv(100) == b"over the delivered socket\n"
    fh.close()


def test_tcp_connect_guard_in_cycle_freed_by_cancel():
    """A connect still in progress whose guard only its callback holds stays
    in progress through gc.collect(); ``cancel()`` ends it, frees the guard
    and closes its socket; the callback never runs."""
    srv = Listener(backlog=0)
    port = srv.port
    # fill the accept queue: the kernel then drops further SYNs, so the next
    # connect stays in progress
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    settle(0.1)
    socks, called = [], []

    def start():
        guard = None

        def connected(*args):
            called.append((args, guard))

        def prepare(fh):
            socks.append(weakref.ref(fh))
            return 0
        guard = tcp_connect("127.0.0.1", port, connected, prepare)
        return weakref.ref(guard)

    ref = start()
    try:
        gc.collect()
        settle(0.3)
        gc.collect()
        assert called == [], "the connect did not stay in progress"
        assert ref() is not None and len(socks) == 1 and socks[0]() is not None
        ref().cancel()
        assert ref() is None  # cancel broke the cycle
        assert socks[0]() is None or socks[0]().fileno() == -1  # the attempt's socket closed
        settle(0.1)
        assert called == []
    finally:
        for s in fillers:
            s.close()
        srv.close()


class Box:
    """Something that can be weakly referenced, to hold a guard in a cycle."""


@pytest.mark.parametrize("end", ["cancel", "undef"])
def test_guard_kept_by_a_cycle(end):
    """A guard whose callback refers (through a box) to the guard itself is
    kept by that cycle: gc.collect() neither frees it nor runs its callback.
    ``cancel()`` breaks the cycle (callback never runs, everything freed);
    dropping it (Perl's ``undef $box->{guard}``) runs the callback once."""
    fired = []

    def start():
        box = Box()
        box.guard = guard(lambda: fired.append(box.__class__.__name__))
        return weakref.ref(box)

    ref = start()
    for _ in range(3):
        gc.collect()
    settle(0.05)
    assert ref() is not None and fired == []
    if end == "cancel":
        ref().guard.cancel()
        assert ref() is None and fired == []
    else:
        ref().guard = None
        assert ref() is None and fired == ["Box"]
    gc.collect()
    assert fired == ([] if end == "cancel" else ["Box"])


def test_tcp_server_guard_kept_by_its_callback():
    """The guard of ``tcp_server`` referenced only from its accept callback
    keeps the listener open through gc.collect(); it serves clients until the
    callback drops the guard (Perl's ``undef $guard``), which closes the
    listener and frees the callback.  (The Guard has no weak references:
    the closed listener shows it went.)"""
    ports = []

    def start():
        guard = None
        served = 0

        def accept(fh, host, port):
            nonlocal guard, served
            served += 1
            fh.sendall(b"hello %d\n" % served)
            fh.close()
            if served == 3:
                guard = None  # undef $guard: closes the listener
        guard = tcp_server("127.0.0.1", 0, accept, lambda sock, host, port: ports.append(port))
        return weakref.ref(accept)

    accept_ref = start()
    port = ports[0]
    for n in (1, 2, 3):
        gc.collect()
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        cv = AE.cv()
        client = Handle(sock, on_error=lambda h, fatal, msg: cv.croak(msg))
        client.push_read("line", lambda h, line, eol: cv.send(line))
        forced = ForcedGC()
        try:
            assert run_until(cv, 10) == b"hello %d" % n
        finally:
            forced.cancel()
            client.destroy()
            sock.close()
    assert accept_ref() is None  # the whole cycle is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


# -- 5. side by side with Perl ----------------------------------------------------------

def _perl_line(proc, timeout=10):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "perl server said nothing for %gs" % timeout
    return proc.stdout.readline().decode().rstrip("\n")


def test_cycle_idiom_same_in_perl_and_python():
    """The same server (the closure-cycle idiom, handle not stored) in Perl
    (tests/perl/cycle_server.pl) and in Python: both keep an idle connection
    alive -- Python while the collector is forced every 10 ms -- answer its
    line with the same bytes, and destroy the handle through on_eof."""
    require_tool("perl")
    probe = subprocess.run(["perl", "-MAnyEvent::Handle", "-e1"], capture_output=True, text=True)
    if probe.returncode:
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail("perl AnyEvent::Handle missing: " + probe.stderr.strip())
        pytest.skip("perl AnyEvent::Handle missing")
    line = b"the same line, \xc3\xa9 included"
    answers = {}

    proc = subprocess.Popen(["perl", str(CYCLE_SERVER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0)
    try:
        first = _perl_line(proc)
        assert first.startswith("port ")
        answers["perl"] = converse(int(first.split()[1]), line, idle=1.0)
        assert _perl_line(proc) == "eof"  # not "error ...": on_eof destroyed it
    finally:
        proc.stdin.close()  # the server exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0

    stats = {}
    server, port = cycle_server(lambda got: b"echo: " + got, stats)
    answers["python"] = converse(port, line, idle=1.0)
    wait_for(lambda: stats["eof"], "python on_eof")
    assert stats["eof"] == [0] and stats["errors"] == []
    assert alive(stats["refs"]) == 0
    del server

    assert answers["perl"] == answers["python"] == b"echo: " + line


class _Payload:
    pass


def _timer_in_a_cycle(after, interval, runs=1):
    """A timer whose callback refers to its own watcher and to a payload;
    returns (watcher, weak reference to the payload, calls, a condvar sent
    after ``runs`` calls)."""
    payload, calls, cv, w = _Payload(), [], AE.cv(), None

    def cb():
        calls.append((w, payload))
        if len(calls) == runs:
            cv.send()
    w = AE.timer(after, interval, cb)
    return w, weakref.ref(payload), calls, cv


@pytest.mark.parametrize("end", ["fired", "cancelled"])
def test_timer_cycle_ends_by_refcount_when_the_timer_is_done(end):
    """Timers are hidden from the cyclic collector (a million of them are a
    normal load); a cycle through a timer still ends, by reference counting
    alone, once the timer fired (one-shot) or was cancelled."""
    gc.disable()
    try:
        w, ref, calls, cv = _timer_in_a_cycle(0.01 if end == "fired" else 60, 0)
        if end == "fired":
            run_until(cv)
        else:
            w.cancel()
        calls.clear()
        del w
        assert ref() is None
    finally:
        gc.enable()


def test_timer_cycle_keeps_a_pending_timer_as_the_loop_does():
    w, ref, calls, cv = _timer_in_a_cycle(0.01, 0.01, runs=3)
    del w
    gc.collect()
    run_until(cv)  # periodic: still running, as in Perl
    assert ref() is not None
    calls[0][0].cancel()
    calls.clear()
    assert ref() is None


class _Holder:
    pass


@pytest.mark.parametrize("kind", ["timer", "idle", "io"])
def test_a_watcher_on_a_garbage_cycle_goes_with_it_unless_its_callback_holds_it(kind):
    """PORTING.md, *Watchers and lifetimes*: a watcher kept by a cycle its
    callback is part of lives on (as in Perl); one held only by a cycle of
    its own (Perl would leak it and keep it firing) is freed, and so
    cancelled, by the cyclic collector."""
    a, b = socket.socketpair()
    fired = {"kept": 0, "orphan": 0}

    def make(label, keep):
        holder = _Holder()
        holder.me = holder  # a cycle the callback is not part of
        count = (lambda *_: (fired.__setitem__(label, fired[label] + 1), holder)) if keep \
            else (lambda *_: fired.__setitem__(label, fired[label] + 1))
        holder.w = {"timer": lambda: AE.timer(0, 0.01, count), "idle": lambda: AE.idle(count),
                    "io": lambda: AE.io(a, "w", count)}[kind]()
        return weakref.ref(holder)
    kept, orphan = make("kept", True), make("orphan", False)
    gc.collect()
    assert kept() is not None and orphan() is None
    settle(0.1)
    assert fired["kept"] and not fired["orphan"], fired
    kept().w = None  # dropping the watcher ends the kept cycle's work too
    a.close()
    b.close()
