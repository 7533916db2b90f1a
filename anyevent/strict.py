"""Argument checking for the facades (the port of AnyEvent::Strict).

:func:`enable` replaces the entries of :class:`anyevent.AE` and
:class:`anyevent.AnyEvent` with wrappers that check every argument before
the loop sees it and raise a clear error naming the function and the
argument:

* :class:`TypeError` for a value of the wrong type: a callback that is not
  callable, a non-numeric ``after``/``interval``, a pid that is not an
  ``int``, a file handle with neither ``fileno()`` nor an int value;
* :class:`ValueError` for a value of the right type that cannot be right: a
  negative or NaN interval, an unknown ``poll`` mode, an unknown signal, a
  closed file, a regular file (which cannot be polled).

It accepts everything Perl's strict mode accepts: any ``after`` (negative: the
timer fires at once, which code computing the time left to a deadline relies
on whenever a timer fires late, as AnyEvent::Handle::UDP does; infinite or
NaN: never), an infinite interval (the timer fires once), any integer pid (a
negative one matches no child).  Where it accepts more, Python is the
reason: a signal may be a number or a ``"SIG"`` name (``signal.SIGINT`` is
both), and a missing ``cb`` of a condvar may be spelt ``None``.

As Perl's, it also looks for file descriptors closed while a watcher still
watches them (on epoll such a watcher silently never fires again): every 4
seconds each fd the loop watches is checked, and a closed one is logged at
``critical``: ``"File descriptor 7 registered with AnyEvent but prematurely
closed, event loop might malfunction."``

Unknown keyword arguments are already a :class:`TypeError` in Python; as in
Perl's strict mode, ``AnyEvent.timer`` additionally requires ``after``.
Condition variables made through the facades also check the callbacks given
to ``cb()`` and ``begin()``.

Setting ``ANYEVENT_STRICT=1`` in the environment enables strict mode when
:mod:`anyevent` is imported.  Checking costs time on every call, so it is
meant for development and tests.
"""

from __future__ import annotations

import errno
import numbers
import os
import signal as _signal
import stat
from typing import Any, Callable

import anyevent
from .log import level_number, log as _log
from .reactor import CondVar, loop, post_detect, signal_number

__all__ = ["enable", "disable", "enabled"]

_saved: dict[tuple[type, str], Any] = {}


def _check_cb(where: str, cb: object, optional: bool = False) -> None:
    if optional and cb is None:
        return
    if not callable(cb):
        raise TypeError("%s: cb must be callable, got %r" % (where, cb))


