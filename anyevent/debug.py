"""Debugging help: the port of AnyEvent::Debug (``shell``, ``wrap``, ``cb2str``, ``backtrace``).

:func:`shell` listens on a unix socket or a loopback port and gives every
connection a Python prompt inside the running program, with Perl's commands
(``help``, ``wl``, ``i``, ``w``, ``wr``, ``t``, ``u``, ``v``).

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
* is listed in :data:`WRAPPED` while its callback may still run: a one-shot
  timer leaves once it fired, when the loop lets go of its callback (what
  it raised was logged then);
* when the program's own code drops it on the line that made it (``AE.timer(1,
  0, cb)`` as a statement: it can never fire, a common slip in ports, which
  Perl allows silently), a :class:`RuntimeWarning` names that line.

Every :class:`~anyevent.handle.Handle` made while wrapping is on records
where it was made (:data:`HANDLE_SITES`); each error it reports is logged
with that site (``note`` for a fatal one, ``info`` else), and an error no
``on_error`` takes raises an :class:`OSError` carrying the site as a note.

A watcher or a handle created from a thread that is not the loop's (the
one that last ran it; before it first ran, any) is a
:class:`RuntimeError` while wrapping is on, and so is a handle changed from
there (``push_write``, ``push_read``, ``destroy``, its setters). It would
wait unnoticed until the loop next woke. Use ``loop.call_soon_threadsafe``
to do it in the loop's thread.

A report at ``warn`` or above that no logging handler of the program would
show is written to stderr.

Wrapping is off by default and costs nothing then: nothing is replaced.
``ANYEVENT_DEBUG_WRAP=1`` (or ``2``) in the environment turns it on when
:mod:`anyevent` is imported. Perl calls that variable
``PERL_ANYEVENT_DEBUG_WRAP``. The debug mode does the same without tracing
every call: it is on under ``python -X dev``, as asyncio's is, and with
``ANYEVENT_DEBUG=1``; ``ANYEVENT_DEBUG=0`` keeps it off (see
:func:`debug_mode_wanted`).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import functools
import inspect
import io
import itertools
import logging
import os
import sys
import threading
import time
import traceback
import warnings
import weakref
import types
from typing import Any, Callable

import anyevent

from .handle import Handle
from .log import _has_output, level_number, log as _log
from .reactor import loop

__all__ = ["shell", "wrap", "cb2str", "backtrace", "debug_mode_wanted", "Wrapped", "WRAPPED",
           "HANDLE_SITES", "NAMESPACE", "SLOW", "TRACE"]

#: seconds a callback may run before it is logged as slow (asyncio's
#: ``slow_callback_duration``)
SLOW = 0.1
#: whether watchers created from now on trace their invocations (Perl's
#: ``$AnyEvent::Debug::TRACE``); each :class:`Wrapped` can change its own
TRACE = True
#: the wrapped watchers that live, by id (Perl's ``%AnyEvent::Debug::Wrapped``,
#: whose entries are weak too: a watcher is kept by its owner, not by this)
WRAPPED: weakref.WeakValueDictionary[int, Wrapped] = weakref.WeakValueDictionary()

_KINDS = ("io", "timer", "signal", "child", "idle")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FACADES = (os.path.join(_PACKAGE, "__init__.py"), os.path.join(_PACKAGE, "strict.py"))
_MAX_ERRORS = 10
_LOGGER = logging.getLogger("anyevent.debug")
_ids = itertools.count(1)
_level = 0
_replaced: list[tuple[Any, str, Any]] = []  # (object, name, its own entry or _ABSENT): to put back
_ABSENT = object()                          # (an entry the object only inherited)
_UNFIRED: set[int] = set()  # ids of the program's watchers that live and never fired
_last_made = 0              # the id of the watcher made last


class Wrapped:
    """What :func:`wrap` records of one watcher (Perl's AnyEvent::Debug::Wrapped).

    ``id`` (int, its key in :data:`WRAPPED`), ``kind`` (``"io"``, ``"timer"``...),
    ``args`` (what it was created with, the callback aside), ``cb``, ``site``
    (``"file:line (function)"``), ``stack`` (the creation stack at level 2, else
    None), ``count`` (callback invocations), ``errors`` (up to ten tracebacks),
    ``trace`` (bool: invocations are logged).
    """
    __slots__ = ("id", "kind", "args", "cb", "site", "stack", "count", "errors", "trace",
                 "__weakref__")
    id: int
    kind: str
    args: tuple[Any, ...]
    cb: Callable[..., object]
    site: str
    stack: traceback.StackSummary | None
    count: int
    errors: list[str]
    trace: bool

    def __init__(self, kind: str, args: tuple[Any, ...], cb: Callable[..., object], site: str,
                 stack: traceback.StackSummary | None = None) -> None:
        self.id = next(_ids)
        self.kind, self.args, self.cb = kind, args, cb
        self.site, self.stack = site, stack
        self.count = 0
        self.errors = []
        self.trace = TRACE

    def __str__(self) -> str:
        return "%d %s" % (self.id, self.describe())

    def describe(self) -> str:
        """Kind, arguments, callback and creation site, on one line."""
        args = ", ".join(repr(a) for a in self.args)
        return "%s(%s) %s, created at %s" % (self.kind, args, cb2str(self.cb), self.site)

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
        if self.count == 1:
            _UNFIRED.discard(self.id)
        if self.trace:
            _log("trace", "enter %s", self, context="debug")
        started = time.perf_counter()
        try:
            return self.cb(*args)
        except Exception as exc:
            self.errors = (self.errors + [traceback.format_exc()])[-_MAX_ERRORS:]
            _report("error", "%s raised %s: %s", self, type(exc).__name__, exc)
            _add_note(exc, "(in the callback of the %s watcher created at %s)"
                      % (self.kind, self.site))
            raise
        finally:
            took = time.perf_counter() - started
            if took > SLOW:
                _report("warn", "callback of %s took %.3f s", self, took)
            if self.trace:
                _log("trace", "leave %s", self, context="debug")


def _report(level: str, msg: str, *args: object) -> None:
    """Log a report of the debug mode at ``level``.  One at ``warn`` or above
    that no handler of the application would show is written to stderr (as
    :data:`logging.lastResort` does): a debug mode is never silent."""
    _log(level, msg, *args, context="debug")
    levelno = level_number(level)
    if levelno >= logging.WARNING and _LOGGER.isEnabledFor(levelno) and not _has_output(_LOGGER):
        sys.stderr.write("anyevent.debug: %s\n" % (msg % args))


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``: shown with its traceback (Python 3.11+; before,
    nothing)."""
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)


