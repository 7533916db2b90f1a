"""The ``asyncio`` model: anyevent's watchers on an asyncio event loop.

The port of Perl's ``AnyEvent::Impl::*`` idea for the loop most Python
programs already run.  :class:`AsyncioLoop` is a subclass of
:class:`anyevent.reactor.Loop` that keeps the loop's own bookkeeping (watcher
objects, the timer heap, the postpone queue, child reaping, exception
reporting) and hands the waiting to asyncio:

* io: one ``add_reader``/``add_writer`` per fd and direction, however many
  watchers share it (they run in creation order);
* timers: our heap, with one asyncio ``call_later`` armed for its earliest
  entry, so ordering, periodic timers and ``postpone`` behave as on our loop;
* signals: ``add_signal_handler`` (main thread only); children: the same
  reaping as our loop, on SIGCHLD (never ``waitpid(-1)`` unless a pid-0
  watcher exists, so asyncio's own child watchers keep their children);
* idle watchers: run from ``call_soon`` between asyncio iterations in which
  none of our io/timer/signal callbacks ran;
* ``call_soon_threadsafe``: asyncio's.

What differs from our own loop: :meth:`AsyncioLoop.now` is the current time
(asyncio caches no per-iteration time), write watchers of an fd do not
always run before its read watchers, ``recv()`` cannot nest (it raises inside
a running loop: ``await cv`` there), :meth:`AsyncioLoop.one_event` runs one
asyncio iteration in which at least one of our callbacks ran, and a loop
with no watchers waits instead of raising.

The model binds to one asyncio loop for good: the one running at detection,
else a new one (made this thread's current event loop).  Coroutines that
``await`` condvars must run on it (``loop.asyncio_loop``).

Also here: :func:`drive_own_loop`, how ``await cv`` works on our own loop.
"""

from __future__ import annotations

import asyncio
import signal as _signal
from heapq import heappop
from threading import get_ident
from time import monotonic
from typing import Any, Callable, cast

from ..reactor import (_IN, _OUT, MAXWAIT, CondVar, IdleWatcher, Loop, TimerWatcher, _call_all,
                       _FdEntry, _IORec, _report, _set_model_class)
from ..reactor import _run_io as _reactor_run_io

__all__ = ["AsyncioLoop", "install", "adopt", "drive_own_loop"]


