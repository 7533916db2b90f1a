"""Shared fixtures: callback exceptions fail the test; forced garbage
collection; required tools; skips for tests of our own loop's behaviour on
the other models (``ANYEVENT_MODEL``); socket pairs and a TCP server to
accept connections (:func:`listener`) that are closed after the test."""

import gc
import os
import shutil
import socket
import traceback
from time import monotonic

import pytest

import anyevent.reactor as reactor

#: The model this run uses (``ANYEVENT_MODEL``; unset means our own loop).
MODEL = os.environ.get("ANYEVENT_MODEL") or "anyevent"
ON_ASYNCIO = MODEL in ("asyncio", "uvloop")


def own_loop_only(reason, models=("asyncio", "uvloop")):
    """Skip the test on ``models``: it checks our own loop's behaviour where
    those models differ on purpose (``reason`` says how)."""
    return pytest.mark.skipif(MODEL in models, reason="model %s: %s" % (MODEL, reason))


class _Reported(list):
    """``(where, exc)`` pairs the loop reported; ``claimed`` once a test checks them."""
    claimed = False


@pytest.fixture(autouse=True)
def _reported_errors():
    """Record every exception escaping a callback; fail the test on any unless
    the test took the list through :func:`callback_errors`."""
    errors = _Reported()
    old = reactor.set_exception_handler(lambda exc, where: errors.append((where, exc)))
    yield errors
    reactor.set_exception_handler(old)
    if errors and not errors.claimed:
        where, exc = errors[0]
        pytest.fail("exception in %s callback:\n%s" % (
            where, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))


#: At most one forced full ``gc.collect()`` per this many seconds of loop
#: iterations, and at least one per :data:`FORCED_GC_MAX_GAP` seconds (see
#: :func:`_forced_gc`); ``ANYEVENT_TEST_FORCED_GC=0`` turns the forcing off
#: (to compare timings).
FORCED_GC_PERIOD = 0.01
FORCED_GC_MAX_GAP = 0.1
_FORCED_GC = os.environ.get("ANYEVENT_TEST_FORCED_GC", "1") not in ("", "0")


class _GCStats:
    """Forced collections of the session: how many, and their time (seconds)."""
    count = 0
    seconds = 0.0


def _collect():
    """A full collection; returns the seconds it took."""
    start = monotonic()
    gc.collect()
    took = monotonic() - start
    _GCStats.count += 1
    _GCStats.seconds += took
    return took


def _timer_due_within(lp, seconds):
    """True when one of the loop's timers is due within ``seconds`` (or overdue)."""
    try:
        timers = lp._timers  # a heap of [due (monotonic), seq, cb, interval]
        return bool(timers) and timers[0][0] - monotonic() < seconds
    except (AttributeError, LookupError, TypeError):  # the heap changed shape
        return False


@pytest.fixture(autouse=True)
def _forced_gc(_reported_errors):
    """Run the cyclic garbage collector often, so that anything only a
    reference cycle keeps alive meets it: a full ``gc.collect()`` before and
    after every test, and during the test before loop iterations: at most
    once per :data:`FORCED_GC_PERIOD` seconds (and no sooner after the last
    one than twice its duration), preferably where it delays no timer (not
    when one is due within twice the last collection's duration), but at
    the latest :data:`FORCED_GC_MAX_GAP` seconds after the last one.  So
    timing tests keep their precision, and a slow collection neither
    dominates the run time nor keeps timers overdue (the loop polls for I/O
    only in iterations where no timer is due).

    It wraps ``anyevent.reactor.loop.one_event`` (an instance attribute over
    the method: ``Loop.run`` and ``CondVar.recv`` look it up on the loop
    object); the wrapper is removed after the test.  A handle, connector or
    guard kept by a cycle must survive this (Perl's lifetime); a test that
    leaves garbage whose finalizer reports a callback exception fails here,
    as the teardown collection runs before :func:`_reported_errors` checks.

    The objects that exist before the first test (modules, collected tests)
    are frozen (:func:`gc.freeze`) once: they live for the session anyway,
    and leaving them out makes each collection several times cheaper.
    """
    if not _FORCED_GC:
        yield
        return
    lp = reactor.loop
    took = _collect()
    # what survived the tests before is no longer this test's business: the
    # collections during the test need only look at what it creates
    gc.freeze()
    lp.now_update()  # the collection must not make the test's first timers overdue
    inner = lp.one_event
    last = monotonic()

    def one_event():
        nonlocal took, last
        since = monotonic() - last
        if since >= FORCED_GC_PERIOD and since >= 2 * took and (
                since >= FORCED_GC_MAX_GAP or not _timer_due_within(lp, 2 * took + 0.001)):
            took = _collect()
            last = monotonic()
        return inner()

    lp.one_event = one_event
    try:
        yield
    finally:
        if lp.__dict__.get("one_event") is one_event:
            del lp.one_event
        _collect()


def pytest_report_header(config):
    from anyevent import _core
    return "anyevent core: %s" % ("compiled" if _core.compiled() else "pure Python")


def pytest_terminal_summary(terminalreporter):
    if _FORCED_GC and _GCStats.count:
        terminalreporter.write_line("forced gc: %d full collections, %.2fs in total"
                                    % (_GCStats.count, _GCStats.seconds))