def _check_seconds(where: str, name: str, value: Any) -> None:
    """A number of seconds, any (``after``, as Perl's strict mode: one in the past
    fires at once, an infinite or NaN one never)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a number of seconds, got %r" % (where, name, value))


def _check_interval(where: str, value: Any) -> None:
    """0 or None (one-shot), else a positive number of seconds (infinite: once)."""
    if value is None:
        return
    _check_seconds(where, "interval", value)
    if not value >= 0:
        raise ValueError("%s: interval must be a number of seconds >= 0, got %r" % (where, value))


def _check_fh(where: str, fh: Any) -> None:
    if isinstance(fh, bool):
        raise TypeError("%s: fh must be a file object or an int fd, got %r" % (where, fh))
    fd: Any
    if isinstance(fh, int):
        fd = fh
    else:
        fileno: Any = getattr(fh, "fileno", None)
        if not callable(fileno):
            raise TypeError("%s: fh must have a fileno() method or be an int fd, got %r"
                            % (where, fh))
        fd = fileno()
    if fd < 0:
        raise ValueError("%s: fh is closed (fd %d)" % (where, fd))
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise ValueError("%s: fd %d is not open: %s" % (where, fd, exc.strerror)) from None
    if stat.S_ISREG(mode):
        raise ValueError("%s: fd %d is a regular file, which cannot be watched" % (where, fd))


def _check_poll(where: str, poll: object, allowed: tuple[object, ...]) -> None:
    if isinstance(poll, bool) or poll not in allowed:
        raise ValueError("%s: poll must be one of %s, got %r"
                         % (where, ", ".join(map(repr, allowed)), poll))


def _check_signal(where: str, sig: object) -> None:
    if isinstance(sig, bool) or not isinstance(sig, (int, str)):
        raise TypeError("%s: signal must be a name or a number, got %r" % (where, sig))
    try:
        num = signal_number(sig)
    except ValueError:
        num = None
    if num not in _signal.valid_signals():
        raise ValueError("%s: unknown signal %r" % (where, sig))


def _check_pid(where: str, pid: Any) -> None:
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError("%s: pid must be an int, got %r" % (where, pid))


class _StrictCondVar(CondVar[Any]):
    """A :class:`CondVar` whose ``cb()`` and ``begin()`` check their callback."""
    __slots__ = ()

    def cb(self, *args: Any) -> Any:
        if args:
            _check_cb("CondVar.cb", args[0], optional=True)
        return CondVar.cb(self, *args)

    def begin(self, cb: Any = None) -> None:
        _check_cb("CondVar.begin", cb, optional=True)
        CondVar.begin(self, cb)


# -- AE ------------------------------------------------------------------------

def _ae_io(fh: Any, poll: Any, cb: Any) -> Any:
    _check_fh("AE.io", fh)
    _check_poll("AE.io", poll, (0, 1, "r", "w"))
    _check_cb("AE.io", cb)
    return loop.io(fh, poll, cb)


def _ae_timer(after: Any, interval: Any, cb: Any) -> Any:
    _check_seconds("AE.timer", "after", after)
    _check_interval("AE.timer", interval)
    _check_cb("AE.timer", cb)
    return loop.timer(after, interval, cb)


def _ae_signal(sig: Any, cb: Any) -> Any:
    _check_signal("AE.signal", sig)
    _check_cb("AE.signal", cb)
    return loop.signal(sig, cb)


def _ae_child(pid: Any, cb: Any) -> Any:
    _check_pid("AE.child", pid)
    _check_cb("AE.child", cb)
    return loop.child(pid, cb)


def _ae_idle(cb: Any) -> Any:
    _check_cb("AE.idle", cb)
    return loop.idle(cb)


def _ae_postpone(cb: Any) -> None:
    _check_cb("AE.postpone", cb)
    loop.postpone(cb)


def _ae_cv(cb: Any = None) -> Any:
    _check_cb("AE.cv", cb, optional=True)
    return _StrictCondVar(cb, loop)


def _ae_log(level: Any, msg: Any, *args: Any, context: str | None = None) -> None:
    try:
        level_number(level)
    except ValueError:
        raise ValueError("AE.log: unknown level %r" % (level,)) from None
    if not (isinstance(msg, str) or callable(msg)):  # a callable builds it lazily
        raise TypeError("AE.log: msg must be a str or a callable, got %r" % (msg,))
    _log(level, msg, *args, context=context)


# -- AnyEvent --------------------------------------------------------------------

def _anyevent_io(*, fh: Any, poll: Any, cb: Any) -> Any:
    _check_fh("AnyEvent.io", fh)
    _check_poll("AnyEvent.io", poll, ("r", "w"))
    _check_cb("AnyEvent.io", cb)
    return loop.io(fh, poll, cb)


def _anyevent_timer(*, after: Any, cb: Any, interval: Any = 0) -> Any:
    _check_seconds("AnyEvent.timer", "after", after)
    _check_interval("AnyEvent.timer", interval)
    _check_cb("AnyEvent.timer", cb)
    return loop.timer(after, interval, cb)


def _anyevent_signal(*, signal: Any, cb: Any) -> Any:
    _check_signal("AnyEvent.signal", signal)
    _check_cb("AnyEvent.signal", cb)
    return loop.signal(signal, cb)


def _anyevent_child(*, pid: Any, cb: Any) -> Any:
    _check_pid("AnyEvent.child", pid)
    _check_cb("AnyEvent.child", cb)
    return loop.child(pid, cb)


def _anyevent_idle(*, cb: Any) -> Any:
    _check_cb("AnyEvent.idle", cb)
    return loop.idle(cb)


def _anyevent_condvar(*, cb: Any = None) -> Any:
    _check_cb("AnyEvent.condvar", cb, optional=True)
    return _StrictCondVar(cb, loop)


def _anyevent_postpone(cb: Any) -> None:
    _check_cb("AnyEvent.postpone", cb)
    loop.postpone(cb)


def _wrappers() -> list[tuple[type, str, Callable[..., Any]]]:
    ae, ev = anyevent.AE, anyevent.AnyEvent
    return [
        (ae, "io", _ae_io), (ae, "timer", _ae_timer), (ae, "signal", _ae_signal),
        (ae, "child", _ae_child), (ae, "idle", _ae_idle), (ae, "postpone", _ae_postpone),
        (ae, "cv", _ae_cv), (ae, "log", _ae_log),
        (ev, "io", _anyevent_io), (ev, "timer", _anyevent_timer),
        (ev, "signal", _anyevent_signal), (ev, "child", _anyevent_child),
        (ev, "idle", _anyevent_idle), (ev, "condvar", _anyevent_condvar),
        (ev, "postpone", _anyevent_postpone),
    ]


# -- file descriptors closed under a watcher -------------------------------------

#: seconds between two looks at the watched fds (Perl's ``$FD_CHECK_W``)
FD_CHECK_INTERVAL = 4.0
_fd_check: list[Any] = []     # the timer, while strict mode is on


def _start_fd_check() -> None:
    if _saved and not _fd_check:
        _fd_check.append(loop.timer(FD_CHECK_INTERVAL, FD_CHECK_INTERVAL, _check_fds))


def _check_fds() -> None:
    """Log every fd the loop watches that is closed now (Perl checks a tenth of
    them per round; all of them is as cheap here: one ``fstat`` each)."""
    for fd in sorted(loop._fds):    # the loop's own table of watched fds, every model's
        try:
            os.fstat(fd)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                _log("critical", "File descriptor %d registered with AnyEvent but prematurely "
                     "closed, event loop might malfunction.", fd, context="strict")


def enable() -> None:
    """Switch the ``AE`` and ``AnyEvent`` facades to checking wrappers, and start
    looking for watched fds closed behind the loop's back (once the model is fixed).

    Idempotent.  Port of loading ``AnyEvent::Strict``.
    """
    if _saved:
        return
    for facade, name, wrapper in _wrappers():
        _saved[facade, name] = original = facade.__dict__[name]
        wrapper.__doc__ = (original.__func__.__doc__ or "") + "\n\n(strict mode: arguments checked)"
        setattr(facade, name, staticmethod(wrapper))
    post_detect(_start_fd_check)


def disable() -> None:
    """Put the unchecked facade entries back (strict mode off)."""
    for (facade, name), original in _saved.items():
        setattr(facade, name, original)
    _saved.clear()
    _fd_check.clear()


def enabled() -> bool:
    """True while strict mode is on."""
    return bool(_saved)
