"""AnyEvent::Log on top of :mod:`logging`.

Levels.  Perl's nine levels are logging levels: fatal 50, alert 48, crit 45,
error 40, warn 30, note 25, info 20, debug 10, trace 5 (ALERT, NOTE and TRACE
are registered with :func:`logging.addLevelName`).  Logging at ``fatal``
through this module exits the program after the message is written, as Perl
does (a plain ``logging`` call at CRITICAL does not).

Contexts.  A context (:class:`Ctx`, ``AnyEvent::Log::Ctx``) is a logger:

* ``ctx("anyevent.dns")`` is the logger of that name (a Perl package name
  ``"My::Module"`` is the logger ``"My.Module"``); its parent package, Perl's
  default slave, is the parent logger, reached by propagation.
* ``ctx(None)`` / ``Ctx(title=..., level=..., log_to_file=...)`` is an
  anonymous context: a logger outside the logging tree.
* a context's level set is the logger's level plus a filter (for sets such as
  ``only,debug``); its log target (``log_cb``, ``log_to_file``, ...) is one
  handler (:class:`logging.FileHandler`, :class:`logging.handlers.SysLogHandler`,
  a stderr :class:`logging.StreamHandler`); each attached slave other than the
  parent is a handler that passes the record on.

The predefined contexts: :data:`COLLECT` is the root logger (every message
arrives there); :data:`FILTER` is the ``anyevent`` logger, whose level is the
library's verbosity; :data:`LOG` is an anonymous context that prints to stderr
in Perl's format.  LOG is attached to FILTER only when ``ANYEVENT_VERBOSE`` or
``ANYEVENT_LOG`` is set, or when the program gives LOG a target.

Importing the package changes no level and adds no handler beyond a
:class:`logging.NullHandler` on ``anyevent``: the application's logging setup
decides what is shown.  ``ANYEVENT_VERBOSE`` (0-9 or a level name; above 9
counts as 9, 0 silences; anything else is reported and ignored) sets FILTER's
level; ``ANYEVENT_LOG`` is Perl's ``PERL_ANYEVENT_LOG`` specification (see
:func:`configure`).  Both apply only when set.

Differences from Perl, because the stdlib decides propagation to parent
loggers: a ``log_cb`` that returns true ("consumed") stops the message from
reaching the context's attached slaves, not its parent logger; a level set
on a context filters the records logged on it and those passing through its
handlers; timestamps are the record's creation time (Perl: the loop's cached
time unless ``exact_time``).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Union

if TYPE_CHECKING:
    from typing_extensions import Never

#: A Perl log level: its number 1-9 (or as text) or a name such as ``"warn"``.
Level = Union[int, str]
#: A message: a str (a %-format with ``args``), or a callable returning it (called only if logged).
Message = Union[str, Callable[[], object]]
#: ``fmt_cb(timestamp, context, level, message) -> formatted str``.
FmtCb = Callable[[float, "Ctx | None", int, str], str]
#: ``log_cb(formatted) -> consumed``.
LogCb = Callable[[str], object]

__all__ = ["LEVELS", "Ctx", "LevelLogger", "COLLECT", "FILTER", "LOG", "ctx", "log", "logger",
           "level_number", "perl_level", "fatal_exit", "format_time", "default_format",
           "configure", "reset"]

#: Perl level name -> logging level.  ``_BY_NUMBER[i]`` is Perl's level ``i``.
LEVELS = {
    "fatal": 50, "alert": 48, "crit": 45, "error": 40, "warn": 30,
    "note": 25, "info": 20, "debug": 10, "trace": 5,
}
_ALIASES = {
    "emerg": "fatal", "exit": "fatal", "critical": "crit", "err": "error", "die": "error",
    "warning": "warn", "notice": "note",
}
_BY_NUMBER: tuple[Any, ...] = (None, "fatal", "alert", "crit", "error", "warn", "note",
              "info", "debug", "trace")
_ALL = frozenset(range(1, 10))
_OFF = logging.CRITICAL + 100     # above every level: nothing passes

for _name, _lvl in LEVELS.items():
    if logging.getLevelName(_lvl).startswith("Level "):
        logging.addLevelName(_lvl, _name.upper())


# -- levels ---------------------------------------------------------------------------

def _number(level: Level) -> int:
    """Perl's level number 1-9 for ``level`` (1-9, ``"7"``, a name or an alias)."""
    if isinstance(level, int) and not isinstance(level, bool) and 1 <= level <= 9:
        return level
    if isinstance(level, str):
        if level.isdigit():
            return _number(int(level))
        name = _ALIASES.get(level.lower(), level.lower())
        if name in LEVELS:
            return _BY_NUMBER.index(name)
    raise ValueError("unknown AnyEvent log level %r" % (level,))


