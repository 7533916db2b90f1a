"""The ``uvloop`` model: the asyncio model on uvloop's event loop (libuv).

Needs the ``uvloop`` package (the ``test`` and ``bench`` extras install it).
Everything is :mod:`anyevent.impl.asyncio`, except io watchers and child
watchers.  The io watchers poll through an epoll set of our own, which uvloop
watches as one reader: uvloop stops watching an fd for good after an event
with an error condition (libuv stops the poll on ``POLLERR``), so a
connection reset that arrives with unread data would never be seen; our set
stays level triggered, and one poll per uvloop iteration runs every ready
fd's watchers, writers first, as our own loop does.  Child watchers poll
(uvloop reserves SIGCHLD).
"""

from __future__ import annotations

import asyncio

import uvloop

from . import asyncio as _aio_model
from ..reactor import Loop, TimerWatcher


#: Seconds between looks for exited children while child watchers exist
#: (uvloop refuses SIGCHLD handlers: libuv reaps its own subprocesses on it).
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

    def _child_waker(self) -> TimerWatcher:
        """uvloop keeps SIGCHLD for its own subprocesses: child watchers
        look for exited children every :data:`CHILD_POLL` seconds instead."""
        return self.timer(CHILD_POLL, CHILD_POLL, self._reap)


def install(loop: Loop, running: asyncio.AbstractEventLoop | None) -> None:
    """The model ``"uvloop"``: on the running uvloop loop, else a new one made
    this thread's current event loop.  Raises :class:`RuntimeError` when the
    running asyncio loop is not uvloop's."""
    if running is not None and not isinstance(running, uvloop.Loop):
        raise RuntimeError("anyevent: ANYEVENT_MODEL=uvloop, but the running asyncio "
                           "loop is %r; use ANYEVENT_MODEL=asyncio" % (running,))
    _aio_model.adopt(loop, UvloopLoop, running)