@pytest.fixture
def callback_errors(_reported_errors):
    """The list of ``(where, exc)`` reported by the loop during the test.

    A test that asks for it expects callback exceptions and asserts on the
    list itself; they no longer fail the test by themselves.
    """
    _reported_errors.claimed = True
    return _reported_errors


def run_coroutine(coro):
    """Run ``coro`` on an asyncio loop the model can use: the model's own on
    the asyncio models, a fresh one (asyncio.run) on our loop."""
    import asyncio
    if ON_ASYNCIO:
        reactor.detect()
        return reactor.loop.asyncio_loop.run_until_complete(coro)
    return asyncio.run(coro)


def require_tool(name):
    """Return the path of ``name`` or skip; with ANYEVENT_REQUIRE_TOOLS=1 fail instead."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail("required tool %r is not installed" % name)
        pytest.skip("%s not installed" % name)
    return path


def run_until(cv, timeout=5):
    """``cv.recv()`` with a deadline: the test fails ("timed out") instead of hanging."""
    from anyevent import AE
    AE.now_update()  # the deadline counts from now, not from a stale loop time
    guard = AE.timer(timeout, 0, lambda: cv.croak("timed out"))
    try:
        return cv.recv()
    finally:
        guard.cancel()


def free_port(kind=None, host="127.0.0.1"):
    """A port number nothing listens on right now (bound once, then released)."""
    import socket
    with socket.socket(socket.AF_INET, kind or socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def settle(seconds=0.05):
    """Run the loop for ``seconds`` (to show that nothing fires meanwhile)."""
    from anyevent import AE
    cv = AE.cv()
    t = AE.timer(seconds, 0, cv)
    cv.recv()
    del t


class Bits:
    """Callbacks that each set one bit of ``value`` and ``end()`` the condvar
    ``cv`` (AnyEvent's t/09_multi.t pattern); ``cv`` may be replaced between rounds."""

    def __init__(self, cv=None):
        self.cv = cv
        self.value = 0

    def cb(self, bit):
        def cb():
            self.value |= bit
            self.cv.end()
        return cb


_pairs = []


@pytest.fixture(autouse=True)
def _close_pairs():
    """Sockets made by :func:`pair` are closed when the test ends."""
    yield
    while _pairs:
        _pairs.pop().close()


def pair():
    """``socket.socketpair()`` whose ends the test need not close: a Handle
    closes the end it is given, the other is closed after the test."""
    import socket
    a, b = socket.socketpair()
    _pairs.extend((a, b))
    return a, b


class Listener:
    """A TCP socket listening on 127.0.0.1, on a port the kernel picks, for a
    test to connect to and talk to the connections it accepts.

    ``host``, ``port`` and ``address`` (``(host, port)``) say where it
    listens; ``backlog`` is :meth:`socket.socket.listen`'s.  A test either
    takes connections one by one with :meth:`accept` (or makes one and takes
    it with :meth:`pair`), or has them all accepted on the event loop with
    :meth:`serve`.  :meth:`close` (the :func:`listener` fixture's teardown,
    or the end of a ``with`` block) closes the listening socket and every
    socket :meth:`accept` and :meth:`pair` returned; a socket passed to
    :meth:`serve`'s callback is the callback's, as one from
    ``anyevent.socket.tcp_server`` (a Handle made of it closes it).
    """

    host = "127.0.0.1"

    def __init__(self, backlog=128):
        import socket
        self.sock = socket.create_server((self.host, 0), backlog=backlog)
        self.port = self.sock.getsockname()[1]
        self.address = (self.host, self.port)
        self._sockets = []  # what accept and pair returned, closed by close
        self._watcher = None

    def accept(self, timeout=5):
        """Wait at most ``timeout`` seconds (``None``: without limit) for the
        next connection and return its socket, blocking as
        :meth:`socket.socket.accept` makes it; ``TimeoutError`` if none came."""
        self.sock.settimeout(timeout)
        sock, _ = self.sock.accept()
        self._sockets.append(sock)
        return sock

    def pair(self, timeout=5):
        """``(client, server)``: a new blocking connection to the listener and
        the socket :meth:`accept` (waiting at most ``timeout`` seconds) took
        for it; a TCP :func:`pair`."""
        import socket
        client = socket.create_connection(self.address)
        self._sockets.append(client)
        return client, self.accept(timeout)

    def serve(self, on_accept):
        """From now on accept every connection on the event loop and call
        ``on_accept(sock, host, port)`` with its non-blocking socket and the
        peer's address, as ``tcp_server`` calls its accept callback; returns
        :attr:`port`."""
        from anyevent import AE
        self.sock.setblocking(False)

        def ready():
            while True:
                try:
                    sock, (host, port) = self.sock.accept()
                except BlockingIOError:
                    return
                sock.setblocking(False)
                on_accept(sock, host, port)
        self._watcher = AE.io(self.sock, 0, ready)
        return self.port

    def close(self):
        """Stop serving; close the listening socket and the accepted ones."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        self.sock.close()
        while self._sockets:
            self._sockets.pop().close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def listener():
    """A :class:`Listener` on 127.0.0.1 (``.port``, ``.accept(timeout)``,
    ``.pair()``, ``.serve(on_accept)``), closed with the sockets it gave when
    the test ends."""
    with Listener() as server:
        yield server


@pytest.fixture
def blackhole():
    """A port whose SYNs go unanswered: its accept queue is full."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    for f in fillers:
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
    yield port
    for f in fillers:
        f.close()
    s.close()