def level_number(level: Level) -> int:
    """The logging level (int) of a Perl level: 1-9 or a name such as ``"warn"``.

    Raises :class:`ValueError` for anything else.
    """
    return LEVELS[_BY_NUMBER[_number(level)]]


def perl_level(levelno: int) -> int:
    """Perl's level number (1-9) of a logging level (int); below DEBUG is trace (9)."""
    for number in range(1, 9):
        if levelno >= LEVELS[_BY_NUMBER[number]]:
            return number
    return 9


def _level_list(levels: tuple[Level, ...] | list[Level]) -> list[int]:
    """Perl's ``_lvl_lst``: level numbers of the given levels, ``"all"`` being 1-9."""
    out: list[int] = []
    for level in levels:
        out.extend(_ALL if level == "all" else (_number(level),))
    return out


def _threshold(level: Level) -> int:
    """Perl's ``_lvl``: 0 for ``0``/``"off"``/``"none"``, else the level's number."""
    if level in (0, "0", "off", "none"):
        return 0
    return _level_list([level])[-1]


# -- formatting and exiting -------------------------------------------------------------

def format_time(timestamp: float) -> str:
    """``AnyEvent::Log::format_time``: ``2026-11-30 00:10:00.123456 +0000`` (local time)."""
    whole = int(timestamp)
    local = time.localtime(whole)
    return "%s.%06d%s" % (time.strftime("%Y-%m-%d %H:%M:%S", local),
                          int(1e6 * (timestamp - whole)), time.strftime(" %z", local))


def default_format(timestamp: float, context: Ctx | None, level: int, msg: str) -> str:
    """``AnyEvent::Log::default_format``: one line per line of ``msg``, later ones with ``+``.

    ``timestamp``: seconds (float); ``context``: the :class:`Ctx` the message was
    logged in; ``level``: Perl's number 1-9; ``msg``: str.  Returns a str ending
    in a newline, e.g. ``"2026-11-30 00:10:00.000000 +0000 warn  main: text\\n"``.
    """
    stamp = format_time(timestamp)
    title = context.title() if context is not None else None
    text = "%-5s %s: %s" % (_BY_NUMBER[level], title or "", msg)
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    return "".join("%s%s%s\n" % (stamp, " " if i == 0 else " + ", line)
                   for i, line in enumerate(lines))


def fatal_exit() -> Never:
    """``AnyEvent::Log::fatal_exit``: called after a fatal message; exits with status 1.

    Replace it (``anyevent.log.fatal_exit = f``) to change that; it must not return.
    """
    sys.exit(1)


class _Lazy:
    """A message given as a callable (Perl: a code reference), called once, when logged."""

    __slots__ = ("make", "text")

    def __init__(self, make: Callable[[], object]) -> None:
        self.make: Callable[[], object] = make
        self.text: str | None = None

    def __str__(self) -> str:
        if self.text is None:
            self.text = str(self.make())
        return self.text


# -- handlers and filters of a context -------------------------------------------------

class _Mask(logging.Filter):
    """A context's level set (Perl's level mask)."""

    def __init__(self, context: Ctx) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        return perl_level(record.levelno) in self.context._mask


class _PerlFormatter(logging.Formatter):
    """Formats a record with the context's ``fmt_cb`` (default: :func:`default_format`)."""

    def __init__(self, context: Ctx) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.endswith("\n"):
            msg = msg[:-1]
        fmt = self.context._fmt or default_format
        return fmt(record.created, _origin(record), self.context._capped(record.levelno), msg)


def _origin(record: logging.LogRecord) -> Ctx:
    """The context a record was logged in."""
    found = record.__dict__.get("ae_ctx")
    return found if found is not None else ctx(record.name)


