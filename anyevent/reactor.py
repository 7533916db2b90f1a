"""The event loop everything runs on (the port of AnyEvent::Loop).

One :class:`Loop` per process.  It polls file descriptors with ``epoll``
(what :class:`selectors.DefaultSelector` picks on Linux; the epoll object is
driven directly to keep the selectors wrapper off the hot path) or, where
there is no epoll, through :class:`selectors.DefaultSelector`.  It knows file
descriptors, timers, signals, child processes, idle callbacks and postponed
callbacks; it knows nothing about handles, TLS or DNS.

Lifetime rule (as in Perl, where ``undef $w`` stops a watcher): the loop holds
only a small internal record for each watcher; the watcher object the user gets
back owns that record and cancels it when it is garbage collected or when
``cancel()`` is called.  A watcher that is created and not stored never fires.
As in Perl, a callback that refers to its own watcher keeps it alive.

Exceptions escaping a callback do not stop the loop.  They are passed to the
handler installed with :func:`set_exception_handler` (the default logs them
with their traceback through the ``anyevent`` logger), like ``$EV::DIED``.

Order of work in one iteration (:meth:`Loop.one_event`), as in AnyEvent::Loop:
the due timers (earliest first, creation order among equal deadlines;
postponed callbacks run from a zero-delay timer), else one poll for I/O
(write watchers of an fd before its read watchers) and, when the poll found
nothing and no timer is due, the idle watchers.

Models (Perl's ``AnyEvent::Impl::*``): the same watchers can run on another
event loop.  :data:`loop` is the one object the whole library calls; until
the first watcher the watcher methods detect the model first, and
:func:`detect` (run by that first watcher) fixes its class for good:
:class:`Loop` itself (model ``"anyevent"``, the default) or the model's subclass
(:mod:`anyevent.impl.asyncio`, :mod:`anyevent.impl.uvloop`).  The choice is
``ANYEVENT_MODEL`` in the environment, else ``"asyncio"`` when an asyncio
loop is running in this thread at the first watcher, else ``"anyevent"``.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import selectors
import signal as _signal
import socket
import threading
import weakref
from collections import deque
from heapq import heapify, heappop, heappush
from itertools import count
from threading import get_ident
from time import monotonic, time
from typing import (TYPE_CHECKING, Any, Callable, Generator, Generic, Iterable, Iterator,
                    Protocol, TypeVar, cast)

from .log import _has_output

__all__ = [
    "Loop", "CondVar", "IOWatcher", "TimerWatcher", "SignalWatcher",
    "ChildWatcher", "IdleWatcher", "loop", "set_exception_handler",
    "get_exception_handler", "signal_number", "MAXWAIT", "refcounted",
    "MODEL", "MODELS", "detect", "post_detect", "MODEL_METHODS", "MODEL_HELPERS",
]

_log = logging.getLogger("anyevent")

# Poll masks, epoll's values (the same as poll(2)'s POLLIN / POLLOUT).  An
# event with any bit besides _IN (error, hang-up) wakes write watchers, one
# with any bit besides _OUT wakes read watchers, as selectors does.
_IN = 1
_OUT = 4
_WAKES_WRITERS = ~_IN
_WAKES_READERS = ~_OUT
_NEVER = float("inf")

#: ``poll`` values :meth:`Loop.io` accepts -> the event watched.  Only these
#: mean the same on every Perl backend (``AE::io`` takes 0/1, ``AnyEvent->io``
#: takes "r"/"w"); anything else is a ValueError here.  False/True hash as 0/1.
_POLL_EVENTS = {0: _IN, "r": _IN, 1: _OUT, "w": _OUT}

#: Longest single sleep in the poll (seconds); bounded so that a clock jump or a
#: missed wake-up can never stall the loop for long.
MAXWAIT = 3600.0

#: How many exit statuses reaped for a pid nobody watched yet are remembered.
_KEPT_STATUSES = 1024


def _default_exception_handler(exc: BaseException, where: str) -> None:
    info = (type(exc), exc, exc.__traceback__)
    if _has_output(_log):
        _log.error("exception in %s callback", where, exc_info=info)
    else:
        # the application configured no logging (the library's NullHandler
        # is all there is): never swallow it, print it as Python would
        cast(logging.Handler, logging.lastResort).handle(_log.makeRecord(
            _log.name, logging.ERROR, __file__, 0, "exception in %s callback",
            (where,), info))


_exception_handler: Callable[[BaseException, str], object] = _default_exception_handler


def set_exception_handler(
        handler: Callable[[BaseException, str], object] | None,
) -> Callable[[BaseException, str], object]:
    """Replace the handler for exceptions escaping callbacks.

    ``handler(exc, where)`` receives the exception object and a short string
    naming the kind of callback (``"io"``, ``"timer"``, ``"signal"``,
    ``"child"``, ``"idle"``, ``"postpone"``, ``"condvar"``).  ``None``
    restores the default, which logs the traceback at ERROR level on the
    ``anyevent`` logger.  Returns the previous handler.  This plays the role of
    Perl's ``$EV::DIED`` / ``$Event::DIED``.
    """
    global _exception_handler
    old = _exception_handler
    _exception_handler = handler or _default_exception_handler
    return old


def get_exception_handler() -> Callable[[BaseException, str], object]:
    """Return the handler currently receiving callback exceptions."""
    return _exception_handler


def _report(exc: BaseException, where: str) -> None:
    try:
        _exception_handler(exc, where)
    except Exception as inner:  # a broken handler must not kill the loop
        _default_exception_handler(inner, "exception handler")


def signal_number(sig: int | str) -> int:
    """Map ``"INT"``, ``"SIGINT"``, ``2`` or a :class:`signal.Signals` to its number.

    Raises :class:`ValueError` for an unknown name.
    """
    if isinstance(sig, int):
        return int(sig)
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise ValueError("unknown signal %r" % (sig,)) from None


# ---------------------------------------------------------------------------
# Pollers: select.epoll, or selectors.DefaultSelector behind the same methods.
# ---------------------------------------------------------------------------

class _SelectorPoller:
    """``register/modify/unregister/poll`` of :class:`select.epoll` on top of
    :class:`selectors.DefaultSelector`, for systems without epoll."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()

    @staticmethod
    def _events(mask: int) -> int:
        return ((selectors.EVENT_READ if mask & _IN else 0)
                | (selectors.EVENT_WRITE if mask & _OUT else 0))

    def register(self, fd: int, mask: int) -> None:
        try:
            self._sel.register(fd, self._events(mask))
        except KeyError:
            raise FileExistsError(17, "fd %d already registered" % fd) from None

    def modify(self, fd: int, mask: int) -> None:
        try:
            self._sel.modify(fd, self._events(mask))
        except KeyError:
            raise FileNotFoundError(2, "fd %d not registered" % fd) from None

    def unregister(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except KeyError:
            raise FileNotFoundError(2, "fd %d not registered" % fd) from None

    def poll(self, timeout: float | None, maxevents: int = -1) -> list[tuple[int, int]]:
        return [(key.fd, (_IN if ev & selectors.EVENT_READ else 0)
                 | (_OUT if ev & selectors.EVENT_WRITE else 0))
                for key, ev in self._sel.select(timeout)]

    def close(self) -> None:
        self._sel.close()

    def fileno(self) -> int:
        return self._sel.fileno()  # (epoll, kqueue, devpoll selectors)


if TYPE_CHECKING:
    class _Poller(Protocol):
        """What the loop uses of :class:`select.epoll` (or _SelectorPoller)."""

        def register(self, fd: int, mask: int, /) -> None: ...
        def modify(self, fd: int, mask: int, /) -> None: ...
        def unregister(self, fd: int, /) -> None: ...
        def poll(self, timeout: float | None, maxevents: int, /) -> list[tuple[int, int]]: ...
        def close(self) -> None: ...
        def fileno(self) -> int: ...

    class _Cancellable(Protocol):
        """What runs :meth:`Loop._reap` while child watchers exist (a model's
        :meth:`Loop._child_waker`): stopped by ``cancel()``."""

        def cancel(self) -> None: ...


def _close_pair(r: socket.socket, w: socket.socket) -> None:
    r.close()
    w.close()


def _make_poller() -> _Poller:
    try:
        from select import epoll
    except ImportError:
        return _SelectorPoller()
    return epoll()


# ---------------------------------------------------------------------------
# Perl lifetimes: an object referenced from a cycle lives until destroyed
# ---------------------------------------------------------------------------

def _gc_untrack_function() -> Callable[[object], None] | None:
    try:
        untrack = ctypes.pythonapi.PyObject_GC_UnTrack
    except AttributeError:  # not CPython: the cyclic collector stays in charge
        return None
    untrack.argtypes = (ctypes.py_object,)
    untrack.restype = None
    return untrack


_gc_untrack: Callable[[object], object] | None
#: the compiled core's ``_ready_recs(fds, epoll.poll(...))`` in one C call
_epoll_ready: Callable[[int, float, int, dict[int, _FdEntry]], list[tuple[_IORec, ...]]] | None
try:
    from ._speedups import epoll_ready as _epoll_ready, gc_untrack as _gc_untrack
except ImportError:  # interpreted, or not built: through ctypes
    _gc_untrack = _gc_untrack_function()
    _epoll_ready = None
_O = TypeVar("_O")


def refcounted(obj: _O) -> _O:
    """Give ``obj`` Perl's lifetime: reference counting only.

    The cyclic garbage collector stops looking into ``obj``, so a reference
    cycle through it (a handle whose ``on_error`` closure refers to the
    handle, the commonest AnyEvent idiom) keeps it working until the cycle is
    broken -- by ``destroy()``/``cancel()``, which drop the callbacks -- just
    as such a cycle lives in Perl.  Dropping the last reference still
    finalizes ``obj`` at once.  Uses the C API's ``PyObject_GC_UnTrack`` on
    CPython; elsewhere a no-op (the collector may then end such cycles).
    Returns ``obj``.
    """
    if _gc_untrack is not None:
        _gc_untrack(obj)
    return obj


# ---------------------------------------------------------------------------
# Watcher objects.  Each owns the loop's record and cancels it on collection.
# ---------------------------------------------------------------------------

class IOWatcher:
    """An I/O watcher: calls ``cb()`` whenever the fd is readable (or writable).

    Returned by :meth:`Loop.io`.  Stops when dropped or on :meth:`cancel`.
    """
    __slots__ = ("_loop", "_fd", "_ev", "_rec", "__weakref__")
    _loop: Loop
    _fd: int
    _ev: int
    _rec: _IORec | None

    def cancel(self) -> None:
        """Stop the watcher; calling it again does nothing."""
        rec = self._rec
        if rec is not None:
            self._rec = None
            rec.cb = None
            self._loop._io_remove(self._fd, self._ev, rec)

    __del__ = cancel


class _IORec:
    """The loop's record of an io watcher: just the callback (None once
    cancelled).  Smaller than a one-element list; there is one per watcher."""
    __slots__ = ("cb",)
    cb: Callable[[], object] | None

    def __init__(self, cb: Callable[[], object]) -> None:
        self.cb = cb


class TimerWatcher:
    """A one-shot or periodic timer, returned by :meth:`Loop.timer`."""
    __slots__ = ("_loop", "_ent", "__weakref__")
    _loop: Loop
    #: [due (monotonic), sequence, cb or None once cancelled, interval]
    _ent: list[Any] | None

    def cancel(self) -> None:
        """Stop the timer; calling it again does nothing."""
        ent = self._ent
        if ent is not None:
            self._ent = None
            if ent[2] is not None:
                ent[2] = None
                self._loop._timer_cancelled()

    __del__ = cancel


class _ListWatcher:
    """A watcher whose record sits in a list owned by the loop."""
    __slots__ = ("_loop", "_rec", "__weakref__")
    _loop: Loop
    #: [cb or None once cancelled]
    _rec: list[Any] | None
    #: each subclass's method: take ``rec`` off the loop's list
    _remove: Callable[[list[Any]], None]

    def cancel(self) -> None:
        """Stop the watcher; calling it again does nothing."""
        rec = self._rec
        if rec is not None:
            self._rec = None
            rec[0] = None
            self._remove(rec)

    __del__ = cancel


class IdleWatcher(_ListWatcher):
    """Calls ``cb()`` whenever the loop has nothing else to do."""
    __slots__ = ()

    def _remove(self, rec: list[Any]) -> None:
        self._loop._idle.remove(rec)


class SignalWatcher(_ListWatcher):
    """Calls ``cb()`` in the loop (never inside the handler) when a signal arrives."""
    __slots__ = ("_sig",)
    _sig: int

    def _remove(self, rec: list[Any]) -> None:
        self._loop._signal_remove(self._sig, rec)


class ChildWatcher(_ListWatcher):
    """Calls ``cb(pid, status)`` when a child exits; status is the raw wait status."""
    __slots__ = ("_pid",)
    _pid: int

    def _remove(self, rec: list[Any]) -> None:
        self._loop._child_remove(self._pid, rec)


_new = object.__new__


class _FdEntry:
    """Per-fd bookkeeping: tuples of read and write records (snapshot-safe)."""
    __slots__ = ("fd", "r", "w", "mask")
    fd: int
    r: tuple[_IORec, ...]
    w: tuple[_IORec, ...]
    mask: int

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.r = ()
        self.w = ()
        self.mask = 0


def _ready_recs(fds: dict[int, _FdEntry], events: list[tuple[int, int]]) -> list[tuple[_IORec, ...]]:
    """The io watcher records one poll's ``(fd, event mask)`` pairs wake, in
    order, an fd's writers before its readers (they may relieve memory
    pressure).  A record cancelled meanwhile has no callback and is skipped
    by _run_io; a watcher created meanwhile runs from the next poll on (the
    fds are level triggered: nothing is lost)."""
    ready = []
    for fd, ev in events:
        ent = fds.get(fd)
        if ent is not None:
            if ev & _WAKES_WRITERS and ent.w:
                ready.append(ent.w)
            if ev & _WAKES_READERS and ent.r:
                ready.append(ent.r)
    return ready


def _run_io(recs: tuple[_IORec, ...]) -> None:
    """Call the live callbacks of one fd's read or write records, reporting exceptions."""
    for rec in recs:
        cb = rec.cb
        if cb is not None:
            try:
                cb()
            except Exception as exc:
                _report(exc, "io")


def _call_all(recs: Iterable[list[Any]], where: str, *args: Any) -> None:
    """Call every live record's callback with ``args``, reporting exceptions."""
    for rec in recs:
        cb = rec[0]
        if cb is not None:
            try:
                cb(*args)
            except Exception as exc:
                _report(exc, where)


#: The model interface: the methods of :class:`Loop` a model overrides.  A
#: model (``anyevent.impl.asyncio``, ``anyevent.impl.uvloop``: AnyEvent's
#: ``AnyEvent::Impl::*``) is a subclass of :class:`Loop` that runs the same
#: watchers on another event loop; :func:`detect` gives :data:`loop` its
#: class.  Each method's docstring says what a model's version must do;
#: everything else (the watchers' records, timer heap, signal and child
#: bookkeeping) stays :class:`Loop`'s.  ``tests/test_models.py`` holds the
#: models to this list and to :data:`MODEL_HELPERS`.
MODEL_METHODS = (
    "now", "timer", "idle", "postpone", "one_event", "run", "stop",
    "call_soon_threadsafe", "prepare_threadsafe", "after_fork",
    "_update_mask", "_sig_install", "_sig_uninstall", "_sig_close", "_child_waker",
    "_child_watch",
    "_cv_wait", "_cv_await")

#: The private names of this module a model may import besides
#: :data:`MODEL_METHODS`: the io event bits (``_IN``, ``_OUT``), the per-fd
#: entry and io record (``_FdEntry``, ``_IORec``), running records
#: (``_run_io``, ``_call_all``), reporting a callback's exception
#: (``_report``), and installing the model's class (``_set_model_class``).
MODEL_HELPERS = ("_IN", "_OUT", "_FdEntry", "_IORec", "_run_io", "_call_all", "_report",
                 "_set_model_class")


class Loop:
    """The event loop.  Use the process-wide :data:`loop`.

    Timers run on :func:`time.monotonic`; :meth:`now` reports the cached
    wall-clock time of the current iteration, as ``AE::now`` does.  A model
    (the loop run on asyncio or uvloop) is a subclass overriding the
    methods named in :data:`MODEL_METHODS`.
    """

    _poller: _Poller
    _poll: Callable[[float | None, int], list[tuple[int, int]]]
    _epfd: int  # the poller's epoll fd when _epoll_ready polls it, else -1
    _fds: dict[int, _FdEntry]
    #: heap of [due (monotonic), sequence, cb or None once cancelled, interval]
    _timers: list[list[Any]]
    _timer_seq: Iterator[int]
    _ncancelled: int
    _pending: deque[Callable[[], object]]
    _idle: list[list[Any]]
    _mnow: float
    _off: float
    _sig_recs: dict[int, list[list[Any]]]
    _sig_prev: dict[int, Any]
    _sig_r: socket.socket | None
    _sig_w: socket.socket | None
    _sig_io: IOWatcher | None
    _child_recs: dict[int, list[list[Any]]]
    _child_kept: dict[int, int]
    _chld_watcher: _Cancellable | None
    _depth: int
    _thread: int
    _ran: bool
    _ts_lock: threading.Lock
    _ts_calls: deque[tuple[Callable[..., object], tuple[Any, ...]]]
    _ts_r: socket.socket | None
    _ts_w: socket.socket | None
    _ts_io: IOWatcher | None

    def __init__(self) -> None:
        self._new_poller()
        self._fds = {}
        self._timers = []
        self._timer_seq = count()
        self._ncancelled = 0
        self._pending = deque()
        self._idle = []
        self._mnow = monotonic()
        self._off = time() - self._mnow
        # signals
        self._sig_recs = {}
        self._sig_prev = {}
        self._sig_r = self._sig_w = None
        self._sig_io = None
        # children
        self._child_recs = {}
        self._child_kept = {}
        self._chld_watcher = None
        self._depth = 0
        #: the thread running the loop: CondVar.send from any other thread
        #: goes through call_soon_threadsafe
        self._thread = get_ident()
        #: whether the loop ran yet (until then _thread is only where it was made)
        self._ran = False
        # call_soon_threadsafe: the wake-up socket pair is made on first use
        self._ts_reset()

    # -- time ---------------------------------------------------------------

    #: The model's name (:data:`~anyevent.reactor.MODELS`); :data:`~anyevent.reactor.MODEL`
    #: is that of :data:`~anyevent.reactor.loop`.
    MODEL = "anyevent"

    def now(self) -> float:
        """Seconds since the epoch, as of the start of this loop iteration (``AE::now``).

        Derived from the monotonic clock plus an offset to wall-clock time
        taken at :meth:`now_update`, so it moves in step with the timers.
        """
        return self._mnow + self._off

    def now_update(self) -> None:
        """Refresh the cached time used by :meth:`now` and timers (``AE::now_update``)."""
        self._mnow = monotonic()
        self._off = time() - self._mnow

    @staticmethod
    def time() -> float:
        """The current wall-clock time in seconds since the epoch (``AE::time``)."""
        return time()

    # -- io -----------------------------------------------------------------

    def io(self, fh: Any, poll: int | str, cb: Callable[[], object]) -> IOWatcher:
        """Watch ``fh`` (an object with ``fileno()`` or an int fd).

        ``poll`` is ``0`` (or ``False``) or ``"r"`` for readability, ``1``
        (or ``True``) or ``"w"`` for writability: ``AE::io``'s 0/1 and
        ``AnyEvent->io``'s ``"r"``/``"w"``, the values every Perl backend
        reads alike.  ``cb()`` is called with no arguments each time the fd is
        ready (level triggered; an error or hang-up counts as ready for both).
        Several watchers may share one fd and direction; they run in creation
        order.  As in Perl, the fd should not be closed while a watcher for
        it exists; if it is and the fd number is reused, a new watcher for the
        new file re-arms it.  Raises :class:`ValueError` for any other
        ``poll`` (``"write"``, ``2``, ...) and for a closed file object
        (``fileno()`` -1), :class:`OSError` when the fd cannot be polled
        (``EBADF`` for a closed fd, ``EPERM`` for a regular file).
        Port of ``AE::io``.
        """
        try:
            ev = _POLL_EVENTS[poll]
        except (KeyError, TypeError):  # TypeError: unhashable
            raise ValueError("io watcher: poll must be 0 or 'r' (read), "
                             "1 or 'w' (write), got %r" % (poll,)) from None
        fd = fh if fh.__class__ is int else fh.fileno()
        if fd < 0:
            raise ValueError("io watcher on a closed file (fileno() is %d)" % fd)
        ent = self._fds.get(fd)
        if ent is None:
            ent = self._fds[fd] = _FdEntry(fd)
        # Also when the fd is already polled for ``ev`` (a second watcher):
        # re-arming then is one cheap syscall and repairs an fd that was
        # closed and reused while an old watcher still lived.
        try:
            self._update_mask(ent, ent.mask | ev)
        except OSError:
            if not ent.mask:
                del self._fds[fd]
            raise
        rec = _IORec(cb)
        if ev is _IN:
            ent.r = ent.r + (rec,)
        else:
            ent.w = ent.w + (rec,)
        w = _new(IOWatcher)
        w._loop = self
        w._fd = fd
        w._ev = ev
        w._rec = rec
        return w

    def _update_mask(self, ent: _FdEntry, mask: int) -> None:
        """Model interface: watch ``ent.fd`` for the events in ``mask``
        (``_IN``, ``_OUT``, both, or 0: not at all), and set ``ent.mask``;
        the ready fds' records then run through :func:`_run_io`, writers
        first."""
        poller = self._poller
        fd = ent.fd
        try:
            if not ent.mask:
                poller.register(fd, mask)
            elif not mask:
                poller.unregister(fd)
            else:
                poller.modify(fd, mask)
        except OSError:
            if mask:
                # The fd was closed (and maybe reused) behind our back: start over.
                try:
                    poller.unregister(fd)
                except OSError:
                    pass
                try:
                    poller.register(fd, mask)
                except OSError:
                    ent.mask = 0
                    raise
        ent.mask = mask

    def _io_remove(self, fd: int, ev: int, rec: _IORec) -> None:
        ent = self._fds.get(fd)
        if ent is None:
            return
        if ev is _IN:
            ent.r = tuple(r for r in ent.r if r is not rec)
            gone = not ent.r
        else:
            ent.w = tuple(r for r in ent.w if r is not rec)
            gone = not ent.w
        if gone:
            mask = ent.mask & ~ev
            if not mask:
                del self._fds[fd]
            self._update_mask(ent, mask)

    # -- timers -------------------------------------------------------------

    def timer(self, after: float, interval: float | None,
              cb: Callable[[], object]) -> TimerWatcher:
        """Call ``cb()`` after ``after`` seconds, then every ``interval`` seconds.

        ``after`` counts from :meth:`now` (the start of the current
        iteration, as in Perl).  ``interval`` 0 (or ``None``) makes a one-shot
        timer.  A periodic timer is scheduled from its previous due time, so
        it does not drift; when it falls more than one interval behind it
        runs once and continues one interval after that.  Port of
        ``AE::timer``; as there, an ``after`` of NaN never comes (nor does an
        infinite one).
        """
        if after != after:      # NaN: EV's "never" (and a NaN would disorder the heap)
            after = _NEVER
        ent = [self._mnow + after, next(self._timer_seq), cb, interval]
        heappush(self._timers, ent)
        w = _new(TimerWatcher)
        w._loop = self
        w._ent = ent
        # A million timers is a normal load, and the cyclic collector walking
        # them all made creating them 60 % slower.  It has nothing to find
        # here: the heap keeps a pending timer's entry alive anyway, and firing
        # a one-shot timer or cancelling any timer drops the callback, which
        # ends every cycle through them.
        refcounted(ent)
        return refcounted(w)

    def _timer_cancelled(self) -> None:
        # Cancelled entries stay in the heap until they reach the top; rebuild
        # the heap (in place: _run_timers may be iterating it) once they
        # make up more than half of it.
        self._ncancelled = n = self._ncancelled + 1
        timers = self._timers
        if n > 256 and n * 2 > len(timers):
            timers[:] = [e for e in timers if e[2] is not None]
            heapify(timers)
            self._ncancelled = 0

    def _run_timers(self) -> bool:
        """Run every timer due at the cached time; return True if any ran."""
        timers = self._timers
        now = self._mnow
        ran = False
        late: list[list[Any]] = []
        while timers and timers[0][0] <= now:
            ent = heappop(timers)
            cb = ent[2]
            if cb is None:
                self._ncancelled -= 1
                continue
            ran = True
            ival = ent[3]
            if ival:
                nxt = ent[0] + ival
                if nxt > now:
                    ent[0] = nxt
                    ent[1] = next(self._timer_seq)
                    heappush(timers, ent)
                else:  # behind schedule: once more, but in the next iteration
                    ent[0] = now
                    late.append(ent)
            else:
                ent[2] = None
            try:
                cb()
            except Exception as exc:
                _report(exc, "timer")
        for ent in late:
            ent[1] = next(self._timer_seq)
            heappush(timers, ent)
        return ran

    # -- idle and postpone ----------------------------------------------------

    def idle(self, cb: Callable[[], object]) -> IdleWatcher:
        """Call ``cb()`` repeatedly while the loop has nothing else to do (``AE::idle``)."""
        rec = [cb]
        self._idle.append(rec)
        w = _new(IdleWatcher)
        w._loop = self
        w._rec = rec
        return w

    def postpone(self, cb: Callable[[], object]) -> None:
        """Call ``cb()`` once, soon, from the loop (``AE::postpone``).  No watcher.

        As in Perl, the queue of postponed callbacks is run by a zero-delay
        timer created when the queue becomes non-empty, so it runs after
        zero-delay timers created before it and before those created after
        it.  Callbacks postponed while the queue runs join the same run.
        """
        pending = self._pending
        pending.append(cb)
        if len(pending) == 1:
            heappush(self._timers, [self._mnow, next(self._timer_seq),
                                    self._run_postponed, 0])

    def _run_postponed(self) -> None:
        pending = self._pending
        while pending:
            cb = pending.popleft()
            try:
                cb()
            except Exception as exc:
                _report(exc, "postpone")

    # -- signals --------------------------------------------------------------

    def signal(self, sig: int | str, cb: Callable[[], object]) -> SignalWatcher:
        """Call ``cb()`` from the loop whenever ``sig`` arrives (``AE::signal``).

        ``sig`` is a name with or without ``SIG`` or a number.  The OS-level
        handler only wakes the loop (through a wake-up fd); ``cb`` runs as an
        ordinary callback.  Several arrivals before the loop looks are
        delivered once.  Several watchers per signal run in creation order.
        The previous disposition is restored when the last watcher for the
        signal goes away.  Raises :class:`ValueError` for an unknown or
        uncatchable signal (``KILL``, ``STOP``) and when called outside the
        main thread.
        """
        signum = signal_number(sig)
        recs = self._sig_recs.get(signum)
        if recs is None:
            self._sig_install(signum)
            recs = self._sig_recs[signum] = []
        rec = [cb]
        recs.append(rec)
        w = _new(SignalWatcher)
        w._loop = self
        w._rec = rec
        w._sig = signum
        return w

    def _sig_install(self, signum: int) -> None:
        """Model interface: the first watcher of ``signum`` came: catch the
        signal and have :meth:`_sig_dispatch` run in the loop when it
        arrives (raise ValueError if it cannot be caught)."""
        if self._sig_r is None:
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            _signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
            self._sig_r, self._sig_w = r, w
            self._sig_io = self.io(r, 0, self._sig_dispatch)
        try:
            self._sig_catch(signum, _noop_handler)
        except ValueError:
            if not self._sig_recs:
                self._sig_close()
            raise

    def _sig_catch(self, signum: int, handler: Callable[[int, Any], object]) -> None:
        """Put ``handler`` in as the Python-level handler of ``signum``, keeping
        the previous one for :meth:`_signal_remove`; ValueError if the signal
        cannot be caught."""
        prev = _signal.getsignal(signum)
        try:
            _signal.signal(signum, handler)
        except (OSError, ValueError) as exc:
            raise ValueError("cannot watch signal %d: %s" % (signum, exc)) from None
        self._sig_prev[signum] = prev

    def _signal_remove(self, signum: int, rec: list[Any]) -> None:
        recs = self._sig_recs.get(signum)
        if recs is None:
            return
        recs.remove(rec)
        if recs:
            return
        del self._sig_recs[signum]
        self._sig_uninstall(signum)
        prev = self._sig_prev.pop(signum)
        _signal.signal(signum, prev if prev is not None else _signal.SIG_DFL)
        if not self._sig_recs:
            self._sig_close()

    def _sig_uninstall(self, signum: int) -> None:
        """The last watcher of ``signum`` went: the model forgets the signal
        (our loop's Python-level handler is replaced by the previous one)."""

    def _sig_close(self) -> None:
        """Model interface: the last signal watcher went: release what
        :meth:`_sig_install` set up for every signal (the wake-up fd)."""
        cast(IOWatcher, self._sig_io).cancel()
        self._sig_io = None
        if _signal.set_wakeup_fd(-1) != cast(socket.socket, self._sig_w).fileno():
            _log.warning("signal wake-up fd was replaced by someone else")
        cast(socket.socket, self._sig_r).close()
        cast(socket.socket, self._sig_w).close()
        self._sig_r = self._sig_w = None

    def _sig_dispatch(self) -> None:
        try:
            data = cast(socket.socket, self._sig_r).recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in dict.fromkeys(data):
            _call_all(tuple(self._sig_recs.get(signum, ())), "signal")

    # -- children -------------------------------------------------------------

    def child(self, pid: int, cb: Callable[[int, int], object]) -> ChildWatcher:
        """Call ``cb(pid, status)`` when child ``pid`` (0: any child) exits.

        ``status`` is the raw wait status (``status >> 8`` is the exit code,
        see :func:`os.waitstatus_to_exitcode`).  A watcher for a child that
        has already exited fires on the next loop iteration.  Port of
        ``AE::child``.

        Reaping policy: while only pid-specific watchers exist, only those
        pids are reaped (``waitpid(pid, WNOHANG)``), so children owned by
        other code (e.g. :mod:`subprocess`) are never stolen.  While a pid-0
        watcher exists every child is reaped (``waitpid(-1)``), as Perl
        AnyEvent always does; a status reaped that way for a pid nobody
        watches is kept (the last 1024), so a watcher created later for that
        pid still receives it.
        """
        pid = int(pid)
        rec = [cb]
        self._child_recs.setdefault(pid, []).append(rec)
        if self._chld_watcher is None:
            self._chld_watcher = self._child_waker()
        self._child_watch(pid)
        # the child may be a zombie already: look once soon.
        self.postpone(self._reap)
        w = _new(ChildWatcher)
        w._loop = self
        w._rec = rec
        w._pid = pid
        return w

    def _child_waker(self) -> _Cancellable:
        """Model interface: the watcher that runs :meth:`_reap` while child
        watchers exist (ours: a SIGCHLD watcher)."""
        return self.signal("CHLD", self._reap)

    def _child_watch(self, pid: int) -> None:
        """Model interface: a watcher of ``pid`` (0: any child) came; the
        waker is :attr:`_chld_watcher`.  Ours needs nothing more: SIGCHLD
        comes for every child."""

    def _child_remove(self, pid: int, rec: list[Any]) -> None:
        recs = self._child_recs.get(pid)
        if recs is None:
            return
        recs.remove(rec)
        if not recs:
            del self._child_recs[pid]
            if not self._child_recs and self._chld_watcher is not None:
                self._chld_watcher.cancel()
                self._chld_watcher = None

    def _reap(self) -> None:
        status: int | None
        recs = self._child_recs
        kept = self._child_kept
        if 0 in recs:
            for pid, status in _wait_any():
                if pid not in recs:
                    kept[pid] = status
                    if len(kept) > _KEPT_STATUSES:
                        del kept[next(iter(kept))]
                _call_all(tuple(recs.get(pid, ())) + tuple(recs.get(0, ())),
                          "child", pid, status)
        for pid in [p for p in recs if p]:
            if pid in kept:  # reaped earlier by a pid-0 watcher, which was told then
                status = kept.pop(pid)
            elif 0 in recs:  # everything was reaped above
                continue
            else:
                status = _wait_one(pid)
                if status is None:
                    continue
            _call_all(tuple(recs.get(pid, ())), "child", pid, status)

    # -- calls from other threads ----------------------------------------------

    def call_soon_threadsafe(self, cb: Callable[..., object], *args: Any) -> None:
        """Call ``cb(*args)`` on the loop's thread, soon; safe to call from any thread.

        Named after asyncio's ``loop.call_soon_threadsafe``, which it mirrors
        (AnyEvent has no twin: Perl's loops are single-threaded).  The call is
        queued and the loop is woken at once through a wake-up socket pair
        watched like any fd, so a loop sleeping in its poll runs ``cb`` without
        waiting for a timer.  Queued calls run in the order they were queued,
        as ordinary callbacks: an exception escaping ``cb`` goes to the
        exception handler (``where`` is ``"call_soon_threadsafe"``).  Returns
        nothing; there is no way to cancel a queued call.

        The wake-up pair is created on the first call (from any thread: epoll
        lets another thread add an fd to a sleeping poll) and then stays, so
        from then on the loop always has a watcher and no longer raises
        "the loop has no watchers" (another thread might still call in).
        Until the first call the loop's iteration is untouched; see
        :meth:`~anyevent.reactor.Loop.prepare_threadsafe` to create the wake-up before the first call.
        """
        with self._ts_lock:
            if self._ts_w is None:
                self._ts_open()
            calls = self._ts_calls
            calls.append((cb, args))
            if len(calls) == 1:  # otherwise a wake-up is pending already
                try:
                    cast(socket.socket, self._ts_w).send(b"\0")
                except (BlockingIOError, InterruptedError):
                    pass  # the pipe is full: the loop is being woken anyway

    def prepare_threadsafe(self) -> None:
        """Create :meth:`call_soon_threadsafe`'s wake-up now, if not done yet.

        Call it on the loop's thread before handing work to a thread that will
        report back through :meth:`call_soon_threadsafe`: then a loop with
        nothing else to wait for sleeps until the call arrives instead of
        raising "the loop has no watchers", and a select-based poller (no
        epoll) watches the wake-up from its next poll on.  Idempotent.
        """
        with self._ts_lock:
            if self._ts_w is None:
                self._ts_open()

    def _ts_reset(self) -> None:
        self._ts_lock = threading.Lock()
        self._ts_calls = deque()
        self._ts_r = self._ts_w = self._ts_io = None

    def _ts_open(self) -> None:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._ts_r, self._ts_w = r, w
        weakref.finalize(self, _close_pair, r, w)  # the loop made them: it closes them
        self._ts_io = self.io(r, 0, self._ts_dispatch)

    def _ts_dispatch(self) -> None:
        try:
            cast(socket.socket, self._ts_r).recv(4096)
        except (BlockingIOError, InterruptedError):
            pass
        # drain first, then take the queue: a call queued in between brings
        # its own wake-up byte, at worst a spare one
        with self._ts_lock:
            calls, self._ts_calls = self._ts_calls, deque()
        for cb, args in calls:
            try:
                cb(*args)
            except Exception as exc:
                _report(exc, "call_soon_threadsafe")

    # -- running --------------------------------------------------------------

    def one_event(self, _maxwait: float = MAXWAIT) -> None:
        """Run one iteration: due timers (postponed callbacks among them), or one poll for I/O.

        Port of ``AnyEvent::Loop::one_event``.  Raises :class:`RuntimeError`
        when nothing at all could ever wake the loop (no watcher of any kind;
        cancelled timers do not count), instead of sleeping forever.
        (``_maxwait`` 0 polls without sleeping, for the asyncio driver of
        ``await cv``; then an empty loop just returns.)
        """
        self._mnow = monotonic()
        timers = self._timers
        if timers and timers[0][0] <= self._mnow and self._run_timers():
            return
        # Cancelled timers stay in the heap: drop those on top, so that a
        # non-empty heap means a live timer to wait for.
        while timers and timers[0][2] is None:
            heappop(timers)
            self._ncancelled -= 1
        wait: float
        if self._idle:
            wait = 0
        elif timers:
            wait = timers[0][0] - self._mnow
            wait = 0 if wait < 0 else (wait if wait < _maxwait else _maxwait)
        elif self._fds:
            wait = _maxwait
        elif not _maxwait:
            return
        else:
            raise RuntimeError("anyevent: the loop has no watchers, "
                               "waiting would block forever")
        ready = self._ready(wait)
        self._mnow = monotonic()
        if ready:
            for recs in ready:
                _run_io(recs)
        elif self._idle and not (timers and timers[0][0] <= self._mnow):
            _call_all(tuple(self._idle), "idle")

    def _ready(self, wait: float) -> list[tuple[_IORec, ...]]:
        """One poll of the fds, waiting up to ``wait`` seconds: the record
        tuples of the ready ones, as :func:`_ready_recs` orders them."""
        fds = self._fds
        # (a small maxevents keeps epoll from allocating room for 1023 events)
        if self._epfd >= 0:
            return _epoll_ready(self._epfd, wait, len(fds) or 1, fds)  # type: ignore[misc]
        return _ready_recs(fds, self._poll(wait, len(fds) or 1))

    def run(self) -> None:
        """Run until :meth:`stop` is called (``AnyEvent::Loop::run``)."""
        self._thread = get_ident()
        self._ran = True
        self._depth += 1
        depth = self._depth
        try:
            while self._depth >= depth:
                self.one_event()
        finally:
            if self._depth >= depth:
                self._depth = depth - 1

    def stop(self) -> None:
        """Make the innermost :meth:`run` return after the current callback."""
        self._depth -= 1

    def condvar(self, cb: Callable[[CondVar[Any]], object] | None = None) -> CondVar[Any]:
        """Create a :class:`CondVar` bound to this loop (``AE::cv``)."""
        return CondVar(cb, self)

    def _cv_wait(self, cv: CondVar[Any]) -> None:
        """:meth:`CondVar.recv`'s wait: run iterations until ``cv`` is ready."""
        self._thread = get_ident()
        self._ran = True
        one_event = self.one_event
        while not cv._ready:
            one_event()

    async def _cv_await(self, cv: CondVar[Any]) -> None:
        """``await cv`` on this loop: the coroutine runs on an asyncio loop
        (this loop is not running then), so that asyncio loop drives this
        loop's watchers until ``cv`` is ready (:mod:`anyevent.impl.asyncio`)."""
        from .impl.asyncio import drive_own_loop
        await drive_own_loop(self, cv)

    def after_fork(self) -> None:
        """Give a forked child its own poller and forget the parent's watchers.

        Call this in a child process that wants to run the loop itself.
        Calls queued by :meth:`call_soon_threadsafe` are dropped (their threads
        stayed in the parent).
        """
        self._poller.close()
        self._new_poller()
        self._forget_watchers()

    def _forked(self) -> None:
        """A child forked without :meth:`after_fork` (``os.register_at_fork``
        runs this): it keeps every watcher, as EV does, but on kernel objects
        of its own.  The parent's epoll set would otherwise be changed by the
        child's watchers, and the parent would be woken by the child's
        signals and thread calls through the shared wake-up pairs; so the
        child gets a new poller holding the same fds, and new socket pairs
        under the old descriptor numbers (nothing else has to change).  The
        asyncio and uvloop models are left alone (their loops are
        asyncio's)."""
        if type(self) is not Loop:
            return
        for r, w in ((self._sig_r, self._sig_w), (self._ts_r, self._ts_w)):
            if r is not None and w is not None:
                fresh = socket.socketpair()
                for old, new in zip((r, w), fresh):
                    new.setblocking(False)  # (the file description's flag: dup2 shares it)
                    os.dup2(new.fileno(), old.fileno())  # (closes the parent's, in this child)
                    new.close()
        old_poller = self._poller
        self._new_poller()
        old_poller.close()
        for fd, ent in self._fds.items():
            if ent.mask:
                self._poller.register(fd, ent.mask)

    def _new_poller(self) -> None:
        poller = self._poller = _make_poller()
        self._poll = poller.poll
        self._epfd = -1
        if _epoll_ready is not None and not isinstance(poller, _SelectorPoller):
            self._epfd = poller.fileno()  # a select.epoll

    def _forget_watchers(self) -> None:
        """:meth:`after_fork`'s part for every model: drop all watchers and
        queued calls, give watched signals their previous dispositions."""
        self._fds.clear()
        self._timers.clear()
        self._pending.clear()
        self._idle.clear()
        for signum, prev in self._sig_prev.items():
            _signal.signal(signum, prev if prev is not None else _signal.SIG_DFL)
        self._sig_recs.clear()
        self._sig_prev.clear()
        if self._sig_r is not None:
            _signal.set_wakeup_fd(-1)
            self._sig_r.close()
            cast(socket.socket, self._sig_w).close()
        self._sig_r = self._sig_w = self._sig_io = None
        self._child_recs.clear()
        self._child_kept.clear()
        self._chld_watcher = None
        if self._ts_r is not None:
            self._ts_r.close()
            cast(socket.socket, self._ts_w).close()
        self._ts_reset()  # a new lock too: another thread may have held the old one


#: Called before a blocking CondVar.recv() runs the loop: anyevent.handle
#: writes out what read callbacks pushed and holds (Perl had sent it already).
_before_block: list[Callable[[], object]] = []


def _noop_handler(signum: int, frame: object) -> None:
    """The Python-level handler: the real work happens via the wake-up fd."""


def _wait_any() -> Iterator[tuple[int, int]]:
    """Reap every exited child: yield ``(pid, status)`` pairs."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid <= 0:
            return
        yield pid, status


def _wait_one(pid: int) -> int | None:
    """Reap ``pid`` if it has exited: its raw status, else None."""
    try:
        rpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or reaped by someone else
        return None
    return status if rpid == pid else None


def _message(err: object) -> str:
    """``err`` as the text of an error message: bytes decoded, else ``str()``."""
    if isinstance(err, (bytes, bytearray)):
        return bytes(err).decode("utf-8", "backslashreplace")
    return str(err)


_T = TypeVar("_T")


class CondVar(Generic[_T]):
    """A condition variable (``AnyEvent::CondVar``), generic in its value.

    ``send(*values)`` makes it ready; ``recv()`` runs the loop until it is
    ready and returns ``None``, the single value, or a tuple of values.  A
    condvar is callable: ``cv(*values)`` is ``cv.send(*values)``.
    ``croak(err)`` makes ``recv()`` raise.  ``begin()``/``end()`` count
    outstanding jobs; ``cb(f)`` sets a callback that receives the condvar
    once it is ready.  In a coroutine, ``await cv`` waits without blocking
    the asyncio loop and gives what ``recv()`` gives.  ``send`` and ``croak``
    may be called from any thread (see :meth:`send`).  User data goes on the
    condvar as attributes or, as Perl's ``$cv->{wanted} = 3``, as
    ``cv["wanted"] = 3`` (and ``in``, ``del``, as ``exists``, ``delete``).
    """
    __slots__ = ("_loop", "_ready", "_values", "_error", "_cb", "_count",
                 "_end_cb", "_waiters", "__weakref__", "__dict__")
    _loop: Loop
    _ready: bool
    _values: tuple[Any, ...]
    _error: BaseException | None
    _cb: Callable[[CondVar[_T]], object] | None
    _count: int
    _end_cb: Callable[[CondVar[_T]], object] | None
    _waiters: list[Callable[[], object]] | None

    def __init__(self, cb: Callable[[CondVar[_T]], object] | None = None,
                 loop_: Loop | None = None) -> None:
        self._loop = loop_ or loop
        self._ready = False
        self._values = ()
        self._error = None
        self._cb = cb
        self._count = 0
        self._end_cb = None
        self._waiters = None

    def __getitem__(self, key: str) -> Any:
        """Perl's ``$cv->{key}``: user data stored on the condvar (by
        ``cv[key] = value`` or as an attribute); :class:`KeyError` if none."""
        try:
            return self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        """Perl's ``$cv->{key} = value``: keep ``value`` on the condvar (also
        readable as ``cv.key``).  :class:`KeyError` for a name the condvar
        itself uses (a method, or one starting with ``_``)."""
        if key.startswith("_") or hasattr(CondVar, key):
            raise KeyError("%r is the condvar's own, not user data" % key)
        self.__dict__[key] = value

    def __delitem__(self, key: str) -> None:
        """Perl's ``delete $cv->{key}``."""
        try:
            del self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        """Perl's ``exists $cv->{key}``."""
        return key in self.__dict__

    def send(self, *values: Any) -> None:
        """Mark the condvar ready with ``values`` and invoke its callback.

        Sending again replaces the values (Perl does the same); an earlier
        :meth:`croak` still wins.  An exception escaping the callback goes to
        the exception handler (``where`` is ``"condvar"``).  Called from a
        thread other than the loop's, the send is handed to the loop's thread
        with :meth:`~anyevent.reactor.Loop.call_soon_threadsafe` (which wakes the loop at once)
        and happens there.
        """
        if get_ident() != self._loop._thread:
            self._loop.call_soon_threadsafe(self.send, *values)
            return
        self._values = values
        self._fire()

    __call__ = send

    def croak(self, err: object, *ignored: object) -> None:
        """Mark the condvar ready so that :meth:`recv` raises ``err``.

        ``err`` may be an exception instance, which is raised as it is, or
        anything else, which becomes the message of a :class:`RuntimeError`:
        ``bytes`` are decoded as UTF-8 (undecodable bytes as ``\\xNN``),
        other objects go through ``str()``.  Further arguments are accepted
        and ignored, as Perl's ``$cv->croak`` passes only its first argument
        to ``Carp::croak``.  Unlike Perl, a false ``err`` (``""``, ``0``,
        ``None``) still makes :meth:`recv` raise.  From another thread it is
        handed to the loop's thread as :meth:`send` is.  Port of ``$cv->croak``.
        """
        if get_ident() != self._loop._thread:
            self._loop.call_soon_threadsafe(self.croak, err)
            return
        self._error = err if isinstance(err, BaseException) else RuntimeError(_message(err))
        self._values = ()
        self._fire()

    def _fire(self) -> None:
        self._ready = True
        cb = self._cb
        if cb is not None:
            self._cb = None
            try:
                cb(self)
            except Exception as exc:
                _report(exc, "condvar")
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for wake in waiters:
                wake()

    def _add_waiter(self, wake: Callable[[], object]) -> None:
        """Call ``wake()`` once the condvar is ready (the models' waits)."""
        if self._waiters is None:
            self._waiters = [wake]
        else:
            self._waiters.append(wake)

    def ready(self) -> bool:
        """True once :meth:`send` or :meth:`croak` was called."""
        return self._ready

    def recv(self) -> _T:
        """Run the loop until ready; return the sent values or raise the croaked error.

        On our own loop this works when called from inside another callback
        (the loop runs nested); Perl's AnyEvent croaks there with "recursive
        blocking wait attempted", the port allows it on purpose.  Raises
        :class:`RuntimeError` if the loop has no watcher left that could ever
        make the condvar ready (cancelled timers do not count).  On the
        asyncio models it runs the asyncio loop until ready, and raises
        :class:`RuntimeError` at once when called while that loop is running
        (a callback or coroutine): use ``await cv`` or :meth:`cb` there.
        Port of ``$cv->recv``.
        """
        if not self._ready:
            for hook in _before_block:
                hook()
            self._loop._cv_wait(self)
        return self._result()

    def _result(self) -> _T:
        if self._error is not None:
            raise self._error
        values = self._values
        if not values:
            return cast(_T, None)
        return cast(_T, values[0] if len(values) == 1 else values)

    def __await__(self) -> Generator[Any, None, _T]:
        """``await cv``: wait in a coroutine; the result is :meth:`recv`'s.

        On the asyncio models the coroutine must run on the model's asyncio
        loop.  On our own loop (model ``"anyevent"``) the asyncio loop running
        the coroutine drives our loop's watchers while it waits.  Raises
        :class:`RuntimeError` outside a running asyncio loop.
        """
        if not self._ready:
            yield from self._loop._cv_await(self).__await__()
        return self._result()

    def cb(self, *args: Callable[[CondVar[_T]], object] | None
           ) -> Callable[[CondVar[_T]], object] | None:
        """``cb(f)`` sets the callback ``f(cv)`` run once when the condvar
        becomes ready (at once if it is ready already); ``cb()`` reads it.
        Returns the callback still pending, as Perl does.
        """
        if args:
            self._cb = args[0]
            if self._ready and self._cb is not None:
                self._fire()
        return self._cb

    def begin(self, cb: Callable[[CondVar[_T]], object] | None = None) -> None:
        """Count one more outstanding job; ``cb(cv)``, if given, replaces the
        callback run when the count drops back to zero (default: ``send()``).
        """
        self._count += 1
        if cb is not None:
            self._end_cb = cb

    def end(self) -> None:
        """Count one job as done; when the count reaches exactly zero run the
        ``begin`` callback or ``send()``.  As in Perl, an ``end`` without a
        matching ``begin`` drives the count negative and sends nothing.
        """
        self._count -= 1
        if not self._count:
            if self._end_cb is not None:
                self._end_cb(self)
            else:
                self.send()

    broadcast = send
    wait = recv


