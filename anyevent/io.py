"""Asynchronous file I/O (the port of AnyEvent::IO).

The ``aio_*`` functions keep Perl's names and argument order, callback last::

    from anyevent import AE
    from anyevent.io import aio_open, aio_read, O_RDONLY, last_error

    def opened(*res):
        if not res:
            return AE.log("error", "/etc/passwd: %s" % last_error().strerror)
        fh, = res
        aio_read(fh, 4096, lambda *r: print(r[0] if r else last_error()))

    aio_open("/etc/passwd", O_RDONLY, 0, opened)

Calling convention, as in Perl: on success the callback gets the results
(one value); on failure it gets *no arguments*, and :func:`last_error`
returns the :class:`OSError` (``.errno`` is e.g. ``errno.ENOENT``,
``.strerror`` is ``os.strerror(errno)``) -- Perl's ``$!``, read the same way
as :func:`anyevent.socket.last_error`.  Test for failure with ``if not res``
on ``def cb(*res)``, not on the value: a read at end of file delivers ``b""``
and a seek to the start delivers ``0``, both false.

Backends (Perl's ``$AnyEvent::IO::MODEL``): :data:`MODEL` is ``"threads"``
(the default) or ``"sync"``.

- ``"threads"``: each operation runs on a small pool of worker threads
  (:data:`WORKERS`), and its callback runs on the loop's thread, delivered
  through :meth:`anyevent.reactor.Loop.call_soon_threadsafe`, so a slow disk,
  an NFS mount that hangs or a FIFO nobody writes to never stalls the loop.
  The callback always runs after the function returned.  Operations run
  concurrently: as in Perl, several reads or writes at once on one file
  (one file offset) have an undefined order -- wait for each callback.
- ``"sync"`` (also accepted: ``"Perl"``, the name of Perl's pure-Perl
  backend): the operation blocks and the callback is called before the
  function returns, exactly as AnyEvent::IO::Perl does.

The environment variable ``ANYEVENT_IO_MODEL`` (Perl's
``PERL_ANYEVENT_IO_MODEL``) picks the model at import; an unknown value is
logged as a warning and ignored, as in Perl.  Unlike Perl, :data:`MODEL` may
also be assigned at any time and is read by each call.  Operations that have
started finish at a clean interpreter exit (the pool's threads are joined),
but their callbacks need a running loop; an operation that never finishes
(a read from a FIFO nobody opens) therefore delays the exit.

Paths are ``str``, ``bytes`` or path-like; as in Perl they should be absolute
if anything may ``chdir`` while a request runs.  "fh" is what
:func:`aio_open` delivers (a raw, unbuffered :class:`io.FileIO`) or any object
with ``fileno()``, or an int file descriptor.  Errors in the arguments raise
at once when the call can see them (``str`` data, an fh without ``fileno()``);
those that show only when the operation runs (``None`` as a path) raise at
once in the ``"sync"`` model and go to the loop's exception handler in the
``"threads"`` model.  Only :class:`OSError` counts as the operation failing.
"""

from __future__ import annotations

import io as _io
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, TypeVar, Union, cast

from . import reactor
from .util import FileDescriptorLike, _fd

_T_contra = TypeVar("_T_contra", contravariant=True)


class ResultCb(Protocol[_T_contra]):
    """An operation's callback: ``cb(result)`` on success, ``cb()`` on failure
    (the error is in :func:`last_error`)."""

    def __call__(self, result: _T_contra = ..., /) -> object: ...


#: A path, as :mod:`os` takes it.
Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = [
    "aio_load", "aio_open", "aio_close", "aio_seek", "aio_read", "aio_write",
    "aio_truncate", "aio_utime", "aio_chown", "aio_chmod", "aio_stat", "aio_lstat",
    "aio_link", "aio_symlink", "aio_readlink", "aio_rename", "aio_unlink",
    "aio_mkdir", "aio_rmdir", "aio_readdir",
    "O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND",
    "MODEL", "WORKERS", "last_error",
]

_log = logging.getLogger("anyevent")

# Perl's :flags tag: the open flags, so that nobody needs to import os for them.
O_RDONLY = os.O_RDONLY
O_WRONLY = os.O_WRONLY
O_RDWR = os.O_RDWR
O_CREAT = os.O_CREAT
O_EXCL = os.O_EXCL
O_TRUNC = os.O_TRUNC
O_APPEND = os.O_APPEND

#: Perl's ``@AnyEvent::IO::FLAGS`` and ``@AIO_REQ`` (the ``:flags`` and ``:aio`` tags).
FLAGS = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND")
AIO_REQ = tuple(name for name in __all__ if name.startswith("aio_"))