class _Callback(logging.Handler):
    """Perl's ``log_cb``: ``cb(formatted)``; a true result consumes the message."""

    formatter: _PerlFormatter  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(self, cb: LogCb) -> None:
        super().__init__()
        self.cb = cb

    def emit(self, record: logging.LogRecord) -> None:
        if self.cb(self.format(record)):
            record.__dict__.setdefault("ae_consumed", set()).add(id(self.formatter.context))


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]  # generic only from 3.11
    """Perl's ``log_to_warn``: the current ``sys.stderr``."""

    terminator = ""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _File(logging.FileHandler):
    """Perl's ``log_to_file``: appends, flushed after each message."""

    terminator = ""

    def __init__(self, path: str) -> None:
        super().__init__(path, mode="a", delay=True)


class _Path(_File):
    """Perl's ``log_to_path``: opens the file for each message."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            if self.stream is not None:
                self.stream.close()
                self.stream = None


class _Syslog(logging.handlers.SysLogHandler):
    """Perl's ``log_to_syslog``: Perl level ``n`` is syslog priority ``n - 1``; trace is debug."""

    formatter: _PerlFormatter  # pyright: ignore[reportIncompatibleVariableOverride]

    def mapPriority(self, levelName: str) -> int:  # type: ignore[override]  # syslog wants the number
        levelno = logging.getLevelName(levelName)
        number = perl_level(levelno) if isinstance(levelno, int) else 5
        return min(self.formatter.context._capped_number(number), 8) - 1


def _syslog_format(_timestamp: float, context: Ctx | None, _level: int, msg: str) -> str:
    """Perl's syslog ``fmt_cb``: ``(title) msg``, continuation lines marked ``+``."""
    title = context.title() if context is not None else None
    return "(%s) %s" % (title or "", re.sub(r"\n(?=.)", "\n+ ", msg))


def _facility(name: str | None) -> str:
    """A syslog facility name: ``"user"``, ``"local0"``, ``"LOG_LOCAL0"``."""
    key = (name or "user").lower()
    key = key[4:] if key.startswith("log_") else key
    if key not in logging.handlers.SysLogHandler.facility_names:
        raise ValueError("unknown syslog facility %r" % (name,))
    return key


class _Slave(logging.Handler):
    """One attached slave context: passes the record on, unless the master's
    ``log_cb`` consumed it (Perl's propagation to ``%$slaves``)."""

    def __init__(self, master: Ctx, slave: Ctx) -> None:
        super().__init__()
        self.master, self.slave = master, slave
        self.addFilter(master._mask_filter)

    def emit(self, record: logging.LogRecord) -> None:
        if id(self.master) not in record.__dict__.get("ae_consumed", ()):
            self.slave._receive(self.master._cap_record(record))


class _AnonLogger(logging.Logger):
    """The logger of an anonymous context: outside the tree, never the last resort."""

    def callHandlers(self, record: logging.LogRecord) -> None:
        for handler in list(self.handlers):
            if record.levelno >= handler.level:
                handler.handle(record)


# -- contexts ------------------------------------------------------------------------

