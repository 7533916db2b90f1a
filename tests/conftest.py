"""Shared fixtures: callback exceptions fail the test; required tools."""

import os
import shutil
import traceback

import pytest

import anyevent.reactor as reactor


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


@pytest.fixture
def callback_errors(_reported_errors):
    """The list of ``(where, exc)`` reported by the loop during the test.

    A test that asks for it expects callback exceptions and asserts on the
    list itself; they no longer fail the test by themselves.
    """
    _reported_errors.claimed = True
    return _reported_errors


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