class AsyncioLoop(Loop):
    """:class:`~anyevent.reactor.Loop` on an asyncio loop (model ``"asyncio"``).

    ``asyncio_loop`` is that loop.  The watcher methods, their arguments and
    errors are :class:`~anyevent.reactor.Loop`'s.
    """
    MODEL = "asyncio"
    _new_event_loop = staticmethod(asyncio.new_event_loop)

    asyncio_loop: asyncio.AbstractEventLoop
    _armed: asyncio.TimerHandle | None
    _armed_at: float
    _idle_handle: asyncio.Handle | None
    _busy: bool
    _one: bool

    def _start_on(self, aio: asyncio.AbstractEventLoop) -> None:
        self.asyncio_loop = aio
        self._armed = None          # asyncio's timer for the heap's earliest entry
        self._armed_at = 0.0        # ... and its due time (monotonic)
        self._idle_handle = None
        self._busy = False          # one of our callbacks ran since the idle check
        self._one = False           # one_event() is waiting for our first callback
        self._thread = get_ident()

    def _dispatched(self) -> None:
        if self._one:
            self.asyncio_loop.stop()

    # -- time -----------------------------------------------------------------

    def now(self) -> float:
        """The current wall-clock time (asyncio keeps no per-iteration time)."""
        return monotonic() + self._off

    # -- io -------------------------------------------------------------------

    def _update_mask(self, ent: _FdEntry, mask: int) -> None:
        """Loop.io and _io_remove's poller update, as asyncio readers/writers.

        An unchanged mask is a new watcher re-arming the fd: registered anew,
        which repairs an fd closed and reused while an old watcher lived.
        """
        old = ent.mask
        try:
            self._remove(ent.fd, old if old == mask else old & ~mask)
            self._add(ent, mask)
        except OSError:
            # the fd was closed (and maybe reused) behind our back: start over
            for remove in (self.asyncio_loop.remove_reader, self.asyncio_loop.remove_writer):
                try:
                    remove(ent.fd)
                except OSError:
                    pass
            ent.mask = 0
            self._add(ent, mask)
        ent.mask = mask

    def _remove(self, fd: int, mask: int) -> None:
        if mask & _IN:
            self.asyncio_loop.remove_reader(fd)
        if mask & _OUT:
            self.asyncio_loop.remove_writer(fd)

    def _add(self, ent: _FdEntry, mask: int) -> None:
        aio = self.asyncio_loop
        if mask & _IN:
            aio.add_reader(ent.fd, self._readable, ent)
        if mask & _OUT:
            aio.add_writer(ent.fd, self._writable, ent)

    def _readable(self, ent: _FdEntry) -> None:
        self._run_io(ent.r)

    def _writable(self, ent: _FdEntry) -> None:
        self._run_io(ent.w)

    def _run_io(self, recs: tuple[_IORec, ...]) -> None:
        self._busy = True
        _reactor_run_io(recs)
        if self._one:
            self.asyncio_loop.stop()

    # -- timers and postpone --------------------------------------------------

    def timer(self, after: float, interval: float | None,
              cb: Callable[[], object]) -> TimerWatcher:
        """As :meth:`anyevent.reactor.Loop.timer`, but ``after`` counts from the
        current time: asyncio keeps no time of the current iteration."""
        self._mnow = monotonic()
        w = Loop.timer(self, after, interval, cb)
        self._arm(cast("list[Any]", w._ent)[0])
        return w

    timer.__doc__ = Loop.timer.__doc__

    def postpone(self, cb: Callable[[], object]) -> None:
        self._mnow = monotonic()
        Loop.postpone(self, cb)
        self._arm(self._mnow)

    postpone.__doc__ = Loop.postpone.__doc__

    def _arm(self, due: float) -> None:
        armed = self._armed
        if armed is not None:
            if self._armed_at <= due:
                return
            armed.cancel()
        self._armed_at = due
        self._armed = self.asyncio_loop.call_later(due - monotonic(), self._timers_due)

    def _timers_due(self) -> None:
        self._armed = None
        self._mnow = monotonic()
        self._busy = True
        self._run_timers()
        timers = self._timers
        while timers and timers[0][2] is None:
            heappop(timers)
            self._ncancelled -= 1
        if timers:
            self._arm(timers[0][0])
        self._dispatched()

    # -- idle -------------------------------------------------------------------

    def idle(self, cb: Callable[[], object]) -> IdleWatcher:
        w = Loop.idle(self, cb)
        if self._idle_handle is None:
            self._idle_handle = self.asyncio_loop.call_soon(self._idle_step)
        return w

    idle.__doc__ = Loop.idle.__doc__

    def _idle_step(self) -> None:
        self._idle_handle = None
        if not self._idle:
            return
        if self._busy:
            self._busy = False
        else:
            _call_all(tuple(self._idle), "idle")
            self._dispatched()
        if self._idle:
            self._idle_handle = self.asyncio_loop.call_soon(self._idle_step)

    # -- signals (children use them as on our loop) -----------------------------

    def _sig_install(self, signum: int) -> None:
        prev = _signal.getsignal(signum)
        try:
            self.asyncio_loop.add_signal_handler(signum, self._sig_fire, signum)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ValueError("cannot watch signal %d: %s" % (signum, exc)) from None
        self._sig_prev[signum] = prev

    def _sig_fire(self, signum: int) -> None:
        self._busy = True
        _call_all(tuple(self._sig_recs.get(signum, ())), "signal")
        self._dispatched()

    def _sig_uninstall(self, signum: int) -> None:
        self.asyncio_loop.remove_signal_handler(signum)

    def _sig_close(self) -> None:
        pass  # asyncio owns the wake-up fd

    # -- threads ----------------------------------------------------------------

    def call_soon_threadsafe(self, cb: Callable[..., object], *args: Any) -> None:
        """Call ``cb(*args)`` on the loop's thread, soon; safe from any thread.

        Through asyncio's ``call_soon_threadsafe`` (which wakes the loop); an
        exception escaping ``cb`` goes to the exception handler (``where`` is
        ``"call_soon_threadsafe"``).  Raises :class:`RuntimeError` when the
        asyncio loop is closed.
        """
        self.asyncio_loop.call_soon_threadsafe(self._call_reporting, cb, args)

    def _call_reporting(self, cb: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._busy = True
        try:
            cb(*args)
        except Exception as exc:
            _report(exc, "call_soon_threadsafe")
        self._dispatched()

    def prepare_threadsafe(self) -> None:
        """Nothing to prepare: asyncio's wake-up always exists."""

    # -- running ------------------------------------------------------------------

    def _idle_asyncio_loop(self, what: str) -> asyncio.AbstractEventLoop:
        aio = self.asyncio_loop
        if aio.is_running():
            raise RuntimeError(
                "anyevent: %s inside the running asyncio loop would block it (Perl: "
                "\"recursive blocking wait attempted\"); in a coroutine use 'await cv', "
                "in a callback cv.cb(callback)" % what)
        self._thread = get_ident()
        self._ran = True
        return aio

    def one_event(self, _maxwait: float = MAXWAIT) -> None:
        """Run the asyncio loop until an iteration in which one of our
        callbacks ran.  Raises :class:`RuntimeError` inside the running loop."""
        aio = self._idle_asyncio_loop("one_event()")
        self._one = True
        try:
            aio.run_forever()
        finally:
            self._one = False

    def run(self) -> None:
        """Run the asyncio loop until :meth:`stop`.  Raises
        :class:`RuntimeError` inside the running loop (no nesting)."""
        self._idle_asyncio_loop("run()").run_forever()

    def stop(self) -> None:
        """Make :meth:`run` return (asyncio's ``stop``)."""
        self.asyncio_loop.stop()

    def _cv_wait(self, cv: CondVar[Any]) -> None:
        aio = self._idle_asyncio_loop("cv.recv()")
        # stop right in the callback that made cv ready (the loop finishes
        # the callbacks of this iteration), as our own loop returns after it
        cv._add_waiter(aio.stop)
        while not cv._ready:  # (someone else may stop the loop too)
            aio.run_forever()

    async def _cv_await(self, cv: CondVar[Any]) -> None:
        aio = asyncio.get_running_loop()
        if aio is not self.asyncio_loop:
            raise RuntimeError(
                "anyevent: this coroutine runs on %r, but the %s model watches on %r "
                "(fixed at the first watcher): run it there "
                "(anyevent.loop.asyncio_loop.run_until_complete(...)), or create the "
                "first watcher inside asyncio.run()" % (aio, self.MODEL, self.asyncio_loop))
        await _future_of(cv, aio)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's watchers and continue on a new
        asyncio loop (the parent's shares its epoll set and signal wake-up
        with the parent, so it is left alone, not closed)."""
        if self._sig_prev:
            try:
                _signal.set_wakeup_fd(-1)  # asyncio's, into the parent's loop
            except ValueError:  # not the main thread: there is none here
                pass
        self._forget_watchers()
        self._start_on(new_current_loop(self._new_event_loop))


def _future_of(cv: CondVar[Any], aio: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A future on ``aio`` resolved (to None) when ``cv`` becomes ready."""
    fut = aio.create_future()
    # (the ``or`` makes the call conditional; its value is not used)
    cv._add_waiter(lambda: fut.done() or fut.set_result(None))  # type: ignore[func-returns-value]
    return fut


def new_current_loop(factory: Callable[[], asyncio.AbstractEventLoop]
                     ) -> asyncio.AbstractEventLoop:
    """``factory()``'s new asyncio loop, made this thread's current event loop."""
    aio = factory()
    asyncio.set_event_loop(aio)
    return aio


def adopt(loop: Loop, cls: type[AsyncioLoop],
          running: asyncio.AbstractEventLoop | None) -> None:
    """Give ``loop`` (no watchers yet) the class ``cls``, on ``running`` or a
    new current asyncio loop; its own poller is closed."""
    loop._poller.close()
    # the asyncio model never polls itself (the uvloop model makes a new set)
    loop._poller = loop._poll = None  # type: ignore[assignment]
    loop._epfd = -1
    _set_model_class(cls)
    cast(AsyncioLoop, loop)._start_on(running or new_current_loop(cls._new_event_loop))


def install(loop: Loop, running: asyncio.AbstractEventLoop | None) -> None:
    """The model ``"asyncio"``: on the running asyncio loop, else a new one."""
    adopt(loop, AsyncioLoop, running)


# ---------------------------------------------------------------------------
# ``await cv`` on our own loop: the asyncio loop drives it meanwhile
# ---------------------------------------------------------------------------

class _OwnLoopDriver:
    """Runs a :class:`~anyevent.reactor.Loop`'s iterations from an asyncio
    loop while coroutines on it await condvars: the epoll fd is an asyncio
    reader (any io watcher's readiness makes it readable), and a
    ``call_later`` is armed for the earliest timer (or a 10 ms poll without
    epoll).  A timer created from plain asyncio code meanwhile is seen at the
    next iteration of ours or the next ``await cv``."""

    def __init__(self, own: Loop, aio: asyncio.AbstractEventLoop) -> None:
        self.own = own
        self.aio = aio
        self.users = 0
        self.later: asyncio.TimerHandle | None = None
        fileno = getattr(own._poller, "fileno", None)
        self.fd: int | None = fileno() if fileno is not None else None
        if self.fd is not None:
            aio.add_reader(self.fd, self.step)

    def close(self) -> None:
        if self.fd is not None:
            self.aio.remove_reader(self.fd)
        if self.later is not None:
            self.later.cancel()

    def step(self) -> None:
        self.later = None
        own = self.own
        own._thread = get_ident()
        own._ran = True
        Loop.one_event(own, 0)
        self.arm()

    def arm(self) -> None:
        if self.later is not None:
            self.later.cancel()
            self.later = None
        own = self.own
        timers = own._timers
        if own._idle:
            delay = 0.0
        elif timers:
            delay = max(timers[0][0] - monotonic(), 0.0)
        elif self.fd is None:
            delay = 0.01
        else:
            return
        self.later = self.aio.call_later(delay, self.step)


_drivers: dict[tuple[int, int], _OwnLoopDriver] = {}


async def drive_own_loop(own: Loop, cv: CondVar[Any]) -> None:
    """Wait for ``cv`` in a coroutine, with the running asyncio loop driving
    our own loop ``own`` meanwhile (``await cv`` on model ``"anyevent"``).
    Raises :class:`RuntimeError` when no asyncio loop is running."""
    try:
        aio = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("anyevent: 'await cv' needs a running asyncio loop; "
                           "outside coroutines use cv.recv()") from None
    key = (id(own), id(aio))
    driver = _drivers.get(key)
    if driver is None:
        driver = _drivers[key] = _OwnLoopDriver(own, aio)
    driver.users += 1
    own._thread = get_ident()
    own._ran = True
    fut = _future_of(cv, aio)
    driver.arm()
    try:
        await fut
    finally:
        driver.users -= 1
        if not driver.users:
            del _drivers[key]
            driver.close()