class Ctx:
    """A logging context (Perl's ``AnyEvent::Log::Ctx``), backed by a :class:`logging.Logger`.

    ``Ctx(**methods)`` (Perl: ``new AnyEvent::Log::Ctx method => param, ...``) makes an
    anonymous context and calls each method with its value (a list or tuple is
    spread), in order: ``Ctx(title="dubious", level="error", log_cb=f, slaves=[a, b])``.
    Package contexts come from :func:`ctx`.
    """

    def __init__(self, **methods: Any) -> None:
        self._bind(_AnonLogger(""), None)
        for name, value in methods.items():
            args = value if isinstance(value, (list, tuple)) else (value,)
            getattr(self, name)(*args)

    @classmethod
    def _of(cls, logger: logging.Logger, title: str) -> Ctx:
        obj = cls.__new__(cls)
        obj._bind(logger, title)
        return obj

    _logger: logging.Logger
    _title: str | None
    _mask: frozenset[int]
    _cap: int
    _fmt: FmtCb | None
    _target: logging.Handler | None
    _slaves: dict[int, _Slave]
    _saved: dict[str, Any]         # logger attributes as they were before we changed them

    def _bind(self, logger: logging.Logger, title: str | None) -> None:
        self._logger, self._title = logger, title
        self._mask, self._cap, self._fmt = _ALL, 0, None
        self._target, self._slaves = None, {}
        self._saved = {}
        self._mask_filter = _Mask(self)
        self._formatter = _PerlFormatter(self)

    def __repr__(self) -> str:
        return "<anyevent.log.Ctx %r>" % (self._title,)

    @property
    def logging_logger(self) -> logging.Logger:
        """The :class:`logging.Logger` behind this context."""
        return self._logger

    def title(self, new_title: str | None = None) -> str | None:
        """``$ctx->title([$new_title])``: the title (str or None), replaced when given."""
        if new_title is not None:
            self._title = new_title
        return self._title

    # -- levels (Perl: levels, level, enable, disable, cap) -------------------------

    def _change(self, attr: str, value: Any) -> None:
        """Set an attribute of the logger, remembering its first value for :func:`reset`."""
        self._saved.setdefault(attr, getattr(self._logger, attr))
        setattr(self._logger, attr, value)

    def _set_mask(self, mask: Iterable[int]) -> None:
        self._mask = frozenset(mask)
        lowest = max(self._mask, default=0)
        self._change("level", 1 if lowest == 9 else LEVELS[_BY_NUMBER[lowest]] if lowest else _OFF)
        self._logger.manager._clear_cache()  # type: ignore[attr-defined]
        self._logger.addFilter(self._mask_filter)

    def levels(self, *levels: Level) -> None:
        """``$ctx->levels(@levels)``: enable exactly these levels (``"all"``: every one)."""
        self._set_mask(_level_list(levels))

    def level(self, level: Level) -> None:
        """``$ctx->level($level)``: enable ``level`` and every higher priority; 0/off: none."""
        self._set_mask(range(1, _threshold(level) + 1))

    def enable(self, *levels: Level) -> None:
        """``$ctx->enable(@levels)``: enable these levels, leave the others."""
        self._set_mask(self._mask | set(_level_list(levels)))

    def disable(self, *levels: Level) -> None:
        """``$ctx->disable(@levels)``: disable these levels, leave the others."""
        self._set_mask(self._mask - set(_level_list(levels)))

    def cap(self, level: Level) -> None:
        """``$ctx->cap($level)``: messages passing through are lowered to at most ``level``."""
        self._cap = _threshold(level)

    def _capped_number(self, number: int) -> int:
        return max(number, self._cap)

    def _capped(self, levelno: int) -> int:
        return self._capped_number(perl_level(levelno))

    def _cap_record(self, record: logging.LogRecord) -> logging.LogRecord:
        number = perl_level(record.levelno)
        if self._cap <= number:
            return record
        copy = logging.makeLogRecord(record.__dict__)
        copy.levelno = LEVELS[_BY_NUMBER[self._cap]]
        copy.levelname = logging.getLevelName(copy.levelno)
        return copy

    # -- slaves (Perl: attach, detach, slaves) -------------------------------------------

    def _parent(self) -> Ctx | None:
        parent = self._logger.parent
        return None if parent is None else ctx(parent.name)

    def attach(self, *contexts: Ctx | str | None) -> None:
        """``$ctx->attach(@ctxs)``: pass messages on to these contexts (or package names) too."""
        for other in map(ctx, contexts):
            if other is self._parent():
                self._change("propagate", True)
            elif id(other) not in self._slaves:
                handler = self._slaves[id(other)] = _Slave(self, other)
                self._logger.addHandler(handler)

    def detach(self, *contexts: Ctx | str | None) -> None:
        """``$ctx->detach(@ctxs)``: stop passing messages to these contexts."""
        for other in map(ctx, contexts):
            if other is self._parent():
                self._change("propagate", False)
            else:
                self._logger.removeHandler(self._slaves.pop(id(other), None))  # type: ignore[arg-type]

    def slaves(self, *contexts: Ctx | str | None) -> None:
        """``$ctx->slaves(@ctxs)``: exactly these slaves (none: the parent is detached too)."""
        self.detach(*[h.slave for h in list(self._slaves.values())])
        if self._parent() is not None:
            self.detach(self._parent())
        self.attach(*contexts)

    def _receive(self, record: logging.LogRecord) -> None:
        """A record passed on by a master: logged here once, if the level set allows."""
        seen = record.__dict__.setdefault("ae_seen", set())
        if id(self) not in seen:
            seen.add(id(self))
            self._logger.handle(record)

    # -- targets (Perl: log_cb, fmt_cb, log_to_*) ----------------------------------------

    def __del__(self) -> None:
        # a file or syslog target goes with its context, as the fh does in Perl
        try:
            if self._target is not None:
                self._target.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer (or at exit)
            pass

    def _set_target(self, handler: logging.Handler | None) -> None:
        if self._target is not None:
            self._logger.removeHandler(self._target)
            self._target.close()
        self._target = handler
        if handler is not None:
            handler.setFormatter(self._formatter)
            handler.addFilter(self._mask_filter)
            self._logger.handlers.insert(0, handler)   # before the slaves: it may consume

    def log_cb(self, cb: LogCb | None) -> None:
        """``$ctx->log_cb($cb)``: ``cb(str) -> bool`` gets each formatted message; a true
        result consumes it (not passed to the slaves).  ``None``: no target."""
        self._set_target(None if cb is None else _Callback(cb))

    def fmt_cb(self, cb: FmtCb | None) -> None:
        """``$ctx->fmt_cb($cb)``: ``cb(timestamp, ctx, level 1-9, msg)`` formats for the
        target; ``None`` restores :func:`default_format`."""
        self._fmt = cb

    def log_to_warn(self) -> None:
        """``$ctx->log_to_warn``: print to ``sys.stderr`` (Perl: ``warn``)."""
        self._set_target(_Stderr())

    def log_to_file(self, path: str) -> None:
        """``$ctx->log_to_file($path)``: append to ``path`` (str), flushed per message."""
        self._set_target(_File(path))

    def log_to_path(self, path: str) -> None:
        """``$ctx->log_to_path($path)``: like :meth:`log_to_file`, opening the file per message."""
        self._set_target(_Path(path))

    def log_to_syslog(self, facility: str = "user",
                      address: str | tuple[str, int] | None = None) -> None:
        """``$ctx->log_to_syslog([$facility])``: a :class:`logging.handlers.SysLogHandler`.

        ``facility``: ``"user"``, ``"local0"``, ``"LOG_LOCAL0"`` ...; ``address``: the
        handler's address (default ``/dev/log`` when it exists, else UDP localhost:514).
        Sets ``fmt_cb`` to Perl's ``(title) message``.
        """
        if address is None:
            address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
        self._fmt = _syslog_format
        self._set_target(_Syslog(address=address, facility=_facility(facility)))

    # -- logging (Perl: $ctx->log, $ctx->logger) -----------------------------------------

    def log(self, level: Level, msg: Message, *args: object) -> None:
        """``$ctx->log($level, $msg, @args)``: log ``msg % args`` in this context.

        ``msg`` may be a callable returning the message, called only if it is logged.
        A ``fatal`` message exits the program through :func:`fatal_exit`.
        """
        self._emit(level_number(level), msg, args)

    def _emit(self, levelno: int, msg: Message | _Lazy, args: tuple[object, ...],
              stacklevel: int = 3) -> None:
        if self._logger.isEnabledFor(levelno):
            msg = _Lazy(msg) if callable(msg) else msg
            self._logger.log(levelno, msg, *args, stacklevel=stacklevel,
                             extra={"ae_ctx": self, "ae_seen": {id(self)}})
        if levelno >= LEVELS["fatal"]:
            if not _has_output(self._logger):
                sys.stderr.write(default_format(time.time(), self, 1, str(msg) % args if args else str(msg)))
            fatal_exit()

    def logger(self, level: Level) -> LevelLogger:
        """``$ctx->logger($level)``: a :class:`LevelLogger` for this context."""
        return LevelLogger(self, level)


