"""anyevent: Perl's AnyEvent stack, ported to Python as a callback-style reactor.

Two facades over the one process-wide loop (:data:`anyevent.reactor.loop`):

``AE`` -- the short positional API of Perl's ``AE`` module::

    w = AE.timer(0.5, 0, cb)          # AE::timer $after, $interval, $cb
    w = AE.io(sock, 0, cb)            # AE::io $fh, 0 (read) / 1 (write), $cb
    cv = AE.cv(); cv.recv()

``AnyEvent`` -- the keyword API of ``AnyEvent->timer(after => ...)``::

    w = AnyEvent.timer(after=0.5, interval=1, cb=cb)
    w = AnyEvent.io(fh=sock, poll="w", cb=cb)  # poll => "r" (read) / "w" (write)

Every watcher runs only while the caller holds the returned object (Perl's
``undef $w`` is ``del w`` or ``w.cancel()``).  With ``ANYEVENT_STRICT=1`` in
the environment both facades check their arguments and raise clear errors
(:mod:`anyevent.strict`).
"""

import os

from . import _core

_core.install()  # compiled core or the .py files, before they are imported

from . import log as _log_mod  # noqa: E402
from .reactor import CondVar, loop, set_exception_handler, get_exception_handler  # noqa: E402

__all__ = ["AE", "AnyEvent", "CondVar", "loop", "set_exception_handler",
           "get_exception_handler"]

__version__ = "0.1.0"


class AE:
    """Perl's ``AE`` functions: ``AE.io(fh, poll, cb)``, ``AE.timer(after, interval, cb)``,
    ``AE.signal(sig, cb)``, ``AE.child(pid, cb)``, ``AE.idle(cb)``, ``AE.cv(cb=None)``,
    ``AE.now()``, ``AE.now_update()``, ``AE.time()``, ``AE.postpone(cb)``,
    ``AE.log(level, msg, *args)``, ``AE.logger(level)`` (:mod:`anyevent.log`).  See :class:`anyevent.reactor.Loop` for each.
    """
    io = staticmethod(loop.io)
    timer = staticmethod(loop.timer)
    signal = staticmethod(loop.signal)
    child = staticmethod(loop.child)
    idle = staticmethod(loop.idle)
    cv = staticmethod(loop.condvar)
    now = staticmethod(loop.now)
    now_update = staticmethod(loop.now_update)
    time = staticmethod(loop.time)
    postpone = staticmethod(loop.postpone)
    log = staticmethod(_log_mod.log)
    logger = staticmethod(_log_mod.logger)


class AnyEvent:
    """Perl's ``AnyEvent->method(key => value)`` API with the same keyword names."""

    @staticmethod
    def io(*, fh, poll, cb):
        """``AnyEvent->io(fh => $fh, poll => "r"|"w", cb => $cb)``; see :meth:`Loop.io`.

        ``poll`` is ``"r"`` (readable) or ``"w"`` (writable); anything else
        (``0``, ``1``, ``"write"``) raises :class:`ValueError`, as it does
        under ``AnyEvent::Strict`` (Perl's backends disagree on what it means).
        """
        if poll != "r" and poll != "w":
            raise ValueError("AnyEvent.io: poll must be 'r' or 'w', got %r" % (poll,))
        return loop.io(fh, poll, cb)

    @staticmethod
    def timer(*, cb, after=0, interval=0):
        """``AnyEvent->timer(after => $s, interval => $s, cb => $cb)``; seconds."""
        return loop.timer(after, interval, cb)

    @staticmethod
    def signal(*, signal, cb):
        """``AnyEvent->signal(signal => "INT", cb => $cb)``."""
        return loop.signal(signal, cb)

    @staticmethod
    def child(*, pid, cb):
        """``AnyEvent->child(pid => $pid, cb => sub { my ($pid, $status) = @_ })``."""
        return loop.child(pid, cb)

    @staticmethod
    def idle(*, cb):
        """``AnyEvent->idle(cb => $cb)``."""
        return loop.idle(cb)

    @staticmethod
    def condvar(*, cb=None):
        """``AnyEvent->condvar(cb => $cb)``."""
        return loop.condvar(cb)

    now = staticmethod(loop.now)
    now_update = staticmethod(loop.now_update)
    time = staticmethod(loop.time)
    postpone = staticmethod(loop.postpone)
    log = staticmethod(_log_mod.log)
    logger = staticmethod(_log_mod.logger)


if os.environ.get("ANYEVENT_STRICT", "") not in ("", "0"):
    from . import strict as _strict
    _strict.enable()