# ---------------------------------------------------------------------------
# Models: detection at the first watcher (AnyEvent::detect)
# ---------------------------------------------------------------------------

#: The model names :func:`detect` accepts (``ANYEVENT_MODEL``): our own loop,
#: any asyncio loop, asyncio on uvloop's loop.
MODELS = ("anyevent", "asyncio", "uvloop")

#: The model :data:`loop` runs on; None until :func:`detect` (``$AnyEvent::MODEL``).
MODEL: str | None = None

_post_detect: list[Callable[[], object]] = []


def _running_asyncio_loop() -> Any:
    """The asyncio loop running in this thread, or None (asyncio not imported: None)."""
    import sys
    aio = sys.modules.get("asyncio")
    return aio._get_running_loop() if aio is not None else None


def detect(model: str | None = None) -> str:
    """Fix the model of :data:`loop` (if not done yet) and return its name.

    ``model`` (one of :data:`~anyevent.reactor.MODELS`) chooses it; else ``ANYEVENT_MODEL`` in
    the environment; else ``"asyncio"`` when an asyncio loop is running in
    this thread, else ``"anyevent"`` (our own loop).  The first watcher calls
    this, so the choice is made once, before anything is watched; asking for
    another model afterwards raises :class:`RuntimeError`.  Raises
    :class:`ValueError` for an unknown name and :class:`ImportError` when
    the model's package (uvloop) is not installed.  Then runs the
    :func:`post_detect` callbacks.  Port of ``AnyEvent::detect``; Perl's
    ``PERL_ANYEVENT_MODEL`` is ``ANYEVENT_MODEL`` here.
    """
    global MODEL
    if MODEL is not None:
        if model is not None and model != MODEL:
            raise RuntimeError(
                "anyevent: the model is %r already (fixed by the first watcher or "
                "detect()); choose %r before creating any watcher" % (MODEL, model))
        return MODEL
    model = model or os.environ.get("ANYEVENT_MODEL") or None
    running = _running_asyncio_loop()
    if model is None:
        model = "asyncio" if running is not None else "anyevent"
    if model not in MODELS:
        raise ValueError("anyevent: unknown model %r (ANYEVENT_MODEL must be one of %s)"
                         % (model, ", ".join(MODELS)))
    if model == "anyevent":
        _set_model_class(Loop)
    else:
        importlib.import_module(".impl." + model, __package__).install(loop, running)
    MODEL = model
    hooks, _post_detect[:] = _post_detect[:], []
    for cb in hooks:
        try:
            cb()
        except Exception as exc:
            _report(exc, "post_detect")
    return model