def _has_output(logger: logging.Logger | None) -> bool:
    """Whether some handler other than a NullHandler would see a fatal record."""
    while logger is not None:
        if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


class LevelLogger:
    """Perl's ``AnyEvent::Log::logger``: logs at one level; true while that level is enabled.

    ``debug = anyevent.log.logger("debug")``; ``if debug: debug("%d done", n)``.  The
    truth value follows configuration changes (Perl's ``\\$enabled``).
    """

    __slots__ = ("_ctx", "_levelno")

    def __init__(self, context: Ctx, level: Level) -> None:
        self._ctx, self._levelno = context, level_number(level)

    def __call__(self, msg: Message, *args: object) -> None:
        self._ctx._emit(self._levelno, msg, args)

    def __bool__(self) -> bool:
        return self._ctx._logger.isEnabledFor(self._levelno)


_CTX: dict[str, Ctx] = {}
_CALLER: Any = object()


def ctx(pkg: str | Ctx | None = _CALLER) -> Ctx:
    """``AnyEvent::Log::ctx([$pkg])``: a context.

    No argument: the calling module's (its ``__name__``); a str: that package's
    (``"::"`` becomes ``"."``; ``"root"`` or ``""`` is :data:`COLLECT`); ``None``: a
    new anonymous one; a :class:`Ctx`: itself.
    """
    if isinstance(pkg, Ctx):
        return pkg
    if pkg is None:
        return Ctx()
    if pkg is _CALLER:
        pkg = str(sys._getframe(1).f_globals.get("__name__", "__main__"))
    name = pkg.replace("::", ".") or "root"
    found = _CTX.get(name)
    if found is None:
        logger = logging.getLogger(None if name == "root" else name)
        found = _CTX[name] = Ctx._of(logger, name)
    return found