#: Worker threads of the ``"threads"`` model (read when the pool is first
#: used, and again in a forked child).
WORKERS = 4

_SYNC_NAMES = ("sync", "Perl")
_MODELS = ("threads",) + _SYNC_NAMES


def _initial_model() -> str:
    wanted = os.environ.get("ANYEVENT_IO_MODEL")
    if not wanted or wanted in _MODELS:
        return wanted or "threads"
    _log.warning("anyevent.io: unknown ANYEVENT_IO_MODEL %r (known: %s), using 'threads'",
                 wanted, ", ".join(_MODELS))
    return "threads"


#: The backend in use, ``"threads"`` or ``"sync"`` (Perl's ``$AnyEvent::IO::MODEL``).
MODEL = _initial_model()

_last_error: OSError | None = None


def last_error() -> OSError | None:
    """The :class:`OSError` of the last failed operation (Perl's ``$!``), or None.

    Set just before a failing operation's callback is called with no
    arguments, on the loop's thread; not cleared by successes.  ``.errno``
    is the errno value (``errno.ENOENT``, ``errno.EEXIST``, ...),
    ``.strerror`` its text.
    """
    return _last_error


# -- running an operation -------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The worker pool, made on first use and again in a forked child."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="anyevent-io")
            _pool_pid = os.getpid()
        return cast(ThreadPoolExecutor, _pool)  # made above for this process


def _attempt(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, OSError | None]:
    """Run ``fn(*args)``: ``(result, None)`` or ``(None, oserror)``."""
    try:
        return fn(*args), None
    except OSError as err:
        return None, err


def _deliver(cb: ResultCb[Any], result: Any, err: OSError | None) -> None:
    global _last_error
    if err is None:
        cb(result)
    else:
        _last_error = err
        cb()