class _PostDetect:
    """What :func:`post_detect` returns while the model is not fixed yet."""
    __slots__ = ("_cb",)

    def __init__(self, cb: Callable[[], object]) -> None:
        self._cb = cb

    def cancel(self) -> None:
        """Forget the callback (if :func:`detect` has not run it yet)."""
        if self._cb in _post_detect:
            _post_detect.remove(self._cb)


def post_detect(cb: Callable[[], object]) -> _PostDetect | None:
    """Run ``cb()`` once the model is fixed: at once if it is, else right after
    :func:`detect` (in registration order; an exception goes to the exception
    handler, ``where`` ``"post_detect"``).  Returns None when ``cb`` ran at
    once, else an object whose ``cancel()`` forgets ``cb``.  Port of
    ``AnyEvent::post_detect`` (the object is not needed to keep ``cb``).
    """
    if MODEL is not None:
        cb()
        return None
    _post_detect.append(cb)
    return _PostDetect(cb)


#: The loop methods that detect the model first when called before detection.
_DETECTING = ("io", "timer", "signal", "child", "idle", "postpone", "one_event", "run",
              "call_soon_threadsafe", "prepare_threadsafe", "_cv_wait", "_cv_await")


def _detecting(name: str) -> Callable[..., Any]:
    method = Loop.__dict__[name]

    def detect_first(self: Loop, *args: Any, **kwargs: Any) -> Any:
        detect()
        # the method of the class as it is now (detection restored Loop's and
        # may have given loop a subclass); not self's attribute: an instance
        # attribute (tests wrap one_event) may be calling this very function
        return getattr(type(self), name)(self, *args, **kwargs)

    detect_first.__name__ = name
    detect_first.__doc__ = method.__doc__
    return detect_first


