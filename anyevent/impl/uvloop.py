"""The ``uvloop`` model: the asyncio model on uvloop's event loop (libuv).

Needs the ``uvloop`` package (the ``test`` and ``bench`` extras install it).
Everything is :mod:`anyevent.impl.asyncio`, except io watchers and child
watchers.  The io watchers poll through an epoll set of our own, which uvloop
watches as one reader: uvloop stops watching an fd for good after an event
with an error condition (libuv stops the poll on ``POLLERR``), so a
connection reset that arrives with unread data would never be seen; our set
stays level triggered, and one poll per uvloop iteration runs every ready
fd's watchers, writers first, as our own loop does.

Signals are caught by a Python-level handler of our own, not uvloop's
``add_signal_handler``: uvloop only listens while its loop runs, so a signal
arriving between two runs (between two ``recv()``, say) was lost; ours hands
it to the loop with ``call_soon_threadsafe`` whenever it arrives, and uvloop's
wake-up fd brings a running loop to it at once.  Child watchers: uvloop keeps
SIGCHLD for its own subprocesses, so a watcher of one pid waits on a pidfd
(readable when the process exits) in our epoll set; only a watcher of any
child (pid 0) looks every :data:`CHILD_POLL` seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal
from types import FrameType
from typing import cast

import uvloop

from . import asyncio as _aio_model
from ..reactor import IOWatcher, Loop, TimerWatcher


#: Seconds between looks for exited children while a watcher of any child
#: (pid 0) exists: uvloop refuses SIGCHLD handlers (libuv reaps its own
#: subprocesses on it), and no pidfd stands for "any child".
CHILD_POLL = 0.05


class UvloopLoop(_aio_model.AsyncioLoop):
    """:class:`~anyevent.impl.asyncio.AsyncioLoop` on a :class:`uvloop.Loop`."""
    MODEL = "uvloop"
    _new_event_loop = staticmethod(uvloop.new_event_loop)

    _update_mask = Loop._update_mask  # our epoll set, not uvloop's readers

    def _start_on(self, aio: asyncio.AbstractEventLoop) -> None:
        super()._start_on(aio)
        if self._poller is not None:  # (after_fork: the parent's set)
            self._poller.close()
        self._new_poller()
        aio.add_reader(self._poller.fileno(), self._poll_ready)

    def _poll_ready(self) -> None:
        for recs in self._ready(0):
            self._run_io(recs)

    # -- signals: a handler of our own, heard also while uvloop is not running --

    def _sig_install(self, signum: int) -> None:
        if signum == _signal.SIGCHLD:
            raise ValueError("cannot watch signal %d: uvloop keeps SIGCHLD for its "
                             "subprocesses" % signum)
        self._sig_catch(signum, self._sig_caught)

    def _sig_caught(self, signum: int, frame: FrameType | None) -> None:
        # Python runs this in the main thread between two bytecodes: at once
        # while uvloop runs (its wake-up fd wakes it for any signal), else in
        # whatever runs meanwhile; the callbacks run in the loop either way.
        try:
            self.asyncio_loop.call_soon_threadsafe(self._sig_fire, signum)
        except RuntimeError:    # the asyncio loop is closed: nobody to tell
            pass

    def _sig_uninstall(self, signum: int) -> None:
        pass    # the previous handler is put back by the caller

    # -- children: a pidfd per watched pid ------------------------------------

    def _child_waker(self) -> _ChildWaker:
        return _ChildWaker(self)

    def _child_watch(self, pid: int) -> None:
        cast(_ChildWaker, self._chld_watcher).watch(pid)


class _ChildWaker:
    """What runs the loop's ``_reap`` while child watchers exist on uvloop: an io
    watcher on a pidfd per watched pid, and a :data:`CHILD_POLL` timer while a
    watcher of any child exists (or a pidfd cannot be had: no such process, an old
    kernel)."""

    def __init__(self, loop: UvloopLoop) -> None:
        self._loop = loop
        self._pidfds: dict[int, tuple[int, IOWatcher]] = {}
        self._poll: TimerWatcher | None = None
        self._polled: set[int] = set()     # the pids the timer is for (0: any child)

    def watch(self, pid: int) -> None:
        if pid in self._pidfds:
            return
        if pid:
            try:
                fd = os.pidfd_open(pid)
            except (OSError, AttributeError):   # no such process; no pidfd here
                pass
            else:
                self._pidfds[pid] = (fd, self._loop.io(fd, 0, self._look))
                return
        self._polled.add(pid)
        if self._poll is None:
            self._poll = self._loop.timer(CHILD_POLL, CHILD_POLL, self._look)

    def _look(self) -> None:
        self._loop._reap()
        self._forget_reaped()

    def _forget_reaped(self) -> None:
        """After a look for exited children: close the pidfds of processes reaped
        (a pidfd stays readable after the exit), not our children, or no longer
        watched; stop the timer when no pid it is for is watched.  A child that
        exited since the look keeps its pidfd: still readable, it makes the
        next look, which reaps it."""
        watched = self._loop._child_recs
        for pid, (fd, _) in list(self._pidfds.items()):
            try:
                # (None while it runs, its status once it exited: kept either way)
                os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                gone = pid not in watched
            except ChildProcessError:   # reaped, or not our child
                gone = True
            if gone:
                self._close(pid)
        self._polled &= watched.keys()
        if not self._polled:
            self._stop_poll()

    def _stop_poll(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _close(self, pid: int) -> None:
        fd, w = self._pidfds.pop(pid)
        w.cancel()
        os.close(fd)

    def cancel(self) -> None:
        for pid in list(self._pidfds):
            self._close(pid)
        self._stop_poll()

    __del__ = cancel


def install(loop: Loop, running: asyncio.AbstractEventLoop | None) -> None:
    """The model ``"uvloop"``: on the running uvloop loop, else a new one made
    this thread's current event loop.  Raises :class:`RuntimeError` when the
    running asyncio loop is not uvloop's."""
    if running is not None and not isinstance(running, uvloop.Loop):
        raise RuntimeError("anyevent: ANYEVENT_MODEL=uvloop, but the running asyncio "
                           "loop is %r; use ANYEVENT_MODEL=asyncio" % (running,))
    _aio_model.adopt(loop, UvloopLoop, running)