def _in_worker(lp: Any, cb: ResultCb[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        outcome = _attempt(fn, args)
    except Exception as exc:  # a bad argument: report it on the loop thread
        lp.call_soon_threadsafe(_raise, exc)
        return
    lp.call_soon_threadsafe(_deliver, cb, *outcome)


def _raise(exc: BaseException) -> None:
    raise exc


def _submit(cb: ResultCb[Any], fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in the current :data:`MODEL`; ``cb(result)`` or ``cb()``."""
    if MODEL in _SYNC_NAMES:
        _deliver(cb, *_attempt(fn, args))
    elif MODEL == "threads":
        lp = reactor.loop
        lp.prepare_threadsafe()
        _executor().submit(_in_worker, lp, cb, fn, args)
    else:
        raise ValueError("anyevent.io.MODEL must be one of %s, not %r" % (_MODELS, MODEL))


def _succeeds(fn: Callable[..., object], *args: Any) -> bool:
    """Perl's ``op or ()``: ``fn``'s result does not matter, success is True."""
    fn(*args)
    return True


def _fd_or_path(fh_or_path: FileDescriptorLike | Path) -> int | Path:
    if isinstance(fh_or_path, (str, bytes, os.PathLike)):
        return fh_or_path
    return _fd(fh_or_path)


# -- the operations -------------------------------------------------------------

def _load(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as fh:
        return fh.readall()


def aio_load(path: Path, cb: ResultCb[bytes]) -> None:
    """Read the whole file at ``path``; ``cb(data)`` with its ``bytes``.

    Port of ``aio_load``.  Reads until end of file, so a file that changes
    size while it is read (or a ``/proc`` file, whose size is 0) delivers
    what was read; Perl's pure-Perl backend reads ``-s`` bytes once and fails
    on a short read.  Errors: ``ENOENT``, ``EACCES``, ``EISDIR``, ...
    """
    _submit(cb, _load, path)


def _open(path: Path, flags: int, mode: int) -> _io.FileIO:
    fd = os.open(path, flags, mode)
    access = flags & (O_RDONLY | O_WRONLY | O_RDWR)
    try:
        return _io.FileIO(fd, {O_WRONLY: "w", O_RDWR: "r+"}.get(access, "r"))
    except OSError:  # EISDIR: a file object cannot hold a directory
        os.close(fd)
        raise


def aio_open(path: Path, flags: int, mode: int, cb: ResultCb[_io.FileIO]) -> None:
    """Open ``path`` like Perl's ``sysopen``; ``cb(fh)`` with a raw :class:`io.FileIO`.

    ``flags`` are the ``O_*`` constants of this module ORed together,
    ``mode`` the permission bits for a created file (e.g. ``0o666``, reduced
    by the umask; ``0`` when not creating).  The file object is unbuffered,
    closes its fd when collected and is not inherited by child processes.
    Port of ``aio_open``.  Errors: ``ENOENT``, ``EEXIST`` (``O_CREAT |
    O_EXCL``), ``EACCES``, ``EISDIR`` (also for a directory opened read-only,
    which Perl's ``sysopen`` allows), ...
    """
    _submit(cb, _open, path, flags, mode)


def _close(fh: FileDescriptorLike) -> bool:
    if isinstance(fh, int):
        os.close(fh)
    else:
        fh.close()
    return True


def aio_close(fh: FileDescriptorLike, cb: ResultCb[bool]) -> None:
    """Close ``fh`` (a file object or an int fd); ``cb(True)``.

    Port of ``aio_close`` (close can block, e.g. on NFS).  Errors: ``EBADF``,
    ``EIO``, ...
    """
    _submit(cb, _close, fh)


def aio_seek(fh: FileDescriptorLike, offset: int, whence: int, cb: ResultCb[int]) -> None:
    """Move ``fh``'s file offset like Perl's ``sysseek``; ``cb(new_offset)``.

    ``offset`` in bytes; ``whence`` 0 from the start, 1 from the current
    position, 2 from the end (``os.SEEK_SET``/``SEEK_CUR``/``SEEK_END``).
    The new absolute offset may be ``0``.  Port of ``aio_seek``.  Errors:
    ``EINVAL`` (negative result), ``ESPIPE`` (a pipe), ``EBADF``.
    """
    _submit(cb, os.lseek, _fd(fh), offset, whence)


def aio_read(fh: FileDescriptorLike, length: int, cb: ResultCb[bytes]) -> None:
    """Read up to ``length`` bytes at ``fh``'s offset, like ``sysread``; ``cb(data)``.

    ``data`` is ``bytes``: shorter than ``length`` when fewer were available,
    ``b""`` at end of file.  Port of ``aio_read``.  Errors: ``EBADF`` (not
    open for reading), ``EISDIR``, ``EIO``, ...
    """
    _submit(cb, os.read, _fd(fh), length)


def aio_write(fh: FileDescriptorLike, data: bytes | bytearray | memoryview,
              cb: ResultCb[int]) -> None:
    """Write ``data`` (bytes-like) at ``fh``'s offset, like ``syswrite``; ``cb(n)``.

    ``n`` is the number of bytes written, possibly fewer than ``len(data)``.
    A ``str`` is a :class:`TypeError` (encode it first).  Port of
    ``aio_write``.  Errors: ``EBADF`` (not open for writing), ``ENOSPC``,
    ``EFBIG``, ``EIO``, ...
    """
    if isinstance(data, str):
        raise TypeError("aio_write: data must be bytes-like, not str (encode it first)")
    _submit(cb, os.write, _fd(fh), data)


def aio_truncate(fh_or_path: FileDescriptorLike | Path, new_length: int,
                 cb: ResultCb[bool]) -> None:
    """Set the size of a file (path or ``fh``) to ``new_length`` bytes; ``cb(True)``.

    Port of ``aio_truncate``.  Errors: ``ENOENT``, ``EACCES``, ``EINVAL``
    (negative length, or ``fh`` not open for writing), ``EISDIR``, ...
    """
    _submit(cb, _succeeds, os.truncate, _fd_or_path(fh_or_path), new_length)


def _utime(target: int | Path, atime: float | None, mtime: float | None) -> bool:
    if atime is None and mtime is None:
        os.utime(target)
    else:  # as in Perl, a lone undef counts as 0
        os.utime(target, (atime or 0, mtime or 0))
    return True


def aio_utime(fh_or_path: FileDescriptorLike | Path, atime: float | None, mtime: float | None,
              cb: ResultCb[bool]) -> None:
    """Set access and modification times (seconds since the epoch, floats allowed); ``cb(True)``.

    Both ``None``: the current time.  Port of ``aio_utime``.  Errors:
    ``ENOENT``, ``EPERM``/``EACCES`` (not the owner), ...
    """
    _submit(cb, _utime, _fd_or_path(fh_or_path), atime, mtime)


def aio_chown(fh_or_path: FileDescriptorLike | Path, uid: int | None, gid: int | None,
              cb: ResultCb[bool]) -> None:
    """Change owner ``uid`` and group ``gid`` (ints; ``None`` leaves one as is); ``cb(True)``.

    Port of ``aio_chown`` (Perl's ``undef`` is ``None`` here, not ``-1``).
    Errors: ``EPERM``, ``ENOENT``, ...
    """
    uid = -1 if uid is None else uid
    gid = -1 if gid is None else gid
    _submit(cb, _succeeds, os.chown, _fd_or_path(fh_or_path), uid, gid)


def aio_chmod(fh_or_path: FileDescriptorLike | Path, perms: int, cb: ResultCb[bool]) -> None:
    """Change the permission bits to ``perms`` (e.g. ``0o644``); ``cb(True)``.

    Port of ``aio_chmod``.  Errors: ``EPERM``, ``ENOENT``, ...
    """
    _submit(cb, _succeeds, os.chmod, _fd_or_path(fh_or_path), perms)


def aio_stat(fh_or_path: FileDescriptorLike | Path, cb: ResultCb[os.stat_result]) -> None:
    """``stat`` a path or ``fh``; ``cb(st)`` with the :class:`os.stat_result`.

    Perl's callback gets a true value and reads the result from the ``_``
    file handle (``-s _``); here the result is the argument (``st.st_size``).
    Port of ``aio_stat``.  Errors: ``ENOENT``, ``EACCES``, ``ENOTDIR``, ...
    """
    _submit(cb, os.stat, _fd_or_path(fh_or_path))


def aio_lstat(path: Path, cb: ResultCb[os.stat_result]) -> None:
    """Like :func:`aio_stat`, but a symbolic link is described itself.

    Port of ``aio_lstat``.  Errors: ``ENOENT``, ``EACCES``, ``ENOTDIR``, ...
    """
    _submit(cb, os.lstat, path)


def aio_link(oldpath: Path, newpath: Path, cb: ResultCb[bool]) -> None:
    """Make the hard link ``newpath`` to ``oldpath``; ``cb(True)``.

    Port of ``aio_link``.  Errors: ``EEXIST``, ``ENOENT``, ``EXDEV``, ``EPERM``, ...
    """
    _submit(cb, _succeeds, os.link, oldpath, newpath)


def aio_symlink(oldpath: Path, newpath: Path, cb: ResultCb[bool]) -> None:
    """Make the symbolic link ``newpath`` containing ``oldpath``; ``cb(True)``.

    Port of ``aio_symlink``.  Errors: ``EEXIST``, ``ENOENT``, ``EACCES``, ...
    """
    _submit(cb, _succeeds, os.symlink, oldpath, newpath)


def aio_readlink(path: Path, cb: ResultCb[Any]) -> None:
    """Read the symbolic link ``path``; ``cb(target)`` (``str``, ``bytes`` for a bytes path).

    Port of ``aio_readlink``.  Errors: ``EINVAL`` (not a link), ``ENOENT``, ...
    """
    _submit(cb, os.readlink, path)


def aio_rename(oldpath: Path, newpath: Path, cb: ResultCb[bool]) -> None:
    """Rename ``oldpath`` to ``newpath`` (replacing it atomically); ``cb(True)``.

    Port of ``aio_rename``.  Errors: ``ENOENT``, ``EXDEV``, ``EISDIR``,
    ``ENOTEMPTY``, ...
    """
    _submit(cb, _succeeds, os.rename, oldpath, newpath)


def aio_unlink(path: Path, cb: ResultCb[bool]) -> None:
    """Remove the file ``path``; ``cb(True)``.

    Port of ``aio_unlink``.  Errors: ``ENOENT``, ``EISDIR``, ``EACCES``, ...
    """
    _submit(cb, _succeeds, os.unlink, path)


def aio_mkdir(path: Path, perms: int, cb: ResultCb[bool]) -> None:
    """Create the directory ``path`` with ``perms`` (e.g. ``0o777``, less the umask); ``cb(True)``.

    Port of ``aio_mkdir``.  Errors: ``EEXIST``, ``ENOENT`` (no parent), ``EACCES``, ...
    """
    _submit(cb, _succeeds, os.mkdir, path, perms)


def aio_rmdir(path: Path, cb: ResultCb[bool]) -> None:
    """Remove the empty directory ``path``; ``cb(True)``.

    Port of ``aio_rmdir``.  Errors: ``ENOTEMPTY``, ``ENOENT``, ``ENOTDIR``, ...
    """
    _submit(cb, _succeeds, os.rmdir, path)


def aio_readdir(path: Path, cb: ResultCb[list[Any]]) -> None:
    """List the directory ``path``; ``cb(names)`` with a ``list`` of names.

    Names have no path prefix and exclude ``.`` and ``..``; their order is
    undefined.  Perl passes an array reference, here a list.  Port of
    ``aio_readdir``.  Errors: ``ENOENT``, ``ENOTDIR``, ``EACCES``, ...
    """
    _submit(cb, os.listdir, path)