#: The root logger's context: every message arrives there.
COLLECT = ctx("root")
COLLECT.title("$AnyEvent::Log::COLLECT")
#: The ``anyevent`` logger's context: its level is the library's verbosity.
FILTER = ctx("anyevent")
_ANYEVENT_LOGGER = FILTER.logging_logger
_ANYEVENT_LOGGER.addHandler(logging.NullHandler())


class _DefaultLog(Ctx):
    """:data:`LOG`: joins :data:`FILTER` when given a target."""

    def _set_target(self, handler: logging.Handler | None) -> None:
        super()._set_target(handler)
        FILTER.attach(self)


#: Prints to stderr in Perl's format; attached to FILTER by ANYEVENT_VERBOSE/ANYEVENT_LOG.
LOG = _DefaultLog()


def _default_log() -> None:
    LOG.title("$AnyEvent::Log::LOG")
    Ctx._set_target(LOG, _Stderr())


_default_log()


def reset() -> None:
    """``AnyEvent::Log::reset``: every context back to its defaults (levels, targets,
    slaves, cap, title); LOG prints to stderr and is detached again."""
    for name, context in list(_CTX.items()) + [("", LOG)]:
        logger = context._logger
        Ctx._set_target(context, None)
        for handler in list(context._slaves.values()):
            logger.removeHandler(handler)
        logger.removeFilter(context._mask_filter)
        for attr, value in context._saved.items():
            setattr(logger, attr, value)
        logger.manager._clear_cache()  # type: ignore[attr-defined]
        context._bind(logger, name or None)
    COLLECT.title("$AnyEvent::Log::COLLECT")
    _default_log()


def log(level: Level, msg: Message, *args: object, context: str | None = None) -> None:
    """``AE::log``: log ``msg % args`` at a Perl level in the ``anyevent`` context.

    ``context`` names a child (``"dns"`` -> ``anyevent.dns``).  ``msg`` may be a
    callable returning the message.  A ``fatal`` message ends the program through
    :func:`~anyevent.log.fatal_exit` (written to stderr if no handler would show it).
    """
    target = ctx("anyevent." + context) if context else FILTER
    target._emit(level_number(level), msg, args)


def logger(level: Level, context: str | None = None) -> LevelLogger:
    """``AnyEvent::Log::logger``: a :class:`~anyevent.log.LevelLogger` at ``level`` in the ``anyevent``
    context (``context`` as for :func:`log`)."""
    return (ctx("anyevent." + context) if context else FILTER).logger(level)


# -- ANYEVENT_LOG ---------------------------------------------------------------------

_WS = re.compile(r"\s+")
_SEP = re.compile(r"[:\s]+")
_CTX_NAME = re.compile(r"((?:[^:=\s\\]+|::|\\.)+)=")
_DIRECTIVE = re.compile(r"((?:[^,:\s\\]+|::|\\.)+)")
_MODES = {"level": ("all", "level"), "only": ("off", "enable"), "except": ("all", "disable")}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.S)