def _outside(frame: types.FrameType) -> types.FrameType:
    """The innermost frame from ``frame`` outwards that is not this package's
    (``frame`` itself when there is none): where the program asked."""
    outer: types.FrameType | None = frame
    while outer is not None and outer.f_code.co_filename.startswith(_PACKAGE):
        outer = outer.f_back
    return outer or frame


def _site(frame: types.FrameType) -> str:
    """``file:line (function)`` of ``frame``."""
    return "%s:%s (%s)" % (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def _refuse_other_threads(what: str) -> None:
    """Raise :class:`RuntimeError` unless called from the thread that runs
    the loop (any thread may, until the loop first runs)."""
    if loop._ran and threading.get_ident() != loop._thread:
        raise RuntimeError("anyevent: %s from thread %r, not the loop's: do it in the "
                           "loop's thread, with loop.call_soon_threadsafe(...)"
                           % (what, threading.current_thread().name))


def _of_package(cb: object) -> bool:
    """Whether ``cb`` is a function of this package's (not the program's)."""
    module = getattr(cb, "__module__", None) or ""   # (None for code run by exec)
    return module == "anyevent" or module.startswith("anyevent.")


def _creator(kind: str, create: Callable[..., Any]) -> Callable[..., Any]:
    """``loop.<kind>`` instrumented: the callback (the last argument) wrapped."""
    def instrumented(*args: Any) -> Any:
        global _last_made
        # (the package's own watchers are not checked: the loop's, made from any
        # thread for call_soon_threadsafe, a lingering handle's; a handle's
        # methods check their callers themselves)
        ours = _of_package(args[-1])
        if not ours:
            _refuse_other_threads("a %s watcher created" % kind)
        caller = sys._getframe(1)
        info = Wrapped(kind, args[:-1], args[-1], _site(_outside(caller)),
                       traceback.extract_stack(caller) if _level >= 2 else None)
        watcher = create(*args[:-1], info.call)
        WRAPPED[info.id] = info
        _last_made = info.id
        made_at = None      # the program's line that made it, for a dropped-at-once warning
        if not ours:
            outer = caller
            while outer.f_code.co_filename in _FACADES and outer.f_back:
                outer = outer.f_back
            if not outer.f_code.co_filename.startswith(_PACKAGE):
                made_at = (outer.f_code, outer.f_lineno)
        # (nothing here may hold info: only the watcher, through its callback,
        # so that a watcher in a cycle with its callback goes as it would unwrapped)
        if made_at is not None:
            _UNFIRED.add(info.id)
        weakref.finalize(watcher, _gone, info.id, kind, made_at)
        return watcher
    instrumented.__doc__ = create.__doc__
    return instrumented


def _gone(key: int, kind: str, made_at: tuple[Any, int] | None) -> None:
    """A wrapped watcher went: out of :data:`WRAPPED`; a warning when the
    program's code dropped it, never fired, on the line that made it."""
    WRAPPED.pop(key, None)
    if made_at is None or key not in _UNFIRED:
        return
    _UNFIRED.discard(key)
    if key != _last_made:
        return      # another watcher was made since (``self.t = AE.timer(...)`` again)
    frame: Any = sys._getframe(1)
    while frame is not None:
        if (frame.f_code, frame.f_lineno) == made_at:
            warnings.warn_explicit(
                "the %s watcher made here was dropped at once, so it can never fire: "
                "keep what %s() returns as long as it should run" % (kind, kind),
                RuntimeWarning, made_at[0].co_filename, made_at[1])
            return
        frame = frame.f_back


# -- handles ------------------------------------------------------------------------------

#: where each handle made while wrapping was on was made, ``file:line (function)``
HANDLE_SITES: weakref.WeakKeyDictionary[Handle, str] = weakref.WeakKeyDictionary()
_READS = frozenset({"destroyed", "fh"})     # Handle methods any thread may call


def _handle_methods() -> list[str]:
    """The public methods of :class:`Handle` that change it."""
    return [name for name in dir(Handle) if not name.startswith("_") and name not in _READS
            and callable(inspect.getattr_static(Handle, name))]


def _checked(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``Handle.<name>`` refused outside the loop's thread."""
    @functools.wraps(method)
    def checked(self: Handle, *args: Any, **kwargs: Any) -> Any:
        _refuse_other_threads("Handle.%s called" % name)
        return method(self, *args, **kwargs)
    return checked


def _handle_init(init: Callable[..., None]) -> Callable[..., None]:
    """``Handle.__init__`` that records where the handle is made."""
    @functools.wraps(init)
    def __init__(self: Handle, *args: Any, **kwargs: Any) -> None:
        _refuse_other_threads("a Handle created")
        caller = sys._getframe(1)
        while caller.f_code.co_name == "__init__" and caller.f_back is not None and \
                caller.f_locals.get("self") is self:
            caller = caller.f_back      # (a subclass's __init__ calling ours)
        HANDLE_SITES[self] = _site(_outside(caller))
        init(self, *args, **kwargs)
    return __init__


def _handle_error(error: Callable[..., None]) -> Callable[..., None]:
    """``Handle._error`` that logs each error reported with where the handle
    was made (at ``note`` for a fatal one, ``info`` else: ``on_error`` deals
    with them), and adds that site to the :class:`OSError` of an error no
    ``on_error`` takes (which the loop's exception handler prints)."""
    @functools.wraps(error)
    def _error(self: Handle, err: int, fatal: bool = False, message: str | None = None) -> None:
        site = HANDLE_SITES.get(self)
        if site is None or self._failing:
            return error(self, err, fatal, message)
        _report("note" if fatal else "info", "the handle created at %s reports %s%s: %s", site,
                "" if fatal else "a non-fatal ",
                _errno.errorcode.get(err, str(err)), message or os.strerror(err))
        try:
            return error(self, err, fatal, message)
        except OSError as exc:
            _add_note(exc, "(the handle was created at %s)" % site)
            raise
    return _error


def _instrument_handles() -> None:
    """Put the checking entries on :class:`Handle`."""
    for name in _handle_methods():
        _put(Handle, name, _checked(name, getattr(Handle, name)))
    _put(Handle, "__init__", _handle_init(Handle.__init__))
    _put(Handle, "_error", _handle_error(Handle._error))


def _put(obj: Any, name: str, value: Any) -> None:
    """``setattr(obj, name, value)``, remembered for :func:`_put_back`."""
    _replaced.append((obj, name, vars(obj).get(name, _ABSENT)))
    setattr(obj, name, value)


def _put_back() -> None:
    """Undo every :func:`_put`, last first: each object gets back exactly its
    own entry (or none), whatever else was added to it meanwhile."""
    for obj, name, entry in reversed(_replaced):
        if entry is _ABSENT:
            delattr(obj, name)
        else:
            setattr(obj, name, entry)
    _replaced.clear()


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
            _put(loop, kind, _creator(kind, getattr(loop, kind)))
            entry = anyevent.AE.__dict__[kind]
            if getattr(entry.__func__, "__self__", None) is loop:   # strict mode's look it up
                _put(anyevent.AE, kind, staticmethod(getattr(loop, kind)))
        _instrument_handles()
    elif previous and not _level:
        _put_back()
        if anyevent.AnyEvent.MODEL is not None:   # (detected since: the model's methods)
            anyevent._bind_to_model()
    return previous


def cb2str(cb: object) -> str:
    """A callback, readably: ``module.function (file:line)`` for a function or
    method, else its ``repr``; what a wrapper wraps (``__wrapped__``: a Handle's
    weak callers) rather than the wrapper. Port of ``AnyEvent::Debug::cb2str``."""
    func = getattr(cb, "__func__", cb)
    func = getattr(func, "__wrapped__", func)
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


# -- the shell -----------------------------------------------------------------------------

_HELP = """help         this text
wl [regex]   the wrapped watchers whose description matches regex (all without);
             * marks one whose callback raised
i id, ...    the watchers with these ids, in detail
w id, ...    the Wrapped objects of these ids (for scripting)
wr [level]   set the wrap level (toggle between 0 and 1 without)
t [id, ...]  trace the calls of these watchers (without: of those made from now on)
u [id, ...]  stop tracing them (without: for those made from now on)
v [level]    show log lines of this level and above in this shell (toggle without)
cb2str(cb), backtrace(), and any Python: the namespace is shared by every shell
"""


def _ids_of(args: tuple[Any, ...]) -> list[Wrapped]:
    found = []
    for key in args:
        if key in WRAPPED:
            found.append(WRAPPED[key])
        else:
            print("%s: no such wrapped watcher." % (key,))
    return found


def _help() -> str:
    return _HELP


def _wl(regex: str = "") -> str:
    import re
    rx = re.compile(regex, re.I)
    rows = sorted((info.id, bool(info.errors), info.describe()) for info in WRAPPED.values())
    return "".join("%d%s %s\n" % (key, "*" if failed else " ", text)
                   for key, failed, text in rows if rx.search(text))


def _i(*ids: int) -> str:
    return "".join(info.verbose() + "\n" for info in _ids_of(ids))


def _w(*ids: int) -> list[Wrapped]:
    return _ids_of(ids)


def _wr(level: int | None = None) -> str:
    wrap(level)
    return "wrap level now %d" % _level


def _tracing(on: bool, ids: tuple[int, ...]) -> str:
    global TRACE
    if not ids:
        TRACE = on
        return "tracing for newly created watchers is now %s." % ("enabled" if on else "disabled")
    infos = _ids_of(ids)
    for info in infos:
        info.trace = on
    return "tracing %s for %s." % ("enabled" if on else "disabled",
                                   ", ".join(str(i.id) for i in infos))


def _t(*ids: int) -> str:
    return _tracing(True, ids)


def _u(*ids: int) -> str:
    return _tracing(False, ids)


#: The shells' namespace (Perl's package AnyEvent::Debug::shell): the commands,
#: the package's main names, and whatever a shell assigns.
NAMESPACE: dict[str, Any] = {
    "help": _help, "wl": _wl, "i": _i, "w": _w, "wr": _wr, "t": _t, "u": _u,
    "cb2str": cb2str, "backtrace": backtrace, "anyevent": anyevent, "AE": anyevent.AE,
    "AnyEvent": anyevent.AnyEvent, "loop": loop, "WRAPPED": WRAPPED,
}
_COMMANDS = {"help", "wl", "i", "w", "wr", "t", "u", "v"}


class _LogToShell(logging.Handler):
    """The log lines a shell asked for with ``v``."""

    def __init__(self, session: _Session) -> None:
        super().__init__(logging.CRITICAL + 1)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        self.session.say("%s %s: %s\n" % (record.levelname.lower(), record.name,
                                          record.getMessage()))


class _Session:
    """One connection to a shell: lines in, each run in :data:`NAMESPACE`, the
    result (and what it printed) out, then the prompt."""

    def __init__(self, fh: Any, host: str, port: int, sessions: set[_Session]) -> None:
        from .handle import Handle
        self.sessions = sessions
        self.log = _LogToShell(self)
        self.hdl = Handle(fh=fh, on_error=self.close, on_eof=self.close)
        sessions.add(self)
        self.say("Welcome, %s:%s, use 'help' for more info!\r\n> " % (host, port))
        self.hdl.push_read("line", self.line)

    def say(self, text: str) -> None:
        with _untraced():
            self.hdl.push_write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    def line(self, hdl: Any, line: bytes, eol: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if text:
            self.say(self.run(text))
        self.say("> ")
        with _untraced():
            hdl.push_read("line", self.line)

    def run(self, text: str) -> str:
        if text.split()[0] in ("exit", "quit"):
            return "sorry, no... if you want the program to exit, run os._exit(0).\n"
        out = io.StringIO()
        namespace = dict(NAMESPACE, v=self.verbosity)
        try:
            with contextlib.redirect_stdout(out):
                result = self.evaluate(text, namespace)
        except Exception:  # noqa: BLE001 - the shell's own errors go to the shell
            return out.getvalue() + "".join(traceback.format_exc().splitlines(True)[-1:])
        finally:
            NAMESPACE.update((k, v) for k, v in namespace.items() if k != "v")
        shown = "" if result is None else result if isinstance(result, str) else repr(result)
        return out.getvalue() + shown + ("" if shown.endswith("\n") or not shown else "\n")

    @staticmethod
    def evaluate(text: str, namespace: dict[str, Any]) -> Any:
        """A Python expression (its value), a statement (None), or Perl's way
        of calling a command: ``wl``, ``i 3, 4``."""
        word, _, rest = text.partition(" ")
        if word in _COMMANDS:
            args = eval("(%s,)" % rest, namespace) if rest.strip() else ()
            return namespace[word](*args)
        try:
            code = compile(text, "<shell>", "eval")
        except SyntaxError:
            exec(compile(text, "<shell>", "exec"), namespace)
            return None
        return eval(code, namespace)

    def verbosity(self, level: int | str | None = None) -> str:
        """``v``: this shell shows log lines of ``level`` and above (toggle
        between off and 9, trace, without)."""
        logger = logging.getLogger("anyevent")
        if level is None:
            level = 0 if self.log.level <= logging.CRITICAL else 9
        if level in (0, "0"):
            logger.removeHandler(self.log)
            self.log.setLevel(logging.CRITICAL + 1)
            return "verbose logging is now disabled."
        self.log.setLevel(level_number(level))
        logger.addHandler(self.log)
        if logger.getEffectiveLevel() > self.log.level:
            logger.setLevel(self.log.level)
        return "verbose logging is now enabled."

    def close(self, *args: Any) -> None:
        logging.getLogger("anyevent").removeHandler(self.log)
        self.sessions.discard(self)
        self.hdl.destroy()


def shell(host: str, service: str | int, *, allow_remote: bool = False) -> Any:
    """Listen on ``host``/``service`` and give every connection a Python shell
    in this program; return the guard that keeps it (drop it to stop).

    ``host``: ``"unix/"`` with ``service`` a path (best: only who may use the
    path can connect), or a loopback address (``"127.0.0.1"``, ``"::1"``)
    with ``service`` a port (0: any free one). Anything else raises
    :class:`ValueError` unless ``allow_remote=True``: the shell runs **any
    code** sent to it, as Perl's does, and asks for no password. Connect with
    ``socat readline unix:PATH``, ``nc -U PATH`` or ``telnet 127.0.0.1 PORT``.

    Each line runs in :data:`NAMESPACE`, shared by every shell. It is a Python
    expression (its value is shown), a statement, or one of Perl's commands
    (``help`` lists them). ``exit`` is refused. Port of
    ``AnyEvent::Debug::shell``.
    """
    import ipaddress
    from .socket import tcp_server
    if host != "unix/" and not allow_remote:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("anyevent.debug.shell: %r is not a loopback address or a unix "
                             "socket; the shell runs any code sent to it (allow_remote=True "
                             "to listen there anyway)" % (host,))
    sessions: set[_Session] = set()

    def accepted(fh: Any, peer_host: str, peer_port: int) -> None:
        with _untraced():
            _Session(fh, peer_host, peer_port, sessions)
    with _untraced():       # (the shell's own watchers: tracing them would echo itself)
        server = tcp_server(host, service, accepted)
    return _Shell(server, sessions)


@contextlib.contextmanager
def _untraced() -> Any:
    """Watchers made meanwhile are not traced (Perl's ``local $TRACE = 0``)."""
    global TRACE
    saved, TRACE = TRACE, False
    try:
        yield
    finally:
        TRACE = saved


class _Shell:
    """What :func:`shell` returns: the listener, its sessions; ``cancel()`` ends
    both (as dropping it does)."""

    def __init__(self, server: Any, sessions: set[_Session]) -> None:
        self._server, self._sessions = server, sessions

    def cancel(self) -> None:
        for session in list(self._sessions):
            session.close()
        self._server = None

    __del__ = cancel


def debug_mode_wanted() -> bool:
    """Whether the environment asks for the debug mode: ``ANYEVENT_DEBUG`` set
    to anything but ``0``; unset (or empty), Python's development mode
    (``python -X dev``, ``PYTHONDEVMODE=1``), as for asyncio's debug mode."""
    return anyevent._debug_mode_wanted()


if anyevent._debug_wrap_level():
    wrap(anyevent._debug_wrap_level())
elif debug_mode_wanted():
    TRACE = False       # the debug mode: reports, not a trace of every call
    wrap(1)
# (importing this module takes a few dozen milliseconds: the loop's cached time,
# taken when the loop was made, must not make the program's first timers overdue)
loop.now_update()
