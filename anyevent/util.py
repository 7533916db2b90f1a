"""Process and file-descriptor helpers (the port of AnyEvent::Util).

``portable_pipe``, ``portable_socketpair``, ``fh_nonblocking``, ``guard``,
``close_all_fds_except``, ``run_cmd`` and ``fork_call``.  Everything that
waits does so through the reactor (io and child watchers); nothing here
blocks the loop.

The IDN functions (``punycode_encode``, ``punycode_decode``,
``idn_nameprep``, ``idn_to_ascii``, ``idn_to_unicode``) are here as in Perl's
AnyEvent::Util; they live in ``anyevent._idn`` (see there), which the name
resolvers import without importing this module.  ``dotted_quad`` and
``inet_aton`` are the old names Perl keeps "to be removed".

Forked children never run the parent's loop: they first call
:meth:`anyevent.reactor.Loop.after_fork` (so the parent's epoll set and
signal wake-up fd are left alone) and always leave through :func:`os._exit`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import re
import signal as _signal
import socket
import sys
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union, cast

from ._idn import idn_nameprep, idn_to_ascii, idn_to_unicode, punycode_decode, punycode_encode
from .reactor import get_exception_handler, loop, refcounted

if TYPE_CHECKING:
    from io import FileIO

    from typing_extensions import Self

    from ._resolve import AddressesCb
    from .reactor import CondVar

#: A file descriptor or anything with ``fileno()`` (a socket, a file object).
FileDescriptorLike = Union[int, Any]

__all__ = [
    "portable_pipe", "portable_socketpair", "fh_nonblocking", "guard", "Guard",
    "close_all_fds_except", "run_cmd", "fork_call", "fork_error", "MAX_FORKS",
    "punycode_encode", "punycode_decode", "idn_nameprep", "idn_to_ascii", "idn_to_unicode",
    "dotted_quad", "inet_aton",
]

_CHUNK = 65536

#: Watchers of run_cmd and fork_call jobs still in progress.  Perl keeps them
#: alive through self-referencing closures; here this set is the owner, so a
#: job goes on even when the caller drops the condvar it got.
_active: set[Any] = set()


def _hold(watcher: Any) -> Any:
    _active.add(watcher)
    return watcher


def _release(watcher: Any) -> None:
    _active.discard(watcher)
    watcher.cancel()


def _fd(fh: FileDescriptorLike) -> int:
    fd: int = fh if isinstance(fh, int) else fh.fileno()
    return fd


# ---------------------------------------------------------------------------
# pipes, socketpairs, blocking mode, guards, closing fds
# ---------------------------------------------------------------------------

def portable_pipe() -> tuple[FileIO, FileIO]:
    """Return ``(r, w)``: the two ends of a new pipe as unbuffered binary files.

    Port of ``portable_pipe``.  Both ends are ordinary blocking
    :class:`io.FileIO` objects (``r.read(n)``/``w.write(b)``), close-on-exec,
    closed when dropped; use :func:`fh_nonblocking` before watching them.
    Unlike Perl, which returns an empty list, failure raises :class:`OSError`
    (e.g. ``EMFILE``).
    """
    r, w = os.pipe()
    return os.fdopen(r, "rb", buffering=0), os.fdopen(w, "wb", buffering=0)


def portable_socketpair() -> tuple[socket.socket, socket.socket]:
    """Return ``(a, b)``: two connected ``AF_UNIX``/``SOCK_STREAM`` sockets.

    Port of ``portable_socketpair`` (a bidirectional pipe).  Like Perl's
    ``socketpair`` the sockets are blocking and close-on-exec.  Failure
    raises :class:`OSError` instead of returning an empty list.
    """
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def fh_nonblocking(fh: FileDescriptorLike, nonblocking: bool) -> None:
    """Make ``fh`` (an int fd, a socket or any object with ``fileno()``)
    non-blocking when ``nonblocking`` is true, blocking when false.

    Port of ``fh_nonblocking`` (``AnyEvent::fh_unblock``/``fh_block``).  A
    socket object is switched with ``setblocking`` so its own timeout state
    agrees; other flags of the file (``O_APPEND``...) are kept.  Raises
    :class:`OSError` (``EBADF``) for a closed descriptor.
    """
    if isinstance(fh, socket.socket):
        fh.setblocking(not nonblocking)
    else:
        os.set_blocking(_fd(fh), not nonblocking)


class Guard:
    """Runs a callback once when dropped, unless cancelled (see :func:`guard`)."""
    __slots__ = ("_cb",)

    _cb: Callable[[], object] | None

    def __init__(self, cb: Callable[[], object]) -> None:
        refcounted(self)  # a cycle through the guard keeps it, as in Perl
        self._cb = cb

    def cancel(self) -> None:
        """Forget the callback: it will never run (``$guard->cancel``)."""
        self._cb = None

    def _fire(self) -> None:
        cb, self._cb = self._cb, None
        if cb is not None:
            try:
                cb()
            except Exception as exc:
                get_exception_handler()(exc, "guard")

    __del__ = _fire

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._fire()


def guard(cb: Callable[[], object]) -> Guard:
    """Return a :class:`Guard` that calls ``cb()`` when it is garbage collected.

    Port of ``guard { ... }``: ``g = guard(cleanup)`` runs ``cleanup`` when
    the last reference to ``g`` goes (``del g``, scope end), at most once;
    ``g.cancel()`` disarms it.  As a context manager it runs ``cb`` on leaving
    the ``with`` block.  An exception raised by ``cb`` is not propagated: it
    goes to the loop's exception handler (where ``"guard"``), as Perl logs it
    and continues.
    """
    return Guard(cb)


def close_all_fds_except(*fds: int) -> None:
    """Close every file descriptor of this process except the ints in ``fds``.

    Port of ``AnyEvent::Util::close_all_fds_except``; meant for a child just
    before ``exec``.  Uses :func:`os.closerange` (the ``close_range`` system
    call where there is one) over the gaps between the kept descriptors, up
    to ``SC_OPEN_MAX``.  Errors (``EBADF`` for unused numbers) are ignored.
    """
    try:
        top = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        top = 1024
    low = 0
    for high in sorted({int(fd) for fd in fds}) + [top]:
        if low < high:  # CPython 3.11: closerange(0, 0) closes every fd
            os.closerange(low, high)
        low = high + 1


# ---------------------------------------------------------------------------
# pumps between the loop and a child's pipes
# ---------------------------------------------------------------------------

def _pump_out(fd: int, sink: Callable[[bytes | None], object]) -> None:
    """Read ``fd`` (non-blocking) until EOF or error, feeding ``sink(bytes)``;
    then close it and call ``sink(None)``."""
    def readable() -> None:
        try:
            data = os.read(fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            sink(data)
            return
        _release(w)
        os.close(fd)
        sink(None)

    w = _hold(loop.io(fd, 0, readable))


def _pump_in(fd: int, first: bytes | None, source: Callable[[], bytes | None],
             cv: CondVar[Any]) -> None:
    """Write ``first``, then what ``source()`` returns, to ``fd`` (non-blocking)
    until that is ``None``/``b""`` or the reader goes away (``EPIPE``); then
    close ``fd`` and count one job done on ``cv``."""
    cv.begin()
    data = memoryview(first or b"")

    def writable() -> None:
        nonlocal data
        try:
            n = os.write(fd, data) if data else 0
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if n:
            data = data[n:]
            if not data:
                data = memoryview(source() or b"")
            if data:
                return
        _release(w)
        os.close(fd)
        cv.end()

    w = _hold(loop.io(fd, 1, writable))


def _bytes_source(data: bytes | bytearray | memoryview) -> Callable[[], bytes | None]:
    chunks = iter((bytes(data),))
    return lambda: next(chunks, None)


def _buffer_sink(buf: bytearray) -> Callable[[bytes | None], None]:
    def sink(data: bytes | None) -> None:
        if data:
            buf.extend(data)
    return sink


def _counted(sink: Callable[[bytes | None], object], cv: CondVar[Any]
             ) -> Callable[[bytes | None], None]:
    """Wrap ``sink`` so that ``cv`` counts one job until ``sink(None)``."""
    cv.begin()

    def counted(data: bytes | None) -> None:
        try:
            sink(data)
        finally:
            if data is None:
                cv.end()
    return counted


# ---------------------------------------------------------------------------
# run_cmd
# ---------------------------------------------------------------------------

# exit codes a run_cmd child uses when it fails before exec (as Perl's do)
_EXIT_OPEN, _EXIT_DUP, _EXIT_PREPARE, _EXIT_EXEC = 125, 124, 123, 126


def _parse_redirection(key: str) -> tuple[int, bool] | None:
    """``">"``, ``"2>"``, ``"<"``, ``"3<"`` -> ``(fd, is_output)``, else ``None``."""
    if key[-1:] not in ("<", ">") or not (key[:-1] == "" or key[:-1].isdigit()):
        return None
    out = key[-1] == ">"
    if key[:-1]:
        return int(key[:-1]), out
    return (1 if out else 0), out


def _plan_redirection(fd: int, out: bool, target: Any, cv: CondVar[Any],
                      parent_ends: list[int]) -> int | str:
    """Prepare one redirection in the parent.

    Returns the child's source for ``fd``: an int fd, or a ``str`` file name
    the child opens itself.  Pipe ends the parent must close after forking
    go to ``parent_ends``.
    """
    if isinstance(target, (str, os.PathLike)):
        return os.fsdecode(target)
    if isinstance(target, int) or hasattr(target, "fileno"):
        return _fd(target)
    sink: Callable[[bytes | None], object]
    source: Callable[[], bytes | None]
    if out:
        if isinstance(target, bytearray):
            sink = _buffer_sink(target)
        elif callable(target):
            sink = target
        else:
            raise TypeError("run_cmd: %d> wants a file name, file object, fd, "
                            "bytearray or callback, not %r" % (fd, type(target).__name__))
    elif isinstance(target, (bytes, bytearray, memoryview)):
        source = _bytes_source(target)
    elif callable(target):
        source = cast("Callable[[], bytes | None]", target)
    else:
        raise TypeError("run_cmd: %d< wants a file name, file object, fd, "
                        "bytes or callback, not %r" % (fd, type(target).__name__))
    # Perl asks for the first chunk at once.  (source is bound when not out,
    # sink when out: pyright does not pair the two ifs)
    first = None if out else source()  # pyright: ignore[reportPossiblyUnboundVariable]
    r, w = os.pipe()  # both close-on-exec; the child's end is dup2'ed in place
    if out:
        os.set_blocking(r, False)
        _pump_out(r, _counted(sink, cv))  # pyright: ignore[reportPossiblyUnboundVariable]
        parent_ends.append(w)
        return w
    os.set_blocking(w, False)
    _pump_in(w, first, source, cv)  # pyright: ignore[reportPossiblyUnboundVariable]
    parent_ends.append(r)
    return r


def _exec_child(argv: Any, redir: dict[int, tuple[Any, bool]], close_all: bool,
                on_prepare: Callable[[], object] | None) -> None:
    """In the forked child: open files, move fds into place, exec.  Never returns."""
    code = _EXIT_OPEN
    try:
        loop.after_fork()
        for fd, (src, out) in list(redir.items()):
            if isinstance(src, str):
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if out else os.O_RDONLY
                redir[fd] = (os.open(src, flags, 0o666), out)
        code = _EXIT_DUP
        # move every source out of the way of all targets, so dup2 never gets
        # equal numbers (which would leave close-on-exec set)
        for fd, (src, out) in redir.items():
            while src in redir:
                src = os.dup(src)
            redir[fd] = (src, out)
        for fd, (src, _) in redir.items():
            os.dup2(src, fd, inheritable=True)
        if close_all:
            close_all_fds_except(0, 1, 2, *redir)
        else:
            for src in {src for src, _ in redir.values()}:
                os.close(src)
        # Python ignores SIGPIPE and SIGXFSZ; a command expects the defaults
        for name in ("SIGPIPE", "SIGXFSZ"):
            if hasattr(_signal, name):
                _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
        code = _EXIT_PREPARE
        if on_prepare is not None:
            on_prepare()
        code = _EXIT_EXEC
        os.execvp(argv[0], argv)
    finally:
        os._exit(code)


def _spawn_child(argv: list[str | bytes], redir: dict[int, tuple[Any, bool]], close_all: bool) -> int:
    """Start the command with :func:`os.posix_spawnp` instead of forking this
    process (Python 3.12+ warns about forking one that runs threads): the
    same redirections, ``close_all`` and default ``SIGPIPE``/``SIGXFSZ`` as
    :func:`_exec_child`.  Returns the pid; raises :class:`OSError` when a
    file cannot be opened or the program cannot be run.
    """
    above = max(redir) + 1 if redir else 3
    actions: list[tuple[Any, ...]] = []
    moved: list[int] = []
    try:
        for fd, (src, out) in redir.items():
            if isinstance(src, str):
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if out else os.O_RDONLY
                actions.append((os.POSIX_SPAWN_OPEN, fd, src, flags, 0o666))
            else:
                # a close-on-exec copy above every target, so no dup2 gets
                # equal numbers (which would leave close-on-exec set)
                moved.append(fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, above))
                actions.append((os.POSIX_SPAWN_DUP2, moved[-1], fd))
        keep = {0, 1, 2, *redir}
        sources = _open_fds() if close_all else {s for s, _ in redir.values() if isinstance(s, int)}
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in sorted(sources - keep)
                    if _inheritable(fd)]
        sigdef = [getattr(_signal, n) for n in ("SIGPIPE", "SIGXFSZ") if hasattr(_signal, n)]
        return os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions,
                               setsigdef=sigdef)
    finally:
        for fd in moved:
            os.close(fd)


def _open_fds() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:
        return set(range(3, os.sysconf("SC_OPEN_MAX")))


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # not open (the listing's own fd, or a number from the range)
        return False


def run_cmd(cmd: str | Sequence[str | bytes], *, on_prepare: Callable[[], object] | None = None,
            close_all: bool = False, pid: list[int] | Callable[[int], object] | None = None,
            **redirections: Any) -> CondVar[int]:
    """Run an external command; return a :class:`~anyevent.reactor.CondVar`
    that receives the child's raw wait status once the child has exited *and*
    every output pipe has reached EOF and every input has been written.

    Port of ``run_cmd``.  ``cmd`` is a ``str`` run by ``/bin/sh -c`` or a
    sequence of ``str``/``bytes`` given to :func:`os.execvp` (``cmd[0]`` is
    both the program, searched in ``PATH``, and ``argv[0]``).

    Redirections use Perl's keys, written as keyword names through a dict::

        cv = run_cmd(["ls", "-l"], **{"<": "/dev/null", ">": out.append,
                                      "2>": errbuf, "3>": "fd3.log"})
        status = cv.recv()          # os.waitstatus_to_exitcode(status)

    ``">"`` is fd 1, ``"<"`` fd 0, ``"N>"``/``"N<"`` any fd N.  A target is:

    - a ``str`` or path: a file name the child opens (``>``: created and
      truncated, mode 0666 less umask; ``<``: read);
    - a file object with ``fileno()`` or an int fd: its descriptor is used;
    - for ``>``: a ``bytearray`` that output is appended to (Perl's
      ``\\$data``; the same one may serve ``>`` and ``2>``), or a callback
      called with each chunk (``bytes``) and once with ``None`` at EOF or
      read error;
    - for ``<``: ``bytes``/``bytearray`` written to the child, or a callback
      called with no arguments that returns the next chunk, ``None`` or
      ``b""`` meaning EOF (it is first called before ``run_cmd`` returns).
      A child that exits without reading simply ends the writing (``EPIPE``
      is not reported).

    The command is started with :func:`os.posix_spawnp`, without forking
    this process (Python 3.12+ warns about forking one that runs threads);
    only ``on_prepare``, Python code that must run in the child, makes it
    fork.  A command that cannot be spawned (a redirection file does not
    open, the program is missing) is forked after all, so that it fails with
    Perl's exit code below.

    Other keywords: ``on_prepare()`` runs in the child just before exec;
    ``close_all=True`` closes every fd in the child except 0, 1, 2 and the
    redirected ones; ``pid`` (also accepted under Perl's key ``"$$"``) receives
    the child's pid before ``run_cmd`` returns: a ``list`` gets it appended,
    any other callable is called with it.

    A child that cannot get ready reports it through its exit code, as in
    Perl: 125 opening a redirection file failed, 124 dup failed, 123
    ``on_prepare`` raised, 126 exec failed (a ``str`` command that is not
    found gives the shell's 127).  :class:`OSError` from ``fork`` or ``pipe``
    (``EAGAIN``, ``EMFILE``) is raised; unknown keywords raise
    :class:`TypeError`.
    """
    if "$$" in redirections:
        pid = redirections.pop("$$")
    report_pid = pid.append if isinstance(pid, list) else pid
    if report_pid is not None and not callable(report_pid):
        raise TypeError("run_cmd: pid must be a list or a callable")
    argv: list[str | bytes]
    argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise ValueError("run_cmd: empty command")
    cv = loop.condvar()
    redir: dict[int, tuple[Any, bool]]
    parent_ends: list[int]
    redir, parent_ends = {}, []
    try:
        for key, target in redirections.items():
            spec = _parse_redirection(key)
            if spec is None:
                raise TypeError("run_cmd: unknown option %r" % key)
            fd, out = spec
            redir[fd] = (_plan_redirection(fd, out, target, cv, parent_ends), out)
        child = _start_child(argv, redir, close_all, on_prepare)
    finally:
        for fd in parent_ends:
            os.close(fd)
    status: int | None = None

    def exited(_pid: int, st: int) -> None:
        nonlocal status
        status = st
        _release(w)
        cv.end()

    cv.begin(lambda cv: cv.send(status))
    w = _hold(loop.child(child, exited))
    if report_pid is not None:
        report_pid(child)
    return cv


def _start_child(argv: list[str | bytes], redir: dict[int, tuple[Any, bool]], close_all: bool,
                 on_prepare: Callable[[], object] | None) -> int:
    """Spawn the command, or fork when ``on_prepare`` must run in the child.
    A command that cannot be spawned is forked after all, so that it fails
    in the child with Perl's exit code (125 open, 126 exec)."""
    if on_prepare is None and hasattr(os, "posix_spawnp"):
        try:
            return _spawn_child(argv, redir, close_all)
        except OSError:
            pass
    child = os.fork()
    if child == 0:
        _exec_child(argv, redir, close_all, on_prepare)
    return child


# ---------------------------------------------------------------------------
# fork_call
# ---------------------------------------------------------------------------

def _max_forks_from_env() -> int:
    try:
        n = int(os.environ.get("ANYEVENT_MAX_FORKS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else 10


#: Most ``fork_call`` children running at once; more calls wait in a queue.
#: Initialised from ``ANYEVENT_MAX_FORKS`` (default 10); may be changed.
MAX_FORKS = _max_forks_from_env()

_forks = 0
_fork_queue: deque[tuple[Callable[..., Any], Any, Callable[..., object]]] = deque()
_last_error: BaseException | None = None


def fork_error() -> BaseException | None:
    """The error of the ``fork_call`` whose callback is running, else ``None``.

    Perl's ``$@`` (and ``$!``) for ``fork_call``: set before every callback.
    It is the exception the function raised in the child, rebuilt from a
    pickle, with the child's traceback text as its ``__cause__`` (an
    exception that cannot be pickled comes as a :class:`RuntimeError`
    holding its ``repr``); the error unpickling the result; a
    :class:`ChildProcessError` when the child died without sending a result;
    or the :class:`OSError` that kept the child from being forked.
    """
    return _last_error


class _RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a child."""

    def __str__(self) -> str:
        text: str = self.args[0]
        return text


def fork_call(code: Callable[..., Any], *args: Any,
              cb: Callable[..., object] | None = None) -> None:
    """Run ``code(*args)`` in a forked child; call ``cb(*result)`` in the parent.

    Port of ``fork_call { CODE } @args, $cb``: the callback is the last
    positional argument (or ``cb=``).  The child pickles what ``code``
    returns and sends it back over a pipe: a ``tuple`` becomes the callback's
    arguments (``return a, b`` -> ``cb(a, b)``, like a Perl list), any other
    value (``None`` included) its single argument.  If ``code`` raises, the
    callback is called with *no* arguments and :func:`fork_error` returns
    the exception (Perl sets ``$@``).

    At most :data:`MAX_FORKS` children run at once; later calls are queued
    and started, in order, as earlier ones finish.  A job's slot is freed
    only once its child has been reaped, then the next job is started, then
    the callback runs.  ``code`` must not use the event loop (the child
    gets a fresh, empty one) and its result must be picklable.  Returns
    ``None``.

    The child is a :func:`os.fork` of this process, as in Perl.  Python
    3.12+ warns (:class:`DeprecationWarning`) when a process that runs other
    threads forks (e.g. :mod:`anyevent.io` workers after an ``aio_*`` call):
    only the forking thread goes on in the child, and a lock another thread
    held stays locked there.  Fork before starting threads to avoid both.
    """
    if cb is None:
        if not args:
            raise TypeError("fork_call: no callback")
        # (Perl's trailing callback: args becomes a list without it)
        *args, cb = args  # type: ignore[assignment]
    _fork_queue.append((code, args, cast("Callable[..., object]", cb)))
    _fork_schedule()


def _fork_schedule() -> None:
    global _forks
    while _forks < MAX_FORKS and _fork_queue:
        code, args, cb = job = _fork_queue.popleft()
        try:
            pid, r = _spawn(code, args)
        except OSError as exc:
            if _forks and exc.errno in (errno.EAGAIN, errno.ENOMEM):
                _fork_queue.appendleft(job)  # retried when a running job ends
                return
            loop.postpone(cast("Callable[[], object]",
                               lambda cb=cb, exc=exc: _deliver(cb, exc, ())))
            continue
        _forks += 1
        _fork_parent(pid, r, cb)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _spawn(code: Callable[..., Any], args: Any) -> tuple[int, int]:
    """Fork a child running ``code(*args)``; return its pid and the read end."""
    r, w = os.pipe()
    try:
        _flush_std()  # or the child would write the parent's buffer again
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        raise
    if pid == 0:
        os.close(r)
        _fork_child(w, code, args)
    os.close(w)
    return pid, r


def _fork_child(w: int, code: Callable[..., Any], args: Any) -> None:
    """In the forked child: run the job, write the pickled outcome, _exit."""
    try:
        loop.after_fork()
        try:
            payload = pickle.dumps((None, code(*args)), pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            payload = _pickle_error(exc)
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
        _flush_std()
    finally:
        os._exit(0)


def _pickle_error(exc: BaseException) -> bytes:
    """Pickle ``(exc, traceback text)``; an exception that does not survive
    the round trip (custom ``__init__``, unpicklable members) is sent as a
    :class:`RuntimeError` with its ``repr``."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        payload = pickle.dumps((exc, tb), pickle.HIGHEST_PROTOCOL)
        pickle.loads(payload)
        return payload
    except Exception:
        return pickle.dumps((RuntimeError(repr(exc)), tb), pickle.HIGHEST_PROTOCOL)


def _fork_parent(pid: int, r: int, cb: Callable[..., object]) -> None:
    """Collect the child's output and exit; when both are in, finish the job."""
    buf = bytearray()
    status = eof = None

    def sink(data: bytes | None) -> None:
        nonlocal eof
        if data is None:
            eof = True
            finish()
        else:
            buf.extend(data)

    def exited(_pid: int, st: int) -> None:
        nonlocal status
        _release(cw)
        status = st
        finish()

    def finish() -> None:
        global _forks
        if eof is None or status is None:
            return
        _forks -= 1
        error, result = _decode(bytes(buf), status)
        _fork_schedule()
        _deliver(cb, error, result)

    os.set_blocking(r, False)
    _pump_out(r, sink)
    cw = _hold(loop.child(pid, exited))


def _decode(payload: bytes, status: int) -> tuple[BaseException | None, tuple[Any, ...]]:
    """``(error, args)`` from the child's pickled ``(error_or_None, value)``."""
    if not payload:
        return ChildProcessError(
            "fork_call: child exited (wait status %d) without sending a result" % status), ()
    try:
        error, value = pickle.loads(payload)
    except Exception as exc:  # a result whose class cannot be rebuilt here
        return exc, ()
    if error is not None:
        error.__cause__ = _RemoteTraceback("\nchild traceback:\n" + value)
        return error, ()
    return None, (value if isinstance(value, tuple) else (value,))


def _deliver(cb: Callable[..., object], error: BaseException | None,
             result: tuple[Any, ...]) -> None:
    global _last_error
    _last_error = error
    cb(*result)


# ---------------------------------------------------------------------------
# the old names Perl keeps
# ---------------------------------------------------------------------------

_DOTTED_QUAD = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[0-9][0-9]?)"
                          r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[0-9][0-9]?)){3}$")  # Perl's $


def dotted_quad(text: str) -> bool:
    """Whether ``text`` (str) is a plain dotted-quad IPv4 address
    (``"192.0.2.1"``; no octal, hex or short forms; as Perl's ``/...$/``, a
    final newline is allowed).  Returns bool.  Port of
    ``AnyEvent::Util::dotted_quad`` (which Perl marks "to be removed"; prefer
    :func:`anyevent.socket.parse_ipv4`).
    """
    return bool(_DOTTED_QUAD.match(text))


def inet_aton(name: str, cb: AddressesCb) -> None:
    """Forwarder to :func:`anyevent.socket.inet_aton` (``cb(*network_form_addresses)``),
    Perl's ``AnyEvent::Util::inet_aton``."""
    from ._resolve import inet_aton as resolve  # Perl's own forwarder loads the upper module
    return resolve(name, cb)
