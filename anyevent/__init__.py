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

The loop runs on a model (Perl's ``AnyEvent::Impl::*``) fixed at the first
watcher: our own loop, or any asyncio loop (``ANYEVENT_MODEL=asyncio``, or an
asyncio loop running at the first watcher), or uvloop; see
:func:`anyevent.reactor.detect`.  ``AnyEvent.MODEL`` names it.
"""

from __future__ import annotations

import os
import sys

from typing import Any, Callable

from . import _core

_core.install()  # compiled core or the .py files, before they are imported

from . import log as _log_mod  # noqa: E402
from . import reactor as _reactor  # noqa: E402
from .reactor import CondVar, loop, set_exception_handler, get_exception_handler  # noqa: E402
from .reactor import (ChildWatcher, IdleWatcher, IOWatcher, SignalWatcher,  # noqa: E402
                      TimerWatcher)

__all__ = ["AE", "AnyEvent", "CondVar", "loop", "set_exception_handler",
           "get_exception_handler", "COMPILED"]

__version__ = "0.1.0"

#: True when the compiled core (:mod:`anyevent.reactor`, the modules of
#: :mod:`anyevent.handle` and ``_speedups``, built by ``setup.py`` with Cython)
#: is the one imported; False when the ``.py`` files run (not built, a build
#: older than its sources, or ``ANYEVENT_PURE_PYTHON=1``).  ``python -m anyevent
#: --version`` shows it with the model and the versions, for bug reports.
COMPILED: bool = _core.compiled()


class AE:
    """Perl's ``AE`` functions: ``AE.io(fh, poll, cb)``, ``AE.timer(after, interval, cb)``,
    ``AE.signal(sig, cb)``, ``AE.child(pid, cb)``, ``AE.idle(cb)``, ``AE.cv(cb=None)``,
    ``AE.now()``, ``AE.now_update()``, ``AE.time()``, ``AE.postpone(cb)``,
    ``AE.call_soon_threadsafe(cb, *args)`` (the one call that is safe from
    any thread; not in Perl, named after asyncio's),
    ``AE.log(level, msg, *args)``, ``AE.logger(level)`` (:mod:`anyevent.log`).  See :class:`anyevent.reactor.Loop` for each.
    """
    io = staticmethod(loop.io)
    timer = staticmethod(loop.timer)
    signal = staticmethod(loop.signal)
    child = staticmethod(loop.child)
    idle = staticmethod(loop.idle)
    cv = staticmethod(loop.condvar)
    now: staticmethod[[], float] = staticmethod(loop.now)
    now_update: staticmethod[[], None] = staticmethod(loop.now_update)
    time: staticmethod[[], float] = staticmethod(loop.time)
    postpone = staticmethod(loop.postpone)
    call_soon_threadsafe = staticmethod(loop.call_soon_threadsafe)
    log = staticmethod(_log_mod.log)
    logger = staticmethod(_log_mod.logger)


class AnyEvent:
    """Perl's ``AnyEvent->method(key => value)`` API with the same keyword names."""

    @staticmethod
    def io(*, fh: Any, poll: str, cb: Callable[[], object]) -> IOWatcher:
        """``AnyEvent->io(fh => $fh, poll => "r"|"w", cb => $cb)``; see :meth:`~anyevent.reactor.Loop.io`.

        ``poll`` is ``"r"`` (readable) or ``"w"`` (writable); anything else
        (``0``, ``1``, ``"write"``) raises :class:`ValueError`, as it does
        under ``AnyEvent::Strict`` (Perl's backends disagree on what it means).
        """
        if poll != "r" and poll != "w":
            raise ValueError("AnyEvent.io: poll must be 'r' or 'w', got %r" % (poll,))
        return loop.io(fh, poll, cb)

    @staticmethod
    def timer(*, cb: Callable[[], object], after: float = 0,
              interval: float | None = 0) -> TimerWatcher:
        """``AnyEvent->timer(after => $s, interval => $s, cb => $cb)``; seconds."""
        return loop.timer(after, interval, cb)

    @staticmethod
    def signal(*, signal: int | str, cb: Callable[[], object]) -> SignalWatcher:
        """``AnyEvent->signal(signal => "INT", cb => $cb)``."""
        return loop.signal(signal, cb)

    @staticmethod
    def child(*, pid: int, cb: Callable[[int, int], object]) -> ChildWatcher:
        """``AnyEvent->child(pid => $pid, cb => sub { my ($pid, $status) = @_ })``."""
        return loop.child(pid, cb)

    @staticmethod
    def idle(*, cb: Callable[[], object]) -> IdleWatcher:
        """``AnyEvent->idle(cb => $cb)``."""
        return loop.idle(cb)

    @staticmethod
    def condvar(*, cb: Callable[[CondVar[Any]], object] | None = None) -> CondVar[Any]:
        """``AnyEvent->condvar(cb => $cb)``."""
        return loop.condvar(cb)

    now: staticmethod[[], float] = staticmethod(loop.now)
    now_update: staticmethod[[], None] = staticmethod(loop.now_update)
    time: staticmethod[[], float] = staticmethod(loop.time)
    postpone = staticmethod(loop.postpone)
    call_soon_threadsafe = staticmethod(loop.call_soon_threadsafe)
    log = staticmethod(_log_mod.log)
    logger = staticmethod(_log_mod.logger)

    #: The model's name (``"anyevent"``, ``"asyncio"``, ``"uvloop"``), None
    #: until the first watcher or :meth:`detect` fixes it (``$AnyEvent::MODEL``).
    MODEL: str | None = None
    detect = staticmethod(_reactor.detect)
    post_detect = staticmethod(_reactor.post_detect)


#: The facades' entries that are the loop's methods, as bound before detection.
_UNDETECTED: dict[tuple[type, str], staticmethod[..., Any]] = {
    (facade, name): entry
    for facade in (AE, AnyEvent) for name, entry in vars(facade).items()
    if getattr(getattr(entry, "__func__", None), "__self__", None) is loop}


def _bind_to_model() -> None:
    """After detection (as Perl rebinds ``AE::io`` & co.): the facades call the
    model's methods directly.  Entries replaced meanwhile (strict mode's
    checking wrappers) stay; they look the method up on the loop each call."""
    AnyEvent.MODEL = _reactor.MODEL
    for (facade, name), stub in _UNDETECTED.items():
        if facade.__dict__.get(name) is stub:
            setattr(facade, name, staticmethod(getattr(loop, stub.__func__.__name__)))


_reactor.post_detect(_bind_to_model)


if os.environ.get("ANYEVENT_STRICT", "") not in ("", "0"):
    from . import strict as _strict
    _strict.enable()

def _debug_mode_wanted() -> bool:
    """:func:`anyevent.debug.debug_mode_wanted` (here: deciding it must not
    import that module)."""
    value = os.environ.get("ANYEVENT_DEBUG", "").strip()
    return value != "0" if value else sys.flags.dev_mode


def _debug_wrap_level() -> int:
    """The wrap level ``ANYEVENT_DEBUG_WRAP`` asks for (0: none)."""
    value = os.environ.get("ANYEVENT_DEBUG_WRAP", "")
    return 0 if value in ("", "0") else int(value)


if _debug_mode_wanted() or _debug_wrap_level():
    from . import debug as _debug  # noqa: F401  (it wraps as -X dev and the variables say)