def _spec_ctx(name: str, anon: dict[str, Ctx]) -> Ctx:
    """A context named in a specification: log, filter, collect, %anon or a package."""
    known = {"log": LOG, "filter": FILTER, "collect": COLLECT}
    if name in known:
        return known[name]
    if name.startswith("%") and len(name) > 1:
        if name not in anon:
            anon[name] = Ctx(title=name)
        return anon[name]
    return ctx(name[:-2] if name.endswith("::") else name)


def _directive(context: Ctx, word: str, mode: str, anon: dict[str, Ctx]) -> str:
    """Apply one directive of a specification; returns the level mode for the next."""
    simple: dict[str, Callable[[], object]] = {
        "stderr": context.log_to_warn, "nolog": lambda: context.log_cb(None),
        "+": context.slaves, "off": lambda: context.level(0),
        "0": lambda: context.level(0), "all": lambda: context.level("all")}
    prefixed: dict[str, Callable[[str], object]] = {
        "file=": context.log_to_file, "path=": context.log_to_path,
        "cap=": context.cap, "syslog=": context.log_to_syslog,
        "+": lambda name: context.attach(_spec_ctx(name, anon))}
    if word in simple:
        simple[word]()
        return mode
    if word == "syslog":
        context.log_to_syslog()
        return mode
    if word in _MODES:
        context.level(_MODES[word][0])
        return _MODES[word][1]
    for prefix, method in prefixed.items():
        if word.startswith(prefix):
            method(word[len(prefix):])
            return mode
    getattr(context, mode)(word)   # a level: ValueError if it is not one
    return mode


def _directives(context: Ctx, spec: str, pos: int, anon: dict[str, Ctx]) -> int:
    mode = "level"
    while True:
        match = _DIRECTIVE.match(spec, pos)
        if match is None:
            return pos
        try:
            mode = _directive(context, _unescape(match.group(1)), mode, anon)
        except ValueError:
            raise ValueError("ANYEVENT_LOG (%s): parse error at '%s'" % (spec, match.group(1))) from None
        pos = match.end()
        if not spec.startswith(",", pos):
            return pos
        pos += 1


def configure(spec: str) -> None:
    """Apply a Perl ``PERL_ANYEVENT_LOG`` specification (str), e.g.
    ``"filter=debug:log=file=/tmp/x"`` or ``"log=+%w:%w=warn,syslog=LOG_LOCAL0"``.

    Context names: ``log``, ``filter``, ``collect``, ``%name`` (anonymous), or a
    package/logger name.  Directives: ``stderr``, ``file=``, ``path=``, ``syslog[=]``,
    ``nolog``, ``cap=``, ``0``/``off``, ``all``, ``only``, ``except``, ``level``, a
    level, ``+ctx``, ``+``; ``\\`` escapes a character.  Raises :class:`ValueError`
    ("parse error at ...") as Perl dies.
    """
    anon: dict[str, Ctx] = {}
    pos = _skip(_WS, spec, 0)
    while True:
        match = _CTX_NAME.match(spec, pos)
        if match is None:
            break
        pos = _directives(_spec_ctx(_unescape(match.group(1)), anon), spec, match.end(), anon)
        sep = _SEP.match(spec, pos)
        if sep is None:
            break
        pos = sep.end()
    pos = _skip(_WS, spec, pos)
    if pos < len(spec):
        raise ValueError("ANYEVENT_LOG (%s): parse error at '%s'" % (spec, spec[pos:]))


def _skip(pattern: re.Pattern[str], text: str, pos: int) -> int:
    match = pattern.match(text, pos)
    return match.end() if match else pos


def _verbose_level(verbose: str) -> int:
    """FILTER's threshold for an ``ANYEVENT_VERBOSE`` value: 0 (none) .. 9; above 9 is 9."""
    if verbose.isdigit():
        return min(int(verbose), 9)
    return _number(verbose)


def _configure_from_env() -> None:
    verbose = os.environ.get("ANYEVENT_VERBOSE", "").strip()
    spec = os.environ.get("ANYEVENT_LOG", "")
    if not verbose and not spec.strip():
        return
    FILTER.attach(LOG)
    try:
        if verbose:
            FILTER.level(_verbose_level(verbose))
    except ValueError:
        FILTER.log("error", "ignoring ANYEVENT_VERBOSE=%r: not a level number (0-9) or name",
                   verbose)
    configure(spec)


_configure_from_env()