#: Loop's own methods while the detecting stand-ins take their places.
_SHADOWED: dict[str, Any] = {}


def _set_model_class(cls: type[Loop]) -> None:
    """Give Loop its methods back, then give :data:`loop` the class ``cls``."""
    for name, method in _SHADOWED.items():
        setattr(Loop, name, method)
    _SHADOWED.clear()
    if cls is not Loop:
        loop.__class__ = cls


#: The process-wide loop: a :class:`~anyevent.reactor.Loop`, or the model's subclass
#: of it once :func:`~anyevent.reactor.detect` has run (the first watcher runs it).  Until then the watcher
#: methods of the class Loop are stand-ins that detect first (a private
#: ``Loop()`` used before detection therefore detects too).  The default
#: model neither changes the object's class nor puts anything in its
#: ``__dict__``: either would slow every attribute access on it (CPython
#: then gives up its compact attribute layout), about 15 %.
loop: Loop = Loop()
os.register_at_fork(after_in_child=lambda: loop._forked())
for _name in _DETECTING:
    _SHADOWED[_name] = Loop.__dict__[_name]
    setattr(Loop, _name, _detecting(_name))
# (_DETECTING is not empty: the loop did bind _name)
del _name  # pyright: ignore[reportPossiblyUnboundVariable]
