"""Debugging help: the port of AnyEvent::Debug's ``wrap``, ``cb2str`` and ``backtrace``.

:func:`wrap` instruments every io, timer, signal, child and idle watcher
created after it: those of the ``AE`` and ``AnyEvent`` facades, of
:data:`anyevent.loop`, and so of every :class:`~anyevent.handle.Handle`.
It does this on every model. A wrapped watcher:

* records where it was created, as ``file:line (function)`` of the first
  frame outside the package; level 2 records the whole stack too;
* counts its callback's invocations, and logs each one at ``trace`` level
  while its ``trace`` is on (``ANYEVENT_VERBOSE=9`` shows them);
* logs a callback that runs longer than :data:`SLOW` seconds at ``warn``,
  naming where its watcher was created;
* keeps the last ten errors its callback raised, with their tracebacks. It
  logs each at ``error`` and adds the creation site to the exception (a
  note, Python 3.11+) before the loop's exception handler gets it;
* is listed in :data:`WRAPPED` while it lives.

A watcher created from a thread that is not the loop's is a
:class:`RuntimeError` while wrapping is on. It would wait unnoticed until the
loop next woke. Use ``loop.call_soon_threadsafe`` to create it from the
loop's thread.

Wrapping is off by default and costs nothing then: nothing is replaced.
``ANYEVENT_DEBUG_WRAP=1`` (or ``2``) in the environment turns it on when
:mod:`anyevent` is imported. Perl calls that variable
``PERL_ANYEVENT_DEBUG_WRAP``.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Callable

import anyevent

from .log import log as _log
from .reactor import loop

__all__ = ["wrap", "cb2str", "backtrace", "Wrapped", "WRAPPED", "SLOW", "TRACE"]

#: seconds a callback may run before it is logged as slow (asyncio's
#: ``slow_callback_duration``)
SLOW = 0.1
#: whether watchers created from now on trace their invocations (Perl's
#: ``$AnyEvent::Debug::TRACE``); each :class:`Wrapped` can change its own
TRACE = True
#: the wrapped watchers that live, by id (Perl's ``%AnyEvent::Debug::Wrapped``)
WRAPPED: dict[int, Wrapped] = {}

_KINDS = ("io", "timer", "signal", "child", "idle")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MAX_ERRORS = 10
_ids = itertools.count(1)
_level = 0
_facade_entries: dict[str, Any] = {}    # AE's entries wrap() replaced, to put back


class Wrapped:
    """What :func:`wrap` records of one watcher (Perl's AnyEvent::Debug::Wrapped).

    ``id`` (int, its key in :data:`WRAPPED`), ``kind`` (``"io"``, ``"timer"``...),
    ``args`` (what it was created with, the callback aside), ``cb``, ``site``
    (``"file:line (function)"``), ``stack`` (the creation stack at level 2, else
    None), ``count`` (callback invocations), ``errors`` (up to ten tracebacks),
    ``trace`` (bool: invocations are logged).
    """
    __slots__ = ("id", "kind", "args", "cb", "site", "stack", "count", "errors", "trace")
    id: int
    kind: str
    args: tuple[Any, ...]
    cb: Callable[..., object]
    site: str
    stack: traceback.StackSummary | None
    count: int
    errors: list[str]
    trace: bool

    def __init__(self, kind: str, args: tuple[Any, ...], cb: Callable[..., object],
                 stack: traceback.StackSummary) -> None:
        self.id = next(_ids)
        self.kind, self.args, self.cb = kind, args, cb
        self.site = _site(stack)
        self.stack = stack if _level >= 2 else None
        self.count = 0
        self.errors = []
        self.trace = TRACE

    def __str__(self) -> str:
        args = ", ".join(repr(a) for a in self.args)
        return "%d %s(%s) %s, created at %s" % (self.id, self.kind, args, cb2str(self.cb),
                                                 self.site)

    def verbose(self) -> str:
        """Everything recorded, on several lines (Perl's ``verbose``)."""
        lines = [str(self), "invoked %d times, tracing %s" % (self.count,
                                                             "on" if self.trace else "off")]
        if self.stack is not None:
            lines.append("created at:\n" + "".join(self.stack.format()).rstrip())
        lines += ["error:\n" + error.rstrip() for error in self.errors]
        return "\n".join(lines)

    def call(self, *args: Any) -> object:
        """Run the callback: counted, traced, timed; an error recorded."""
        self.count += 1
        if self.trace:
            _log("trace", "enter %s", self, context="debug")
        started = time.perf_counter()
        try:
            return self.cb(*args)
        except Exception as exc:
            self.errors = (self.errors + [traceback.format_exc()])[-_MAX_ERRORS:]
            _log("error", "%s raised %s: %s", self, type(exc).__name__, exc, context="debug")
            add_note = getattr(exc, "add_note", None)     # (Python 3.11+)
            if add_note is not None:
                add_note("(in the callback of the %s watcher created at %s)"
                         % (self.kind, self.site))
            raise
        finally:
            took = time.perf_counter() - started
            if took > SLOW:
                _log("warn", "callback of %s took %.3f s", self, took, context="debug")
            if self.trace:
                _log("trace", "leave %s", self, context="debug")


def _site(stack: traceback.StackSummary) -> str:
    """The innermost frame outside this package (else the innermost one)."""
    frames = [f for f in stack if not f.filename.startswith(_PACKAGE)] or list(stack)
    frame = frames[-1]
    return "%s:%s (%s)" % (frame.filename, frame.lineno, frame.name)


def _creator(kind: str, create: Callable[..., Any]) -> Callable[..., Any]:
    """``loop.<kind>`` instrumented: the callback (the last argument) wrapped."""
    def instrumented(*args: Any) -> Any:
        if threading.get_ident() != loop._thread:
            raise RuntimeError("anyevent: a %s watcher created from thread %r, not the "
                               "loop's: create it in the loop's thread, with "
                               "loop.call_soon_threadsafe(...)"
                               % (kind, threading.current_thread().name))
        info = Wrapped(kind, args[:-1], args[-1], traceback.extract_stack(sys._getframe(1)))
        watcher = create(*args[:-1], info.call)
        WRAPPED[info.id] = info
        weakref.finalize(watcher, WRAPPED.pop, info.id, None)
        return watcher
    instrumented.__doc__ = create.__doc__
    return instrumented


def wrap(level: int | None = None) -> int:
    """Set the wrap level for watchers created from now on; return the previous one.

    ``level``: 0 (off), 1 (creation site, counting, tracing, slow and failing
    callbacks reported, the thread checked) or 2 (1, and the whole creation
    stack kept); None toggles between 0 and 1. Watchers made before keep how
    they were made. Port of ``AnyEvent::Debug::wrap``.
    """
    global _level
    previous = _level
    _level = (0 if _level else 1) if level is None else int(level)
    if _level and not previous:
        for kind in _KINDS:
            setattr(loop, kind, _creator(kind, getattr(loop, kind)))
            entry = anyevent.AE.__dict__[kind]
            if getattr(entry.__func__, "__self__", None) is loop:   # strict mode's look it up
                _facade_entries[kind] = entry
                setattr(anyevent.AE, kind, staticmethod(getattr(loop, kind)))
    elif previous and not _level:
        for kind in _KINDS:
            vars(loop).pop(kind, None)
        for kind, entry in _facade_entries.items():
            setattr(anyevent.AE, kind, entry)
        _facade_entries.clear()
    return previous


def cb2str(cb: object) -> str:
    """A callback, readably: ``module.function (file:line)`` for a function or
    method, else its ``repr``. Port of ``AnyEvent::Debug::cb2str``."""
    func = getattr(cb, "__func__", cb)
    code = getattr(func, "__code__", None)
    name = getattr(func, "__qualname__", None)
    if code is None or name is None:
        return repr(cb)
    return "%s.%s (%s:%d)" % (getattr(func, "__module__", "?"), name, code.co_filename,
                              code.co_firstlineno)


def backtrace(skip: int = 0) -> str:
    """The stack of the caller, innermost last, one frame a line (``skip`` frames
    of it left out). Port of ``AnyEvent::Debug::backtrace``."""
    stack = traceback.extract_stack(sys._getframe(1 + skip))
    return "".join("%s:%s %s\n" % (f.filename, f.lineno, f.name) for f in stack)


if os.environ.get("ANYEVENT_DEBUG_WRAP", "") not in ("", "0"):
    wrap(int(os.environ["ANYEVENT_DEBUG_WRAP"]))
