"""The stream core of :mod:`anyevent.handle`: the :class:`Handle` itself.

Its queues, the read path (socket -> read buffer -> the readers in the
queue) and the write path (write types -> write buffer -> socket), the
timeouts, the TLS pump, destruction and lingering, the options, and the
read/write type registries.  The readers the core makes and runs on its own
hot path live here too: ``line`` (every spelling of an end of line),
``chunk``, ``regex`` and the CBOR reader, which with the compiled core are C
types reaching the handle's C fields (``_stream.pxd``).  The other built-in
types are ``anyevent.handle._types``; their wire formats
``anyevent.handle._wire``.  This module is compiled by ``setup.py`` when
it can be (``anyevent._core`` chooses at import).
"""

from __future__ import annotations

import difflib
import errno as _errno
import functools
import importlib
import json as _json
import os
import re
import socket
import sys
import warnings
import weakref
from collections import deque
from functools import partial
from types import MappingProxyType, MethodType
from typing import (TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, TypedDict, Union,
                    overload)

import cbor2

from .. import reactor as _reactor

try:
    from .. import _speedups  # the compiled core's C twins (setup.py)
except ImportError:  # pure Python
    _speedups = None  # type: ignore[assignment]
from .._sockaddr import _sockaddr_text
from ._wire import Bytes, _CborScan, _take, _take_fast

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from OpenSSL.SSL import Connection

    from ..tls import TLS

#: Default ceiling for the adaptive read size (bytes).
MAX_READ_SIZE = 131072

_loop = _reactor.loop

# ---------------------------------------------------------------------------
# Callback shapes (for type checkers; nothing here runs on the hot path)
# ---------------------------------------------------------------------------


class SupportsFileno(Protocol):
    """Anything with ``fileno()``: a socket, a pipe or tty file object."""

    def fileno(self) -> int: ...


#: What ``Handle(fh=...)`` accepts: a socket, a file object or an int fd.
Fh = Union[int, SupportsFileno]
#: ``cb(hdl)``: on_read, on_eof, on_drain, on_timeout, on_stoptls...
HandleCb = Callable[["Handle"], object]
#: ``on_error(hdl, fatal, message)``.
ErrorCb = Callable[["Handle", bool, str], object]
#: ``on_starttls(hdl, success, message)``.
StartTlsCb = Callable[["Handle", bool, str], object]
#: ``on_connect(hdl, host, port, retry)``.
ConnectCb = Callable[["Handle", str, int, Callable[[], None]], object]
#: ``on_connect_error(hdl, message)``.
ConnectErrorCb = Callable[["Handle", str], object]
#: ``on_prepare(hdl) -> connect timeout in seconds`` (falsy: the kernel's).
PrepareCb = Callable[["Handle"], Union[float, None]]
#: A reader ``reader(hdl) -> done``: consumes from ``hdl.rbuf``, true once done.
Reader = Callable[["Handle"], object]
#: ``cb(hdl, data)``: chunk, regex, netstring, packstring.
DataCb = Callable[["Handle", bytes], object]
#: The callback fields of the core: it calls them with itself, which type
#: checkers know as a _HandleCore; the setters take the public shapes above.
_SelfCb = Callable[[Any], object]
_SelfCb3 = Callable[[Any, bool, str], object]
#: ``cb(hdl, line, eol)``: the line read type.
LineCb = Callable[["Handle", bytes, bytes], object]
#: ``cb(hdl, value)``: json, cbor, storable.
ValueCb = Callable[["Handle", Any], object]
#: A bytes regex, compiled or not (Perl's ``qr//``).
BytesRegex = Union[bytes, "re.Pattern[bytes]"]
#: ``Handle(tls=...)``, ``starttls(tls)``: a mode or a ready connection.
TlsMode = Union[Literal["connect", "accept"], "Connection"]
#: ``Handle(tls_ctx=...)``: a context or a mapping of its options.
TlsCtx = Union["TLS", Mapping[str, Any]]


class TlsDetectCb(Protocol):
    """``cb(hdl, "accept", major, minor)`` for a TLS/SSL hello, ``cb(hdl, None)`` otherwise."""

    def __call__(self, hdl: Handle, kind: str | None, /, *version: int) -> object: ...


class HandleOptions(TypedDict, total=False):
    """The keyword options of :class:`Handle` (a type checker reports a misspelled one);
    ``None`` for a callback, ``tls``, ``tls_ctx`` or ``peername`` is the same as not giving it."""

    connect: tuple[str, int | str]
    on_prepare: PrepareCb | None
    on_connect: ConnectCb | None
    on_connect_error: ConnectErrorCb | None
    on_error: ErrorCb | None
    on_read: HandleCb | None
    on_eof: HandleCb | None
    on_drain: HandleCb | None
    timeout: float
    rtimeout: float
    wtimeout: float
    on_timeout: HandleCb | None
    on_rtimeout: HandleCb | None
    on_wtimeout: HandleCb | None
    rbuf_max: int | None
    wbuf_max: int | None
    autocork: bool
    no_delay: bool
    keepalive: bool
    oobinline: bool
    read_size: int
    max_read_size: int
    low_water_mark: int
    linger: float | None
    close_fh: bool
    peername: str | None
    tls: TlsMode | None
    tls_ctx: TlsCtx | None
    on_starttls: StartTlsCb | None
    on_stoptls: HandleCb | None
    json: Any
    cbor: Any
    storable_trusted: bool

# Handle._drain_state: on_drain not running / running / to be called again
_DRAIN_IDLE, _DRAIN_RUNNING, _DRAIN_AGAIN = 0, 1, 2
# Handle._failing: on_error reports a fatal error; its writes still go out as
# far as they can (errors from them are not reported again)
_FAILING = 1
# Handle._tls_state, the one state of the handle's TLS session (asyncio's
# sslproto keeps one too): none (no TLS: ``tls`` is None), handshake (under
# way: plaintext waits in _tls_wbuf), open (records flow), failed (the session
# failed and is gone: what on_error pushes then is dropped, as plaintext must
# not follow on a TLS stream)
_TLS_NONE, _TLS_HANDSHAKE, _TLS_OPEN, _TLS_FAILED = 0, 1, 2, 3
_EAGAIN = (_errno.EAGAIN, _errno.EWOULDBLOCK, _errno.EINTR)


# ---------------------------------------------------------------------------
# Type registries
# ---------------------------------------------------------------------------

_READ_TYPES: dict[str, Callable[..., Reader]] = {}
_WRITE_TYPES: dict[str, Callable[..., Bytes]] = {}


def register_read_type(name: str, factory: Callable[..., Reader]) -> None:
    """Register read type ``name``: ``factory(hdl, cb, *args) -> reader``.

    The reader is called as ``reader(hdl)`` whenever data may be available
    and returns true once it has consumed its message from ``hdl.rbuf`` and
    called ``cb``.  Port of ``AnyEvent::Handle::register_read_type``.
    """
    _READ_TYPES[name] = factory


def register_write_type(name: str, fn: Callable[..., Bytes]) -> None:
    """Register write type ``name``: ``fn(hdl, *args) -> bytes`` to append to the
    write buffer.  Port of ``AnyEvent::Handle::register_write_type``.
    """
    _WRITE_TYPES[name] = fn


def _load_type(registry: dict[str, Any], name: str, funcname: str) -> Any:
    fn = registry.get(name)
    if fn is not None:
        return fn
    path = name  # a module name, dotted or not, as Perl loads a package
    while path:
        try:
            mod = importlib.import_module(path)
        except ImportError:
            mod = None
        fn = getattr(mod, funcname, None)
        if fn is not None:
            registry[name] = fn
            return fn
        path = path.rpartition(".")[0]
    raise ValueError("unsupported/unloadable type %r" % (name,))


# ---------------------------------------------------------------------------
# The handle
# ---------------------------------------------------------------------------

_WEAK_CALLERS: dict[tuple[type, str], Any] = {}


def _weak_method(obj: object, name: str) -> Callable[[], None]:
    """A callable running ``obj.name()`` while ``obj`` is alive (Perl's weaken).

    It is a method bound to a weak reference to ``obj``: one small object per
    watcher, as every handle has a watcher or two.
    """
    cls = type(obj)
    caller = _WEAK_CALLERS.get((cls, name))  # pyright: ignore[reportAssignmentType]
    if caller is None:
        func = getattr(cls, name)

        def caller(ref: Callable[[], Any]) -> None:
            self = ref()
            if self is not None:
                func(self)
        caller.__wrapped__ = func   # type: ignore[attr-defined]  # (for anyevent.debug.cb2str)
        _WEAK_CALLERS[(cls, name)] = caller
    return MethodType(caller, weakref.ref(obj))


# A handle reads with ``_recv(fh, buf, size) -> count``: up to ``size`` bytes
# onto the end of the bytearray ``buf`` (0 at end of stream), and writes with
# ``_send(fh, data) -> count``.  Plain sockets use the compiled core's
# _speedups when it is there (the same system calls without the socket
# object's method layer), or the functions below.

def _scratch_view(size: int) -> memoryview:
    """The buffer reads land in before they are appended (one per process: no
    allocation per read, and no per-handle memory)."""
    global _scratch
    if len(_scratch) < size:
        _scratch = memoryview(bytearray(size))
    return _scratch


def _sock_recv(fh: Any, buf: bytearray, size: int) -> int:
    view = _scratch_view(size)
    n: int = fh.recv_into(view, size)
    buf += view[:n]
    return n


def _fd_recv(fh: Any, buf: bytearray, size: int) -> int:
    view = _scratch_view(size)
    n = os.readv(fh if fh.__class__ is int else fh.fileno(), (view[:size],))
    buf += view[:n]
    return n


def _fd_send(fh: Any, data: Any) -> int:
    return os.write(fh if fh.__class__ is int else fh.fileno(), data)


def _socket_io(cls: type[socket.socket]) -> tuple[Callable[[Any, bytearray, int], int],
                                                  Callable[[Any, Any], int]]:
    """``(_recv, _send)`` for a socket of class ``cls`` (a subclass keeps its
    own methods)."""
    if cls is socket.socket and _speedups is not None:
        return _speedups.recv_append, _speedups.send
    return _sock_recv, cls.send


#: Added to ``Handle._rin`` when rbuf is replaced: every waiting scan starts over.
_RESCAN = 1 << 48

#: A read dispatch writes out what it held once this much has gathered (bytes).
_HOLD_MAX = 65536

#: The handles holding writes (at most one per nested read dispatch).
_holders: list[_HandleCore] = []


def _release_all_held() -> None:
    """Write out what every dispatching handle holds: the loop is about to
    run nested (a blocking ``cv.recv()``), and Perl had sent it already."""
    for hdl in _holders[:]:
        hdl._release_held()


_reactor._before_block.append(_release_all_held)

_scratch = memoryview(bytearray(MAX_READ_SIZE))
#: What a TLS handle reads, on its way to the TLS engine.
_tls_in = bytearray()


#: The options a handle made from an fh still reads after construction; it
#: keeps only these (most handles none), which saves memory per handle.
_LATE_OPTIONS = ("on_timeout", "on_rtimeout", "on_wtimeout")
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def _late_options(opts: Mapping[str, Any]) -> Mapping[str, Any]:
    late = {k: opts[k] for k in _LATE_OPTIONS if k in opts}
    return late or _NO_OPTIONS


#: Options kept in the instance dict only when given: (option, attribute).
_DICT_OPTIONS = (
    ("peername", "peername"), ("tls_ctx", "tls_ctx"), ("autocork", "_autocork"),
    ("low_water_mark", "_low_water_mark"), ("linger", "_linger"), ("close_fh", "_close_fh"),
    ("on_starttls", "_on_starttls"), ("on_stoptls", "_on_stoptls"),
    ("json", "_json"), ("cbor", "_cbor"), ("storable_trusted", "_storable_trusted"),
)

#: Perl hash keys of the callbacks ``hdl[key]`` reads: key -> attribute.
_CALLBACK_KEYS = {
    "on_error": "_on_error", "on_read": "_on_read", "on_eof": "_on_eof",
    "on_drain": "_on_drain", "on_starttls": "_on_starttls", "on_stoptls": "_on_stoptls",
}
_DATA_KEYS = ("fh", "rbuf", "wbuf", "tls", "tls_ctx", "peername")

_OPTIONS = frozenset("""
    fh connect on_prepare on_connect on_connect_error on_error on_read on_eof
    on_drain timeout rtimeout wtimeout on_timeout on_rtimeout on_wtimeout
    rbuf_max wbuf_max autocork no_delay keepalive oobinline read_size
    max_read_size low_water_mark linger close_fh peername tls tls_ctx on_starttls
    on_stoptls json cbor storable_trusted
""".split())


class _HandleCore:
    """Everything a :class:`Handle` is and does, in a base class of its own.

    setup.py compiles this module with Cython, and ``_stream.pxd`` makes this
    class a C type there: its slots become C fields and its methods read them
    without a dictionary lookup.  :class:`Handle` adds what a C type cannot
    have (an instance dict, weak references, turning into a destroyed handle).
    Interpreted, it is a plain class and nothing differs.
    """

    # What every handle uses lives in slots (C fields when compiled: keep
    # _stream.pxd in step); what few handles use (TLS, connect, coders,
    # non-default settings) lives in the instance dict, which Python creates
    # only when one of them is set: an idle plain handle stays small.  The
    # class attributes below are their defaults.  (Type checkers are not
    # shown the slots: they would not know that Handle adds the dict.)
    if not TYPE_CHECKING:
        __slots__ = (
            "_fh", "_rbuf", "_rin", "_wbuf", "_hold", "_held", "_held_size", "tls",
            "_recv", "_send", "_queue",
            "_rw", "_ww", "_eof", "_skip_drain", "_on_error", "_on_read",
            "_on_eof", "_on_drain", "_rbuf_max", "_wbuf_max", "read_size",
            "max_read_size", "_timers", "_opts", "_autocork", "_low_water_mark",
            "_drain_state", "_failing", "_tls_rbuf",
        )
    _fh: Any
    _wbuf: bytearray
    _hold: bool
    _held: list[bytes] | None
    _held_size: int
    tls: Any  # an OpenSSL.SSL.Connection while TLS is on
    read_size: int
    max_read_size: int
    _rbuf: bytearray
    _rin: int
    _recv: Callable[[Any, Any, int], int]
    _send: Callable[[Any, Any], int]
    _queue: Any  # () until the first push_read, then a deque of readers
    _rw: Any
    _ww: Any
    _eof: bool
    _skip_drain: bool
    _on_error: _SelfCb3 | None
    _on_read: _SelfCb | None
    _on_eof: _SelfCb | None
    _on_drain: _SelfCb | None
    _rbuf_max: int | None
    _wbuf_max: int | None
    _timers: dict[str, list[Any]] | None
    _opts: Any  # the options given: a dict, or a read-only mapping of the late ones
    _autocork: bool
    _low_water_mark: int
    _drain_state: int  # _DRAIN_IDLE, _DRAIN_RUNNING or _DRAIN_AGAIN
    _failing: int  # _FAILING while on_error reports a fatal error
    _tls_rbuf: Any  # a bytearray with TLS: what is decrypted while rbuf is being drained
    # Class-level defaults (the instance dict overrides them), typed in comments:
    # the compiled class takes an annotation at class level for a C field
    # the last error's (in the dict: errno is a C macro's name)
    errno = 0  # type: int
    peername = None  # type: str | None
    # a TLS context (or the dict given) once TLS starts
    tls_ctx = None  # type: Any
    _linger = 3600  # type: float | None
    _close_fh = True
    _connect = None  # type: Any
    _tls_wbuf = None  # type: Any
    _tls_state = _TLS_NONE
    _on_starttls = None  # type: _SelfCb3 | None
    _on_stoptls = None  # type: _SelfCb | None
    _json = None  # type: Any
    _cbor = None  # type: Any
    _storable_trusted = False

    def __init__(self, fh: Fh | None = None, **opts: Unpack[HandleOptions]) -> None:
        _reactor.refcounted(self)  # a cycle through the handle keeps it, as in Perl
        unknown = set(opts) - _OPTIONS
        if unknown:
            for key in sorted(unknown):
                if hasattr(Handle, key):
                    raise TypeError("Handle: option %r clashes with a method" % key)
                if os.environ.get("ANYEVENT_STRICT", "") not in ("", "0"):
                    _warn_if_misspelt(key)
                setattr(self, key, opts.pop(key))  # type: ignore[misc]  # an unknown key
        self._fh = None
        self._rbuf = bytearray()
        # bytes this handle appended to rbuf (plus _RESCAN when rbuf is
        # replaced): ``_rin - len(rbuf)`` is the stream offset of rbuf's first
        # byte, which changes whenever anything takes bytes off its front
        # (a reader, or user code through hdl.rbuf).  A waiting reader resumes
        # its scan only while that offset is the one it scanned at.
        self._rin = 0
        self._wbuf = bytearray()
        self._hold = False  # True while this handle's own read dispatch runs
        self._held = None  # what push_write held meanwhile: a list of bytes
        self.tls = None
        self._autocork = False
        self._low_water_mark = 0
        self._drain_state = _DRAIN_IDLE
        self._failing = 0
        self._tls_rbuf = None
        for key, attr in _DICT_OPTIONS:
            value = opts.get(key)
            if value is not None or (key == "linger" and key in opts):
                setattr(self, attr, value)
        self._queue = ()  # a deque from the first push_read on (saves memory)
        self._rw = self._ww = None
        self._eof = False
        self._skip_drain = False
        self._on_error = opts.get("on_error")
        self._on_read = opts.get("on_read")
        self._on_eof = opts.get("on_eof")
        self._on_drain = None
        self._rbuf_max = opts.get("rbuf_max")
        self._wbuf_max = opts.get("wbuf_max")
        self.read_size = opts.get("read_size") or 2048
        self.max_read_size = max(opts.get("max_read_size") or MAX_READ_SIZE, self.read_size)
        self._timers = None
        self._opts = opts
        if fh is not None:
            self._fh = fh
            try:
                self._start()
            except BaseException:
                self._fh = None  # not taken over: the caller keeps (and closes) its fh
                raise
            self._opts = _late_options(opts)
        elif opts.get("connect"):
            self._start_connect(opts)
        else:
            raise TypeError("Handle: either an existing fh or the connect parameter must be given")

    # -- setup ----------------------------------------------------------------

    def _start(self) -> None:
        fh = self._fh
        opts = self._opts
        if isinstance(fh, socket.socket):
            if fh.type != socket.SOCK_STREAM:
                raise ValueError("Handle: only stream sockets are supported")
            fh.setblocking(False)
            self._recv, self._send = _socket_io(type(fh))
        else:
            os.set_blocking(fh if isinstance(fh, int) else fh.fileno(), False)
            self._recv = _fd_recv
            self._send = _fd_send
        for name in ("timeout", "rtimeout", "wtimeout"):
            if opts.get(name):
                self._set_timeout(name, opts[name])
        if opts.get("no_delay"):
            self.no_delay(True)
        if opts.get("keepalive"):
            self.keepalive(True)
        self.oobinline(opts.get("oobinline", True))
        if opts.get("tls"):
            self.starttls(opts["tls"], self.tls_ctx)
            if self._fh is None:
                return
        if opts.get("on_drain"):
            self.on_drain(opts["on_drain"])
        if self._fh is not None:
            if self._on_read is not None or self._queue:
                self.start_read()
            self._drain_wbuf()

    def _start_connect(self, opts: Mapping[str, Any]) -> None:
        from ..socket import tcp_connect
        host, service = opts["connect"]
        if self.peername is None:
            self.peername = host
        self._skip_drain = True
        ref = weakref.ref(self)

        def connected(fh: socket.socket | None = None, host: str | None = None, port: Any = None,
                      retry: Callable[[], None] | None = None, *rest: object) -> None:
            self = ref()
            if self is None:
                return
            self._connect = None
            if fh is None:
                err = _last_connect_errno()
                on_connect_error = opts.get("on_connect_error")
                if on_connect_error is not None:
                    try:
                        on_connect_error(self, os.strerror(err) if err else "connect failed")
                    finally:
                        self.destroy()
                else:
                    self._error(err or _errno.ECONNREFUSED, True)
                return
            self._fh = fh
            self._skip_drain = False
            self._start()
            on_connect = opts.get("on_connect")
            if on_connect is not None and self._fh is not None:
                on_connect(self, host, port, partial(_retry_connect, ref, retry))  # type: ignore[arg-type]

        def prepare(fh: socket.socket, *args: object) -> Any:
            self = ref()
            on_prepare = opts.get("on_prepare")
            if self is None or on_prepare is None:
                return None
            self._fh = fh
            try:
                return on_prepare(self)
            finally:
                self._fh = None

        self._connect = tcp_connect(host, service, connected, prepare)

    @property
    def fh(self) -> Any:
        """The socket (or fd) the handle reads and writes; None before a
        ``connect`` handle is connected and after :meth:`destroy`
        (``$hdl->{fh}``).  What a read callback pushed is written out before
        this returns, so anything done to the fh comes after it, as in Perl."""
        if self._held is not None:
            self._release_held()
        return self._fh

    @property
    def wbuf(self) -> bytearray:
        """The write buffer (a :class:`bytearray`; ``$hdl->{wbuf}``): the bytes
        the kernel has not taken yet.  What a read callback pushed is handed to
        the kernel before this returns, so its length is what Perl shows."""
        if self._held is not None:
            self._release_held()
        return self._wbuf

    @property
    def rbuf(self) -> bytearray:
        """The read buffer (a :class:`bytearray`; ``$hdl->{rbuf}``).  Readers
        and ``on_read`` consume from its front (``del hdl.rbuf[:n]``);
        assigning to it replaces its contents (``hdl.rbuf = b""`` empties it,
        as AnyEvent::HTTPD does with ``$hdl->{rbuf} = ''``).  Looking at it
        costs nothing: a reader waiting for the rest of a frame resumes its
        scan, unless bytes were taken off the front meanwhile (then it starts
        over).  Rewrite bytes in place only by assigning."""
        return self._rbuf

    @rbuf.setter
    def rbuf(self, data: Bytes) -> None:
        self._rbuf[:] = data
        self._rin += _RESCAN + len(self._rbuf)

    def take_rbuf(self) -> bytearray:
        """Take the whole read buffer without copying it (Perl's ``delete
        $hdl->{rbuf}``) and go on with an empty one: the returned
        :class:`bytearray` is yours.  The cheap way for an ``on_read`` that
        collects everything (``parts.append(hdl.take_rbuf())``, one
        ``b"".join(parts)`` at the end)."""
        data = self._rbuf
        self._rbuf = bytearray()
        self._rin += _RESCAN
        return data

    def __getitem__(self, key: str) -> Any:
        """Perl's ``$hdl->{key}`` for reading: the current callback of an
        ``on_*`` option (``None`` if unset), or ``fh``, ``rbuf``, ``wbuf``,
        ``tls``, ``tls_ctx``, ``peername``, or a key the constructor stored.
        ``old = hdl["on_eof"]`` saves a callback to restore it later with
        ``hdl.on_eof(old)`` (AnyEvent::HTTP's keep-alive retry).  Raises
        :class:`KeyError` for anything else.  A destroyed handle reads
        ``None`` for every key (Perl empties its hash).
        """
        if self.destroyed():
            return None
        attr = _CALLBACK_KEYS.get(key)
        if attr is not None:
            return getattr(self, attr)
        if key in _LATE_OPTIONS:
            return self._timeout_state(key[3:])[3]
        if key in _DATA_KEYS or key in self.__dict__:
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """Perl's ``$hdl->{key} = value`` for the keys a port assigns: an
        ``on_*`` callback (as its setter method does) or ``rbuf``.  Raises
        :class:`KeyError` for anything else.
        """
        if key in _CALLBACK_KEYS or key in _LATE_OPTIONS:
            getattr(self, key)(value)
        elif key == "rbuf":
            self.rbuf = value
        else:
            raise KeyError(key)

    # -- errors -----------------------------------------------------------------

    def _error(self, err: int, fatal: bool = False, message: str | None = None) -> None:
        """Report ``err`` (an errno) through on_error; destroy after a fatal one.

        While a fatal error is being reported, further errors (from writes
        ``on_error`` makes on the broken stream, say) are not reported again;
        the handle is destroyed even if ``on_error`` raises.
        """
        if self._failing:
            return
        if self._held is not None:
            self._release_held()  # pushed before the error: Perl had written it already
            if self.destroyed():
                return  # writing it failed, and that error was reported
        self.errno = err
        if message is None:
            message = os.strerror(err) if err else "Unknown error"
        if self._on_error is not None:
            if not fatal:
                try:
                    self._on_error(self, False, message)
                except Exception as exc:  # noqa: BLE001 - reported; the handle goes on
                    _reactor._report(exc, "on_error")
                return
            self._failing = _FAILING
            try:
                self._on_error(self, True, message)
            finally:
                self.destroy()
        elif self._fh is not None or self._connect is not None:
            self.destroy()
            raise OSError(err, "AnyEvent::Handle uncaught error: %s" % message)

    # -- simple setters (Perl's accessor methods) -----------------------------

    def on_error(self, cb: ErrorCb | None = None) -> None:
        """Replace the ``on_error(hdl, fatal, message)`` callback (None clears)."""
        self._on_error = cb

    def on_eof(self, cb: HandleCb | None = None) -> None:
        """Replace the ``on_eof(hdl)`` callback (None clears)."""
        self._on_eof = cb

    def on_starttls(self, cb: StartTlsCb | None = None) -> None:
        """Replace the ``on_starttls(hdl, success, message)`` callback."""
        self._on_starttls = cb

    def on_stoptls(self, cb: HandleCb | None = None) -> None:
        """Replace the ``on_stoptls(hdl)`` callback."""
        self._on_stoptls = cb

    def autocork(self, value: bool | None = None) -> None:
        """Enable or disable autocork; takes effect on the next write."""
        self._stop_holding()
        self._autocork = bool(value)

    def rbuf_max(self, value: int | None = None) -> None:
        """Set the read buffer limit in bytes (None disables)."""
        self._rbuf_max = value

    def wbuf_max(self, value: int | None = None) -> None:
        """Set the write buffer limit in bytes (None disables)."""
        self._wbuf_max = value

    def _sockopt(self, level: int, opt: int, value: object) -> None:
        if isinstance(self._fh, socket.socket):
            try:
                self._fh.setsockopt(level, opt, int(bool(value)))
            except OSError:
                pass  # not TCP (unix socket, socketpair): nothing to set

    def no_delay(self, value: bool | None = None) -> None:
        """Set TCP_NODELAY (disable Nagle) on the socket."""
        self._sockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, value)

    def keepalive(self, value: bool | None = None) -> None:
        """Set SO_KEEPALIVE on the socket."""
        self._sockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, value)

    def oobinline(self, value: bool | None = None) -> None:
        """Set SO_OOBINLINE on the socket (on by default, as in Perl)."""
        self._sockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, value)

    # -- timeouts ------------------------------------------------------------------

    def timeout(self, seconds: float | None = None) -> None:
        """Set the inactivity timeout in seconds (0/None disables); checked at once."""
        self._set_timeout("timeout", seconds)

    def rtimeout(self, seconds: float | None = None) -> None:
        """Set the read inactivity timeout in seconds (0/None disables)."""
        self._set_timeout("rtimeout", seconds)

    def wtimeout(self, seconds: float | None = None) -> None:
        """Set the write inactivity timeout in seconds (0/None disables)."""
        self._set_timeout("wtimeout", seconds)

    def on_timeout(self, cb: HandleCb | None = None) -> None:
        """Replace ``on_timeout(hdl)``; without one a timeout is a non-fatal ETIMEDOUT."""
        self._timeout_state("timeout")[3] = cb

    def on_rtimeout(self, cb: HandleCb | None = None) -> None:
        """Replace ``on_rtimeout(hdl)``."""
        self._timeout_state("rtimeout")[3] = cb

    def on_wtimeout(self, cb: HandleCb | None = None) -> None:
        """Replace ``on_wtimeout(hdl)``."""
        self._timeout_state("wtimeout")[3] = cb

    def timeout_reset(self) -> None:
        """Count as activity now, restarting the ``timeout`` countdown."""
        self._timeout_state("timeout")[1] = _loop.now()

    def rtimeout_reset(self) -> None:
        """Count as read activity now."""
        self._timeout_state("rtimeout")[1] = _loop.now()

    def wtimeout_reset(self) -> None:
        """Count as write activity now."""
        self._timeout_state("wtimeout")[1] = _loop.now()

    def _timeout_state(self, name: str) -> list[Any]:
        """The list ``[seconds, last_activity, watcher, on_cb]`` for one timeout kind."""
        timers = self._timers
        if timers is None:
            now = _loop.now()
            opts = self._opts
            timers = self._timers = {
                k: [0, now, None, opts.get("on_" + k)]
                for k in ("timeout", "rtimeout", "wtimeout")
            }
        return timers[name]

    def _set_timeout(self, name: str, seconds: float | None) -> None:
        seconds = seconds or 0
        if seconds < 0:
            raise ValueError("Handle.%s called with negative timeout (%r)" % (name, seconds))
        st = self._timeout_state(name)
        if not (st[0] and seconds >= st[0]):
            st[2] = None  # a longer timeout keeps the watcher: when it fires, it re-arms
        st[0] = seconds
        self._check_timeout(name)

    def _check_timeout(self, name: str) -> None:
        st = self._timers[name]  # type: ignore[index]  # made by _timeout_state
        if not st[0] or self._fh is None:
            st[2] = None
            return
        now = _loop.now()
        after = st[1] + st[0] - now
        if after <= 0:
            st[1] = now
            try:
                if st[3] is not None:
                    st[3](self)
                else:
                    self._error(_errno.ETIMEDOUT)
            except Exception as exc:  # noqa: BLE001 - reported; the timeout stays armed
                _reactor._report(exc, "timeout")
            if self._fh is None or not st[0]:
                return
            after = st[0]
        if st[2] is None:
            ref = weakref.ref(self)

            def fire() -> None:
                self = ref()
                if self is not None and self._timers is not None:
                    self._timers[name][2] = None
                    self._check_timeout(name)
            st[2] = _loop.timer(after, 0, fire)

    def _activity(self, kind: str) -> None:
        timers = self._timers
        if timers is not None:
            now = _loop.now()
            timers["timeout"][1] = now
            timers[kind][1] = now

    # -- writing ------------------------------------------------------------------

    def on_drain(self, cb: HandleCb | None = None) -> None:
        """Set ``on_drain(hdl)``, called when the write buffer falls to
        ``low_water_mark``; called at once if it is that low already.
        """
        self._stop_holding()  # Perl's on_drain runs inside the write that drained
        self._on_drain = cb
        self._after_write()

    @overload
    def push_write(self, data: Bytes, /) -> None: ...
    @overload
    def push_write(self, type: Literal["netstring"], data: Bytes, /) -> None: ...
    @overload
    def push_write(self, type: Literal["packstring"], fmt: str, data: Bytes, /) -> None: ...
    @overload
    def push_write(self, type: Literal["json", "cbor", "storable"], value: Any, /) -> None: ...

    def push_write(self, data: Any, /, *args: Any) -> None:
        """Queue data for writing: ``push_write(data)`` or ``push_write(type, *args)``.

        ``data`` must be bytes-like; a ``str`` is a :class:`TypeError` (encode
        it first).  Types: ``netstring``, ``packstring`` (fmt, data), ``json``,
        ``cbor``, ``storable``, registered and dotted-module types.  A write
        buffer beyond ``wbuf_max`` is a fatal ENOSPC.  As in Perl, the data
        goes out before anything done to ``hdl.fh`` afterwards, and
        ``on_drain`` runs inside this call when the kernel took everything:
        it is handed to the kernel at once (unless ``autocork``), or, for
        ``bytes`` pushed by a read callback, together with the callback's
        other writes when the handle's read dispatch ends (one ``send`` for
        a request's replies; nothing observable changes).  Data pushed from
        ``on_error`` while it reports a fatal error goes out as far as the
        stream still takes it (further errors are not reported; the rest
        lingers), except after a TLS failure, where it is dropped.  Raises
        :class:`ValueError` for an unknown type.
        """
        if args:  # (none: the empty tuple, no allocation)
            data = _load_type(_WRITE_TYPES, data, "anyevent_write_type")(self, *args)
        if type(data) is str:
            raise TypeError("push_write needs bytes, not str: encode it first (e.g. s.encode())")
        if self._failing and self._tls_state == _TLS_FAILED:
            return  # on_error's last words after a TLS failure: dropped
        if self.tls is not None or (self._fh is None and self._opts.get("tls")):
            return self._tls_push(data)
        if self._hold and type(data) is bytes and not self._wbuf:
            self._hold_write(data)
        else:
            self._write(data)

    def _hold_write(self, data: bytes) -> None:
        """Keep ``data`` (immutable) until this handle's read dispatch ends.

        A read callback's writes go to the kernel together, in one send at the
        end of the dispatch (Twisted and asyncio transports do the same),
        instead of one send each.  Nothing can tell the difference: the writes
        go out in order and before whatever comes next -- reading ``hdl.fh`` or
        ``hdl.wbuf``, ``on_drain``/``push_shutdown``, ``autocork``,
        ``starttls``, ``destroy``, an error, a blocking ``cv.recv()`` -- and
        holding only happens while no ``on_drain`` is set and the write buffer
        is empty (otherwise the data would only be appended to it anyway).
        """
        held = self._held
        if held is None:
            self._held = [data]
            self._held_size = len(data)
            _holders.append(self)
            return
        held.append(data)
        self._held_size += len(data)
        if self._held_size >= _HOLD_MAX or (
                self._wbuf_max is not None and self._held_size > self._wbuf_max):
            self._release_held()

    def _release_held(self) -> None:
        held = self._held
        self._held = None
        _holders.remove(self)
        # (called only while writes are held: _held is a list here)
        self._write(held[0] if len(held) == 1 else b"".join(held))  # type: ignore[index, arg-type]

    def _stop_holding(self) -> None:
        self._hold = False
        if self._held is not None:
            self._release_held()

    def _write(self, data: Bytes) -> None:
        if self._held is not None:
            self._release_held()  # what was held goes first
        wbuf = self._wbuf
        if not wbuf and self._ww is None and not self._autocork and self._fh is not None:
            # fast path: try to hand the data to the kernel without buffering
            try:
                n = self._send(self._fh, data)
            except OSError as exc:
                if exc.errno not in _EAGAIN:
                    return self._error(exc.errno, True)  # type: ignore[arg-type]
                n = 0
            if self._timers is not None:
                self._activity("wtimeout")
            if n == len(data):
                self._after_write()
                return
            wbuf += memoryview(data)[n:]
            self._watch_wbuf()
            return
        wbuf += data
        if self._fh is not None and (self._ww is None or self._wbuf_max is not None):
            self._drain_wbuf()

    @overload
    def unshift_write(self, data: Bytes, /) -> None: ...
    @overload
    def unshift_write(self, type: Literal["netstring"], data: Bytes, /) -> None: ...
    @overload
    def unshift_write(self, type: Literal["packstring"], fmt: str, data: Bytes, /) -> None: ...
    @overload
    def unshift_write(self, type: Literal["json", "cbor", "storable"], value: Any, /) -> None: ...

    def unshift_write(self, *args: Any) -> None:
        """Put data at the front of the write buffer (4.x API), same arguments as
        :meth:`push_write`.  Only meaningful for data not yet being written.
        """
        if len(args) == 1:
            data = bytes(args[0])
        else:
            data = _load_type(_WRITE_TYPES, args[0], "anyevent_write_type")(self, *args[1:])
        self.wbuf[:0] = data  # the property: what a read callback pushed went out before
        if self._fh is not None:
            self._drain_wbuf()

    def _drain_wbuf(self) -> None:
        if self._ww is None and self._wbuf:
            if not self._autocork:
                self._write_ready()
                if self._fh is None:
                    return
            if self._wbuf and self._ww is None:
                self._watch_wbuf()
        elif self._wbuf_max is not None and self._wbuf_max < len(self._wbuf):
            # a peer that stops reading keeps the watcher busy while the buffer
            # grows: check here too, or wbuf_max would never fire for it
            self._error(_errno.ENOSPC, True)

    def _watch_wbuf(self) -> None:
        self._ww = _loop.io(self._fh, 1, _weak_method(self, "_write_ready"))
        if self._wbuf_max is not None and self._wbuf_max < len(self._wbuf):
            self._error(_errno.ENOSPC, True)

    def _write_ready(self) -> None:
        wbuf = self._wbuf
        try:
            n = self._send(self._fh, wbuf)
        except OSError as exc:
            if exc.errno not in _EAGAIN:
                self._error(exc.errno, True)  # type: ignore[arg-type]
            return
        del wbuf[:n]
        if self._timers is not None:
            self._activity("wtimeout")
        if not wbuf:
            self._ww = None  # before on_drain: one that raises must not leave it spinning
        self._after_write()

    def _drained(self) -> bool:
        return self._low_water_mark >= len(self._wbuf) + len(self._tls_wbuf or b"")

    def _after_write(self) -> None:
        if self._on_drain is None or not self._drained():
            return
        if self._drain_state:
            # a write made by on_drain itself drained too: Perl would call
            # on_drain again from inside that write; the running call loops
            # instead, so any number of refills keeps the stack flat
            self._drain_state = _DRAIN_AGAIN
            return
        self._drain_state = _DRAIN_RUNNING
        try:
            while True:
                self._on_drain(self)
                if self._drain_state != _DRAIN_AGAIN or self._on_drain is None or not self._drained():
                    break
                self._drain_state = _DRAIN_RUNNING
        finally:
            self._drain_state = _DRAIN_IDLE

    def push_shutdown(self) -> None:
        """Shut down the write side (``shutdown(SHUT_WR)``) once everything queued
        so far is written.  Replaces ``on_drain`` and clears ``low_water_mark``.
        """
        self._low_water_mark = 0
        self.on_drain(_shutdown_write)

    # -- reading ------------------------------------------------------------------

    def on_read(self, cb: HandleCb | None = None) -> None:
        """Set ``on_read(hdl)``, called whenever data arrives and the queue is
        empty; it consumes from ``hdl.rbuf`` itself.  None clears it.
        """
        self._on_read = cb
        if cb is not None:
            self._drain_rbuf()

    @overload
    def push_read(self, reader: Reader, /) -> None: ...
    @overload
    def push_read(self, type: Literal["line"], cb: LineCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["line"], eol: BytesRegex | None, cb: LineCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["chunk"], length: int, cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["regex"], accept: BytesRegex, cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["regex"], accept: BytesRegex, reject: BytesRegex | None,
               cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["regex"], accept: BytesRegex, reject: BytesRegex | None,
               skip: BytesRegex | None, cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["netstring"], cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["packstring"], fmt: str, cb: DataCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["json", "cbor", "storable"], cb: ValueCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["storable"], fmt: str, cb: ValueCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["tls_detect"], cb: TlsDetectCb, /) -> None: ...
    @overload
    def push_read(self, type: Literal["tls_autostart"], tls: TlsMode, /) -> None: ...
    @overload
    def push_read(self, type: Literal["tls_autostart"], tls: TlsMode, ctx: TlsCtx, /) -> None: ...

    def push_read(self, first: Any, /, *args: Any) -> None:
        """Queue a read request: ``push_read(cb)`` with ``cb(hdl) -> bool``, or
        ``push_read(type, *type_args, cb)``, e.g. ``push_read("line", cb)``,
        ``push_read("chunk", 4, cb)``, ``push_read("packstring", "N", cb)``.
        Raises :class:`ValueError` for an unknown type.
        """
        reader: Reader
        factory = _READ_TYPES.get(first) if len(args) == 1 else None
        if factory is _read_line:
            reader = _LineReader(args[0]).read  # the hot path of line protocols
        elif factory is _read_cbor:
            reader = _cbor_reader(self, args[0])  # (without _read_cbor's call)
        elif factory is not None:  # another type without arguments (json, storable...)
            reader = factory(self, args[0])
        elif len(args) == 2:
            factory = _READ_TYPES.get(first)
            if factory is _read_line:
                eol = args[0]  # its b"\r\n" and qr/\r?\n/ spellings, as fast
                if type(eol) is bytes:  # (_read_line's first case, without its call)
                    reader = _BytesLineReader(args[1], eol).read
                elif _last_plan[0] is eol:  # (the regex of the last read, most likely)
                    reader = _planned_line_reader(args[1], _last_plan)
                else:
                    reader = _read_line(self, args[1], eol)  # pyright: ignore[reportArgumentType]
            elif factory is _read_chunk:  # (without _read_chunk's call)
                reader = _ChunkReader(args[1], args[0]).read
            elif factory is _read_regex and _last_plan[0] is args[0]:
                plan = _last_plan  # (_read_regex's first case, without its call)
                reader = _RegexLineReader(args[1], plan[0], plan[2], plan[3], True).read
            else:
                reader = self._make_reader(first, args)
        else:
            reader = self._make_reader(first, args)
        queue = self._queue
        if type(queue) is tuple:
            queue = self._read_queue()
        queue.append(reader)
        if not self._skip_drain:  # else the running drain loop gets to it
            self._drain_rbuf()

    @overload
    def unshift_read(self, reader: Reader, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["line"], cb: LineCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["line"], eol: BytesRegex | None, cb: LineCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["chunk"], length: int, cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["regex"], accept: BytesRegex, cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["regex"], accept: BytesRegex, reject: BytesRegex | None,
               cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["regex"], accept: BytesRegex, reject: BytesRegex | None,
               skip: BytesRegex | None, cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["netstring"], cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["packstring"], fmt: str, cb: DataCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["json", "cbor", "storable"], cb: ValueCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["storable"], fmt: str, cb: ValueCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["tls_detect"], cb: TlsDetectCb, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["tls_autostart"], tls: TlsMode, /) -> None: ...
    @overload
    def unshift_read(self, type: Literal["tls_autostart"], tls: TlsMode, ctx: TlsCtx, /) -> None: ...

    def unshift_read(self, first: Any, /, *args: Any) -> None:
        """Like :meth:`push_read`, but the request goes to the front of the queue."""
        self._read_queue().appendleft(self._make_reader(first, args))
        self._drain_rbuf()

    def _read_queue(self) -> deque[Reader]:
        queue = self._queue
        if type(queue) is tuple:
            queue = self._queue = deque()
        return queue  # type: ignore[no-any-return]

    def _make_reader(self, first: Any, args: tuple[Any, ...]) -> Reader:
        """The reader for push_read's arguments: ``first`` is a reader, or a
        read type whose arguments (the callback last) are ``args``."""
        if not args:
            return first  # type: ignore[no-any-return]
        factory = (_READ_TYPES.get(first)
                   or _load_type(_READ_TYPES, first, "anyevent_read_type"))
        if len(args) == 1:  # the common case: no type arguments
            return factory(self, args[0])
        return factory(self, args[-1], *args[:-1])

    # 4.x-era names, kept so that old scripts port unchanged.
    @overload
    def push_read_line(self, cb: LineCb, /) -> None: ...
    @overload
    def push_read_line(self, eol: BytesRegex | None, cb: LineCb, /) -> None: ...

    def push_read_line(self, *args: Any) -> None:
        """4.x alias of ``push_read("line", [eol,] cb)``."""
        self.push_read("line", *args)

    @overload
    def unshift_read_line(self, cb: LineCb, /) -> None: ...
    @overload
    def unshift_read_line(self, eol: BytesRegex | None, cb: LineCb, /) -> None: ...

    def unshift_read_line(self, *args: Any) -> None:
        """4.x alias of ``unshift_read("line", [eol,] cb)``."""
        self.unshift_read("line", *args)

    def push_read_chunk(self, length: int, cb: DataCb) -> None:
        """4.x alias of ``push_read("chunk", length, cb)``."""
        self.push_read("chunk", length, cb)

    def unshift_read_chunk(self, length: int, cb: DataCb) -> None:
        """4.x alias of ``unshift_read("chunk", length, cb)``."""
        self.unshift_read("chunk", length, cb)

    def _drain_rbuf(self) -> None:
        if self._skip_drain:
            return
        self._skip_drain = True
        try:
            queue = self._queue
            while True:
                if self._tls_rbuf:
                    self._rbuf += self._tls_rbuf
                    self._rin += len(self._tls_rbuf)
                    self._tls_rbuf.clear()
                if queue:
                    reader = queue.popleft()
                    try:
                        done = reader(self)
                    except Exception as exc:  # noqa: BLE001 - reported, see _reader_raised
                        # (a function, not a method: a callback may have
                        # destroyed the handle, whose methods are no-ops then)
                        if _reader_raised(self, exc):
                            return
                        done = True  # its callback raised after the message was taken
                    if not done:
                        if self._fh is None:
                            return
                        if self._eof:
                            return self._error(_errno.EPIPE, True)
                        queue.appendleft(reader)
                        break
                    if self._fh is None:
                        return
                elif self._on_read is not None:
                    size = len(self._rbuf)
                    if not size:
                        break
                    try:
                        self._on_read(self)
                    except Exception as exc:  # noqa: BLE001 - a user callback: report, go on
                        _reactor._report(exc, "on_read")
                        break  # called again when more data arrives
                    if self._fh is None:
                        return
                    queue = self._queue  # on_read may have queued the first request
                    if size == len(self._rbuf) and not queue and self._on_read is not None:
                        if self._eof:
                            return self._error(_errno.EPIPE, True)
                        break
                else:
                    if self.tls is None:
                        self._rw = None
                    break
        finally:
            self._skip_drain = False
        if self._eof:
            if self._on_eof is not None:
                self._on_eof(self)
            else:
                self._error(0, True, "Unexpected end-of-file")
            return
        if self._rbuf_max is not None and self._rbuf_max < len(self._rbuf):
            return self._error(_errno.ENOSPC, True)
        if self._rw is None and (self._on_read is not None or self._queue):
            self.start_read()

    def stop_read(self) -> None:
        """Stop reading from the fh (data keeps arriving in the kernel).  In TLS
        mode the handshake may still read now and then, as in Perl.
        """
        self._rw = None

    def start_read(self) -> None:
        """Resume reading after :meth:`stop_read`."""
        if self._rw is None and not self._eof and self._fh is not None:
            self._rw = _loop.io(self._fh, 0, _weak_method(self, "_read_ready"))

    def _read_ready(self) -> None:
        size = self.read_size
        tls = self.tls
        try:
            n = self._recv(self._fh, self._rbuf if tls is None else _tls_in, size)
        except OSError as exc:
            if exc.errno not in _EAGAIN:
                self._error(exc.errno, True)  # type: ignore[arg-type]
            return
        except BufferError:  # (a fault of the program, not of the stream)
            return self._error(_errno.EBUSY, True, "cannot read into hdl.rbuf: a memoryview"
                               " of it is still alive (release it in the callback)")
        if n:
            if tls is None:
                self._rin += n
            if self._timers is not None:
                self._activity("rtimeout")
            if n == size and size < self.max_read_size:
                # grow before dispatching: a callback may destroy the handle
                self.read_size = min(size * 2, self.max_read_size)
            if tls is not None:
                try:
                    tls.bio_write(_tls_in)  # the BIO copies it
                finally:
                    del _tls_in[:]
                self._dotls()
            elif self._on_drain is None and not self._autocork:
                self._hold = True
                try:
                    self._drain_rbuf()
                finally:
                    self._stop_holding()
            else:
                self._drain_rbuf()
        else:
            self._rw = None
            self._eof = True
            self._drain_rbuf()

    # -- TLS ----------------------------------------------------------------------

    def starttls(self, tls: TlsMode, ctx: TlsCtx | None = None) -> None:
        """Start TLS on the stream: ``tls`` is ``"connect"``, ``"accept"`` or an
        ``OpenSSL.SSL.Connection``; ``ctx`` an :class:`anyevent.tls.TLS` or a
        dict of its options (default :func:`TLS_CTX`).  Calling it while TLS
        is active raises :class:`RuntimeError`.  Failures (a context that
        cannot be built included) are fatal EPROTO errors, or go to
        ``on_starttls(hdl, False, message)`` if set.
        """
        global _SSL
        if self.tls is not None:
            raise RuntimeError("starttls called on a handle while TLS is already active")
        self._stop_holding()  # plaintext pushed before starttls goes out in clear
        from .. import tls as _tls
        _SSL = _tls.SSL  # type: ignore[attr-defined]  # tls's own import of OpenSSL.SSL
        if ctx is not None:
            self.tls_ctx = ctx
        if self._fh is None:
            self._opts["tls"] = tls
            return
        try:
            self.tls_ctx = _tls.tls_ctx_from(self.tls_ctx)
            if isinstance(tls, str):
                conn = self.tls_ctx.new_connection(tls, self.peername, self)
            else:
                conn = tls
        except Exception as exc:  # noqa: BLE001 - a bad context: the handle fails, never hangs
            self._tls_state = _TLS_HANDSHAKE
            return self._tls_error("TLS setup failed: %s: %s" % (type(exc).__name__, exc))
        self.tls = conn
        self._tls_rbuf = bytearray()
        if self._tls_wbuf is None:
            self._tls_wbuf = bytearray()
        self._tls_state = _TLS_HANDSHAKE
        if self._rbuf:
            conn.bio_write(bytes(self._rbuf))
            self._rbuf.clear()
        self._dotls()
        self.start_read()

    def stoptls(self) -> None:
        """Send a TLS close_notify and leave TLS mode once the peer answers
        (``on_stoptls`` is called then); plaintext may follow, as in Perl.
        """
        if self.tls is not None and self._fh is not None:
            try:
                self.tls.shutdown()
            except Exception:  # noqa: BLE001 - shutdown on a broken session
                pass
            self._dotls()

    def resettls(self) -> None:
        """Forget the TLS session without any TLS shutdown (Perl's ``resettls``)."""
        self._freetls()

    def _freetls(self) -> None:
        if self.tls is not None:
            self.tls = None
            self._tls_wbuf = None
            self._tls_state = _TLS_NONE

    def _tls_error(self, exc: Any) -> None:
        from ..tls import error_message
        if isinstance(exc, str):
            message = exc
        else:
            message = error_message(exc, self.tls)
        if self._tls_state == _TLS_HANDSHAKE and self._on_starttls is not None:
            self._freetls()
            self._tls_state = _TLS_NONE
            self._on_starttls(self, False, message)
        else:
            self._freetls()
            self._tls_state = _TLS_FAILED
            self._error(_errno.EPROTO, True, message)

    def _dotls(self) -> None:
        SSL = _SSL
        conn = self.tls
        if self._tls_state == _TLS_HANDSHAKE:
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                self._flush_tls_out(conn)
                return self._tls_error(exc)
            else:
                problem = self.tls_ctx.verify_result(conn, self.peername)
                if problem is not None:
                    self._flush_tls_out(conn)
                    return self._tls_error(problem)
                self._tls_state = _TLS_OPEN
                if self._on_starttls is not None:
                    try:
                        self._on_starttls(self, True, "TLS/SSL connection established")
                    except Exception as exc:  # noqa: BLE001 - reported; TLS goes on
                        _reactor._report(exc, "on_starttls")
                    if self.tls is not conn:
                        return
        if self._tls_state == _TLS_OPEN:
            if self._tls_wbuf and not self._tls_send(conn, self._tls_wbuf):
                return
            # decrypt every record that arrived, then dispatch once; straight
            # into rbuf unless a callback is running or older data waits
            rbuf = self._tls_rbuf if self._skip_drain or self._tls_rbuf else self._rbuf
            direct = rbuf is self._rbuf
            size = len(rbuf)
            while True:
                try:
                    data = conn.recv(65536)
                    rbuf += data
                    if direct:
                        self._rin += len(data)
                except SSL.WantReadError:
                    break
                except SSL.ZeroReturnError:
                    if len(rbuf) > size and not self._drain_tls_rbuf(conn):
                        return
                    # the peer sent close_notify: answer it (bidirectional
                    # shutdown, so the peer's stoptls completes), then leave TLS
                    try:
                        conn.shutdown()
                    except SSL.Error:
                        pass
                    self._flush_tls_out(conn)
                    if self._fh is None:
                        return
                    self._freetls()
                    if self._on_stoptls is not None:
                        self._on_stoptls(self)
                        return
                    self._rw = None
                    self._eof = True
                    self._drain_rbuf()
                    return
                except SSL.SysCallError as exc:
                    if exc.args and exc.args[0] == -1:  # unexpected EOF: the fd reports it
                        break
                    if len(rbuf) == size or self._drain_tls_rbuf(conn):
                        self._tls_error(exc)
                    return
                except SSL.Error as exc:
                    if len(rbuf) == size or self._drain_tls_rbuf(conn):
                        self._tls_error(exc)
                    return
            if len(rbuf) > size and not self._drain_tls_rbuf(conn):
                return
        self._flush_tls_out(conn)

    def _tls_push(self, data: Bytes) -> None:
        """push_write with TLS active, or about to start once connected: the
        plaintext never goes on the wire unencrypted."""
        wbuf = self._tls_wbuf
        if wbuf is None:
            wbuf = self._tls_wbuf = bytearray()
        if self._fh is None or self._tls_state == _TLS_HANDSHAKE or wbuf or (
                self._wbuf_max is not None and self._wbuf_max < len(data) + len(self._wbuf)):
            wbuf += data  # it waits behind the handshake or older plaintext
            if self._wbuf_max is not None and self._wbuf_max < len(wbuf) + len(self._wbuf):
                return self._error(_errno.ENOSPC, True)  # before encrypting it all
            if self._fh is None:
                return
            if self._tls_state == _TLS_HANDSHAKE:
                return self._dotls()
            data = wbuf
        # nothing to decrypt here (every _dotls reads the BIO dry): encrypt,
        # then hand the records to the kernel
        if self._tls_send(self.tls, data):
            self._flush_tls_out(self.tls)

    def _tls_send(self, conn: Any, data: Bytes) -> bool:
        """Encrypt ``data`` (the TLS write buffer, or a caller's data while
        that is empty: no copy into it) into the BIO; what the engine does not
        take yet stays in, or goes to, the TLS write buffer.  False after a
        TLS error."""
        done = 0
        failure = None
        with memoryview(data).cast("B") as view:
            size = len(view)
            while done < size:
                try:
                    # (all of it: our contexts leave partial-write mode;
                    # a Connection given in that mode takes a record a call)
                    done += conn.send(view[done:])
                except _SSL.WantReadError:
                    break
                except _SSL.Error as exc:
                    failure = exc
                    break
            wbuf = self._tls_wbuf
            if data is not wbuf and done < size and failure is None:
                wbuf += view[done:]
        if data is wbuf:
            del self._tls_wbuf[:done]  # O(1) at the front of a bytearray
        if failure is not None:
            self._tls_error(failure)
            return False
        return True

    def _drain_tls_rbuf(self, conn: Any) -> bool:
        """Dispatch decrypted data; False if a callback ended TLS on ``conn``."""
        self._drain_rbuf()
        return self.tls is conn

    def _flush_tls_out(self, conn: Any) -> None:
        # a memory BIO read returns all it holds up to the size asked for, so a
        # short read means it is empty (and saves the exception of reading more);
        # each piece goes to the kernel at once if it takes it (no copy into wbuf)
        while True:
            try:
                data = conn.bio_read(131072)
            except _SSL.WantReadError:
                break
            self._write(data)
            if len(data) < 131072 or self._fh is None:
                break

    # -- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Python's name for :meth:`destroy`: ``hdl.close()``."""
        self.destroy()

    def __enter__(self) -> Self:
        """``with Handle(...) as hdl:`` destroys the handle when the block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        if self.destroyed():
            return "<Handle destroyed>"
        fh = self._fh
        if fh is None:
            return "<Handle connecting to %s>" % (self.peername,)
        peer = "-"
        if isinstance(fh, socket.socket):
            try:
                peer = _sockaddr_text(fh.getpeername())
            except OSError:  # not connected (any more)
                pass
        where = "fd=%d peer=%s" % (fh if isinstance(fh, int) else fh.fileno(), peer)
        state = [name for name, on in (("tls", self.tls is not None), ("eof", self._eof),
                                       ("reading", self._rw is not None),
                                       ("writing", self._ww is not None)) if on]
        return "<Handle %s %s rbuf=%d wbuf=%d>" % (where, " ".join(state) or "idle",
                                                   len(self._rbuf), len(self._wbuf))

    def destroyed(self) -> bool:
        """False while the handle is alive; True once :meth:`destroy` ran."""
        return False

    def destroy(self) -> None:
        """Shut the handle down: no callback runs again, every method becomes a
        silent no-op.  Unwritten data lingers (see ``linger``); then the fh is
        closed, unless the handle was made with ``close_fh=False``.
        """
        self._stop_holding()
        self._teardown()
        # (deliberate: a destroyed handle's methods are no-ops; pyright wants Self)
        self.__class__ = _DestroyedHandle  # pyright: ignore[reportAttributeAccessIssue]

    def _teardown(self) -> None:
        self._freetls()
        self._rw = self._ww = None  # before the fh closes: they unregister it
        fh = self._fh
        if fh is not None:
            if self._wbuf and self._linger:
                _Linger(fh, self._wbuf, self._linger, self._close_fh)
            elif self._close_fh:
                _close_fh(fh)
        self._timers = None
        if self._queue:
            self._queue.clear()
        self._on_error = self._on_read = self._on_eof = self._on_drain = None
        errno = self.errno  # (stays readable after an error destroyed the handle)
        self.__dict__.clear()  # rarer state and user keys, as Perl empties its hash
        if errno:
            self.errno = errno
        self._opts = _NO_OPTIONS
        self._fh = None
        self._wbuf = bytearray()
        self._tls_rbuf = None

    def __del__(self) -> None:
        try:
            self._teardown()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass


class Handle(_HandleCore):
    """A buffered, non-blocking stream (``AnyEvent::Handle->new``).

    Options (keywords, Perl names):

    * ``fh`` -- a connected stream socket, pipe, tty or an int fd; made
      non-blocking.  Or ``connect=(host, service)`` to connect first (see
      :mod:`anyevent.socket`), with ``on_prepare(hdl) -> timeout seconds``,
      ``on_connect(hdl, host, port, retry)`` and ``on_connect_error(hdl, message)``.
    * ``on_error(hdl, fatal, message)`` -- errors, ``hdl.errno`` holds the errno
      (EPIPE, ENOSPC, ETIMEDOUT (non-fatal), EBADMSG, EPROTO, or the OS's);
      after a fatal error the handle is destroyed.  Without it a fatal error
      raises :class:`OSError` (Perl croaks).
    * ``on_read(hdl)``, ``on_eof(hdl)``, ``on_drain(hdl)``.
    * ``timeout``/``rtimeout``/``wtimeout`` (seconds of inactivity, 0 = off)
      with ``on_timeout``/``on_rtimeout``/``on_wtimeout(hdl)``.
    * ``rbuf_max``/``wbuf_max`` (bytes; exceeding is a fatal ENOSPC).
    * ``autocork`` (bool), ``no_delay``, ``keepalive``, ``oobinline`` (on
      unless given as false).
    * ``read_size`` (default 2048, doubled while reads fill it, up to
      ``max_read_size``, default 131072), ``low_water_mark`` (bytes, 0).
    * ``linger`` (seconds, default 3600), ``peername`` (for TLS checks).
    * ``close_fh`` (bool, default true): the handle owns its fh and closes it
      when destroyed (after lingering); false leaves it open for the caller.
    * ``tls`` (``"connect"``, ``"accept"`` or an ``OpenSSL.SSL.Connection``),
      ``tls_ctx`` (:class:`anyevent.tls.TLS` or a dict of its options),
      ``on_starttls(hdl, success, message)``, ``on_stoptls(hdl)``.
    * ``json``: any object with ``encode(value) -> str | bytes`` and/or
      ``raw_decode(text) -> (value, end)`` (a ``json.JSONDecoder``), or a
      tuple ``(encoder, decoder)``; default :func:`json_coder`.  ``cbor``:
      any object with ``encode(value) -> bytes`` and/or ``decode(bytes) ->
      value`` (default :func:`cbor_coder`), or a dict of keyword arguments
      for :func:`cbor2.dumps`.  ``storable_trusted`` (bool: let the ``storable``
      read type unpickle arbitrary classes; off by default).

    Unknown options are stored as attributes and read back as
    ``hdl["key"]`` (Perl keeps them in the hash: AnyEvent::Redis passes
    ``encoding`` and reads it back); with ``ANYEVENT_STRICT`` one whose name
    is close to an option's (``on_eror``) draws a :class:`UserWarning`
    naming that option.
    """

    __slots__ = ("__dict__", "__weakref__")


# The file name this module's frames carry in a traceback: __file__ when
# interpreted, the .py it was compiled from when compiled (setup.py).
_SOURCE = _HandleCore.push_read.__code__.co_filename


def _warn_if_misspelt(key: str) -> None:
    """Strict mode: warn when an unknown option looks like a known one."""
    close = difflib.get_close_matches(key, sorted(_OPTIONS), n=1, cutoff=0.8)
    if close:
        warnings.warn("Handle: unknown option %r kept as data; did you mean %r?"
                      % (key, close[0]), UserWarning, stacklevel=4)


def _close_fh(fh: Any) -> None:
    """Close what a handle owns: a socket or file object, or an int fd."""
    try:
        if isinstance(fh, int):
            os.close(fh)
        else:
            fh.close()
    except OSError:  # already closed by its other owner
        pass


def _shutdown_write(hdl: Handle) -> None:
    try:
        hdl._fh.shutdown(socket.SHUT_WR)
    except (OSError, AttributeError):
        pass


def _noop(*args: object, **kwargs: object) -> None:
    return None


class _DestroyedHandle(Handle):
    """What a handle becomes after destroy(): every method is a no-op."""
    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name == "destroyed":
            return _true
        if name in ("errno", "peername", "rbuf", "_rbuf", "_rin", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        attr = getattr(Handle, name, None)
        if callable(attr):
            return _noop
        return None

    def __del__(self) -> None:
        pass


def _reader_raised(hdl: _HandleCore, exc: Exception) -> bool:
    """Deal with an exception from a read request on ``hdl``; True if the
    handle failed (or a callback destroyed it: the exception is reported all
    the same, never lost).

    An exception from the user callback a read type called (the traceback
    passes through a frame outside this module below the read type's
    own; a library call the callback made may raise further in) goes to
    the loop's exception handler and the queue goes on: the message was
    consumed.  Any other exception -- from the read type's own code, from
    calling the callback (a wrong number of parameters), or from a custom
    reader -- is a fatal EBADMSG with the exception in the message (its
    traceback goes to the exception handler too), so that the handle never
    waits for data it can no longer read.
    """
    _reactor._report(exc, "read")
    tb = exc.__traceback__.tb_next  # type: ignore[union-attr]  # the reader's frame
    if tb is not None and tb.tb_frame.f_code.co_filename == _SOURCE:
        tb = tb.tb_next
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != _SOURCE:
                return hdl._fh is None  # user code below the read type
            tb = tb.tb_next
    hdl._error(_errno.EBADMSG, True, "read request failed: %s: %s" % (
        type(exc).__name__, exc))
    return True


def _true() -> bool:
    return True


_lingering: set[_Linger] = set()


class _Linger:
    """Writes out what a destroyed handle left in its buffer, silently, for at
    most ``linger`` seconds (the Perl DESTROY behaviour), then closes the fh
    if the handle owned it (``close`` true).
    """
    __slots__ = ("fh", "data", "io", "timer", "send", "close")
    fh: Any
    data: bytearray
    io: _reactor.IOWatcher | None
    timer: _reactor.TimerWatcher | None
    send: Callable[[bytearray], int]
    close: bool

    def __init__(self, fh: Any, data: bytearray, seconds: float, close: bool) -> None:
        self.fh = fh
        self.data = data
        self.close = close
        if isinstance(fh, socket.socket):
            self.send = fh.send
        else:
            self.send = partial(os.write, fh if isinstance(fh, int) else fh.fileno())
        self.io = _loop.io(fh, 1, self._write)
        self.timer = _loop.timer(seconds, 0, self._done)
        _lingering.add(self)

    def _write(self) -> None:
        try:
            n = self.send(self.data)
        except OSError as exc:
            if exc.errno not in _EAGAIN:
                self._done()
            return
        del self.data[:n]
        if not self.data or not n:
            self._done()

    def _done(self) -> None:
        self.io = self.timer = None
        _lingering.discard(self)
        fh, self.fh = self.fh, None
        if self.close:
            _close_fh(fh)

    def __del__(self) -> None:
        # the program ends while data still lingers: the fh goes too
        try:
            if self.close and self.fh is not None:
                _close_fh(self.fh)
        except Exception:  # noqa: BLE001 - never raise from a finalizer (or at exit)
            pass


def _retry_connect(ref: Callable[[], Handle | None], retry: Callable[[], None]) -> None:
    self = ref()
    if self is None:
        return
    # As Perl: forget this connection's state and read queue; the write
    # buffer is kept for the next target.
    self._rw = self._ww = None
    self._timers = None
    if self._queue:
        self._queue.clear()
    if self._close_fh:
        _close_fh(self._fh)
    self._fh = None
    self._eof = False
    self._rbuf = bytearray()
    self._freetls()
    self._skip_drain = True
    self._connect = retry  # holding the bound method keeps the connector alive
    retry()


def _last_connect_errno() -> int:
    from ..socket import last_error
    err = last_error()
    return err.errno if err is not None else 0  # type: ignore[return-value]


_SSL: Any = None  # OpenSSL.SSL, bound by the first starttls (plain handles never import it)


def TLS_CTX() -> TLS:
    """The :class:`anyevent.tls.TLS` context of a handle that names none (Perl's
    ``$AnyEvent::Handle::TLS_CTX``): the one given to :func:`set_tls_ctx`, else
    :func:`anyevent.tls.default_ctx` (made on first use; its client
    connections verify the peer)."""
    from ..tls import tls_ctx_from
    return tls_ctx_from(None)


def set_tls_ctx(ctx: TLS | Mapping[str, Any] | None) -> None:
    """Make ``ctx`` (a :class:`anyevent.tls.TLS`, or a dict of its options)
    the context of every handle that starts TLS without ``tls_ctx``, as Perl
    programs do with ``$AnyEvent::Handle::TLS_CTX = AnyEvent::TLS->new(...)``
    before a ported module runs; ``None`` restores ours (:func:`TLS_CTX`).
    Handles that already started TLS keep theirs; ``anyevent.http`` keeps
    verifying servers by default (Perl's AnyEvent::HTTP has its own contexts
    too).  Raises as :func:`anyevent.tls.tls_ctx_from` does.  See PORTING.md
    for the security trade-off."""
    from ..tls import _replace_default
    _replace_default(ctx)


# ---------------------------------------------------------------------------
# Built-in read types
# ---------------------------------------------------------------------------

def _read_chunk(hdl: Handle, cb: DataCb, length: int) -> Reader:
    """``cb(hdl, data)`` once ``length`` bytes are there: exactly those.
    Raises :class:`ValueError` for a ``length`` (int) below 0 or above
    :data:`sys.maxsize`."""
    return _ChunkReader(cb, length).read


class _ChunkReader:
    """The reader of :func:`_read_chunk` (a class, so that the compiled core
    makes and runs it as a C type, and push_read makes it without a call)."""
    __slots__ = ("cb", "length")
    cb: DataCb
    length: int

    def __init__(self, cb: DataCb, length: int) -> None:
        n = int(length)
        if not 0 <= n <= sys.maxsize:   # (checked first: compiled, the field is a C size)
            raise ValueError("chunk: %s length %d" % ("negative" if n < 0 else "impossible", n))
        self.cb = cb
        self.length = n

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        if len(rbuf) < self.length:
            return False
        self.cb(hdl, (_take_fast if type(rbuf) is bytearray else _take)(rbuf, self.length))
        return True


def _read_line(hdl: Handle, cb: LineCb, eol: BytesRegex | None = None) -> Reader:
    """``cb(hdl, line, eol)`` for the next line (without its end-of-line).

    ``eol`` is None (``\\n`` or ``\\r\\n``), a bytes string, or a compiled
    bytes regex (Perl's ``qr//``).  The search resumes where the last one
    stopped, so a line costs time linear in its length however it arrives;
    for a regex that is so when its matches have a bounded width and it has
    no lookaround or backreference (``\\r?\\n``, ``\\r\\n|\\n``, literal
    alternatives); any other regex is searched from the start of the buffer
    on every arrival, quadratic in the worst case as in Perl.
    """
    if eol is None:
        return _LineReader(cb).read
    if isinstance(eol, (bytes, bytearray)):
        return _BytesLineReader(cb, bytes(eol)).read
    if isinstance(eol, str):
        raise TypeError("line eol must be bytes or a compiled bytes regex, not str")
    # (a str pattern was refused above)
    rx: re.Pattern[bytes] = (eol if type(eol) is re.Pattern  # pyright: ignore[reportAssignmentType]
                             else re.compile(eol))
    return _planned_line_reader(cb, _regex_plan(rx))


def _planned_line_reader(cb: LineCb, plan: _RegexPlan) -> Reader:
    """The reader of a line ending in a regex, as its plan says."""
    rx, same, width, literals = plan
    if same is None:
        return _RegexLineReader(cb, rx, width, literals).read
    if same:
        return _BytesLineReader(cb, same).read
    return _LineReader(cb).read


_RegexPlan = tuple[re.Pattern[bytes], "bytes | None", "int | None", "_Literals | None"]

#: id(regex) -> what :func:`_regex_plan` made of it, the regex first (an id
#: may be reused once its regex is gone: the entry is for that regex only).
#: Keyed by id, not by the regex: hashing a pattern costs more than the read.
_REGEX_PLANS: dict[int, _RegexPlan] = {}
_last_plan: _RegexPlan = (re.compile(b""), b"", None, None)  # (push_read's shortcut)


def _regex_plan(rx: re.Pattern[bytes]) -> _RegexPlan:
    """How reads up to a match of ``rx`` are done: ``(rx,``
    :func:`_regex_as_bytes`, :func:`_match_width`, :func:`_literal_search`
    ``)``, worked out once per regex (and kept as the last one used)."""
    global _last_plan
    if _last_plan[0] is rx:
        return _last_plan
    plan = _REGEX_PLANS.get(id(rx))
    if plan is None or plan[0] is not rx:
        if len(_REGEX_PLANS) >= 256:
            _REGEX_PLANS.clear()
        plan = _REGEX_PLANS[id(rx)] = (rx, _regex_as_bytes(rx), _match_width(rx),
                                       _literal_search(rx))
    _last_plan = plan
    return plan


class _LineReader:
    """The default line reader (``\n`` or ``\r\n``), the hot path of line
    protocols: :class:`_Resumable`'s logic inlined.  The reader is the bound
    method ``_LineReader(cb).read``: a class rather than a closure, so that the
    compiled core (_stream.pxd) reads its state and the handle's as C fields.
    """
    __slots__ = ("cb", "start", "gen")
    cb: LineCb
    start: int
    gen: int

    def __init__(self, cb: LineCb) -> None:
        self.cb = cb
        self.start = self.gen = 0

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        start = self.start  # (a new reader starts at 0: no need to look further)
        if start and self.gen != hdl._rin - len(rbuf):
            start = 0
        got = (_take_line_fast if type(rbuf) is bytearray else _take_line)(rbuf, start)
        if got is None:
            self.start, self.gen = len(rbuf), hdl._rin - len(rbuf)
            return False
        self.start = 0
        line, eol = got
        self.cb(hdl, line, eol)
        return True


class _BytesLineReader:
    """A line ending in a given bytes string (``push_read("line", b"\r\n",
    cb)``), as fast as the default reader: :class:`_LineReader`'s logic with
    :func:`_take_until` (the search resumes ``len(eol) - 1`` bytes before the
    end of what it saw)."""
    __slots__ = ("cb", "eol", "start", "gen")
    cb: LineCb
    eol: bytes
    start: int
    gen: int

    def __init__(self, cb: LineCb, eol: bytes) -> None:
        self.cb = cb
        self.eol = eol
        self.start = self.gen = 0

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        start = self.start  # (as _LineReader's)
        if start and self.gen != hdl._rin - len(rbuf):
            start = 0
        line = (_take_until_fast if type(rbuf) is bytearray else _take_until)(rbuf, start, self.eol)
        if line is None:
            self.start, self.gen = max(0, len(rbuf) - len(self.eol) + 1), hdl._rin - len(rbuf)
            return False
        self.start = 0
        self.cb(hdl, line, self.eol)
        return True


class _RegexLineReader:
    """A line ending where a regex matches (``push_read("line", qr, cb)``):
    the search resumes ``width`` bytes (plus one) before the end of what it
    saw, or at the start for a regex of unbounded width (see
    :func:`_match_width`).  When the regex can only match a few strings
    (``literals``, see :func:`_literal_search`), the compiled core looks for
    those instead of running the regex engine.  ``whole``: the read type
    ``regex`` (``cb(hdl, data)``, the match included) rather than ``line``."""
    __slots__ = ("cb", "rx", "width", "literals", "whole", "start", "gen")
    cb: Callable[..., object]
    rx: re.Pattern[bytes]
    width: int | None
    literals: _Literals | None
    whole: bool
    start: int
    gen: int

    def __init__(self, cb: Callable[..., object], rx: re.Pattern[bytes], width: int | None,
                 literals: _Literals | None, whole: bool = False) -> None:
        self.cb, self.rx, self.width, self.literals = cb, rx, width, literals
        self.whole = whole
        self.start = self.gen = 0

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        front = hdl._rin - len(rbuf)
        start = self.start if self.gen == front else 0
        literals = self.literals
        if literals is None or type(rbuf) is not bytearray:
            got = _take_match(rbuf, start, self.rx)
        else:
            got = _take_literal(rbuf, start, literals[0], literals[1])
        if got is None:
            if self.width is not None:
                self.start, self.gen = max(0, len(rbuf) - self.width - 1), front
            return False
        self.start = 0
        line, eol = got
        if self.whole:
            self.cb(hdl, line + eol)
        else:
            self.cb(hdl, line, eol)
        return True


def _take_match(buf: bytearray, start: int, rx: re.Pattern[bytes]) -> tuple[bytes, bytes] | None:
    """Take the bytes before the first match of ``rx`` at or after ``start``,
    and the match, off the front of ``buf``: ``(line, eol)``, or None when
    there is none (``_speedups.take_match`` does it for a regex's literals)."""
    m = rx.search(buf, start)
    if m is None:
        return None
    begin, end = m.span()
    line, eol = bytes(buf[:begin]), bytes(buf[begin:end])
    del buf[:end]
    return line, eol


def _search_end(buf: bytearray, start: int, rx: re.Pattern[bytes]) -> int | None:
    """The end of the first match of ``rx`` at or after ``start``, or None
    (``_speedups.search_end`` does it for a regex's literals)."""
    m = rx.search(buf, start)
    return None if m is None else m.end()


# (only with the compiled core: _literal_search is None without it)
_take_literal: Callable[[bytearray, int, bytes, tuple[bytes, ...]], tuple[bytes, bytes] | None]
_search_literal_end: Callable[[bytearray, int, bytes, tuple[bytes, ...]], int | None]
if _speedups is not None:
    _take_literal = _speedups.take_match
    _search_literal_end = _speedups.search_end


def _take_until(rbuf: bytearray, start: int, eol: bytes) -> bytes | None:
    """Take the bytes before the first ``eol`` at or after ``start`` off the
    front of ``rbuf``, with the ``eol``; None when there is none there."""
    pos = rbuf.find(eol, start)
    if pos < 0:
        return None
    line = bytes(rbuf[:pos])
    del rbuf[:pos + len(eol)]
    return line


_take_until_fast = _take_until if _speedups is None else _speedups.take_until


def _take_line(rbuf: bytearray, start: int) -> tuple[bytes, bytes] | None:
    """Take the first line ending in ``\n`` at or after ``start`` off the front
    of ``rbuf``: ``(line, eol)``, ``eol`` being ``b"\r\n"`` or ``b"\n"`` (not in
    ``line``); None when there is no newline there."""
    pos = rbuf.find(b"\n", start)
    if pos < 0:
        return None
    if pos and rbuf[pos - 1] == 13:
        line, eol = bytes(rbuf[:pos - 1]), b"\r\n"
    else:
        line, eol = bytes(rbuf[:pos]), b"\n"
    del rbuf[:pos + 1]
    return line, eol


# (the C twin when compiled: one name bound here, no attribute lookup per line)
_take_line_fast = _take_line if _speedups is None else _speedups.take_line


_UNBOUNDED = re.compile(rb"\(\?<?[=!]|\\[1-9]|\(\?P=")  # lookaround, backreference


def _re_parser() -> Any:
    """The re module's own parser (private, hence every use is guarded)."""
    try:
        from re import _parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10 calls it sre_parse
        import sre_parse as _parser
    return _parser


def _parse_regex(rx: re.Pattern[bytes]) -> Any:
    """``rx`` parsed by :func:`_re_parser` (None if that fails)."""
    try:
        # (sre_parse parses bytes patterns too; the stub says str)
        return _re_parser().parse(rx.pattern, rx.flags)  # pyright: ignore[reportArgumentType]
    except Exception:  # noqa: BLE001 - a private module: be conservative
        return None


#: Regexes whose first match in any buffer is where the default line reader
#: cuts, with the same end of line: ``\r?\n`` and its spellings.
_DEFAULT_EOL_FORMS = (rb"\r?\n", rb"\r\n|\n", rb"\n|\r\n")


@functools.lru_cache(maxsize=None)
def _default_eol_shapes() -> frozenset[str]:
    """The parsed shapes of :data:`_DEFAULT_EOL_FORMS` (made once)."""
    return frozenset(repr(list(_parse_regex(re.compile(f)))) for f in _DEFAULT_EOL_FORMS)


def _regex_as_bytes(rx: re.Pattern[bytes]) -> bytes | None:
    """``b""`` when ``rx`` cuts lines as the default reader does, the literal
    bytes it matches when it is a plain string (no case folding), else None."""
    parsed = _parse_regex(rx)
    if parsed is None:
        return None
    if repr(list(parsed)) in _default_eol_shapes():
        return b""
    if rx.flags & re.IGNORECASE or not parsed or any(str(op) != "LITERAL" for op, _ in parsed):
        return None
    return bytes(value for _, value in parsed)


def _match_width(rx: re.Pattern[bytes]) -> int | None:
    """The most bytes a match of ``rx`` examines (None: unbounded or unknown)."""
    parsed = None if _UNBOUNDED.search(rx.pattern) else _parse_regex(rx)
    if parsed is None:
        return None
    width: int = parsed.getwidth()[1]
    return width if width < _re_parser().MAXREPEAT else None


#: (table of first bytes, the strings in the order the regex engine tries them)
_Literals = tuple[bytes, tuple[bytes, ...]]
_MAX_LITERALS = 64


def _alternatives(items: Any) -> list[bytes] | None:
    """Every string a match of the parsed sequence ``items`` can be, in the
    order a backtracking engine tries them (so the first one found at a
    place is the match there); None unless that is a short list of
    non-empty pieces: literals, classes of literals, alternatives, groups and
    bounded repeats only."""
    result = [b""]
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            options: list[bytes] | None = [bytes((av,))]
        elif name == "IN":
            options = _class_members(av)
        elif name == "BRANCH":
            branches = [_alternatives(branch) for branch in av[1]]
            options = None if None in branches else [o for b in branches for o in b]  # type: ignore[union-attr]
        elif name == "SUBPATTERN":
            options = None if av[1] & re.IGNORECASE else _alternatives(av[3])
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            body = _alternatives(av[2])
            options = None if body is None or b"" in body or av[1] > 8 else _repeat(
                body, av[0], av[1], name == "MAX_REPEAT")
        else:  # anchors, lookaround, references, any byte, categories, possessive
            return None
        if options is None:
            return None
        result = [r + o for r in result for o in options]
        if len(result) > _MAX_LITERALS:
            return None
    return result


def _class_members(items: Any) -> list[bytes] | None:
    """The bytes of a class made of literals and ranges (None otherwise)."""
    members: set[int] = set()
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            members.add(av)
        elif name == "RANGE":
            members.update(range(av[0], av[1] + 1))
        else:
            return None
    return [bytes((c,)) for c in sorted(members)]


def _repeat(body: list[bytes], low: int, high: int, greedy: bool) -> list[bytes]:
    """``body`` repeated ``low`` to ``high`` times, in the engine's order: a
    greedy repeat tries one more first, a lazy one stops first."""
    more = [b + tail for b in body for tail in _repeat(body, max(low - 1, 0), high - 1, greedy)
            ] if high else []
    stop = [b""] if not low else []
    return more + stop if greedy else stop + more


def _literal_search(rx: re.Pattern[bytes]) -> _Literals | None:
    """For the compiled core: ``rx``'s matches as a list of strings (see
    :func:`_alternatives`) and a 256-byte table of the bytes they start
    with; None when there is no such list, no compiled core, or case folding."""
    if _speedups is None or rx.flags & re.IGNORECASE:
        return None
    parsed = _parse_regex(rx)
    alternatives = None if parsed is None else _alternatives(parsed)
    if not alternatives or b"" in alternatives:
        return None
    starts = {a[0] for a in alternatives}
    return bytes(1 if i in starts else 0 for i in range(256)), tuple(alternatives)


class _Resumable:
    """A search of ``hdl.rbuf`` with ``find(rbuf, start)`` (None: not
    found) that, after failing, resumes ``width`` bytes (plus one, for an
    anchor or ``\\b`` that looks at the byte after) before the end of the
    buffer it saw, or at the start when ``width`` is None.  If anything
    took bytes off the front of the buffer since (another reader, or user
    code through ``hdl.rbuf``: see ``Handle._rin``), it starts over."""
    __slots__ = ("find", "width", "pos", "gen")

    def __init__(self, find: Callable[[bytearray, int], Any], width: int | None) -> None:
        self.find, self.width = find, width
        self.pos = self.gen = 0

    def __call__(self, hdl: Handle) -> Any:
        rbuf = hdl._rbuf
        front = hdl._rin - len(rbuf)
        found = self.find(rbuf, self.pos if front == self.gen else 0)
        if found is None and self.width is not None:
            self.pos, self.gen = max(0, len(rbuf) - self.width - 1), front
        else:
            self.reset()
        return found

    def reset(self) -> None:
        self.pos = 0


def _resumable(rx: re.Pattern[bytes]) -> _Resumable:
    """A resumable search for the end of ``rx``'s first match; in C for a
    regex's literals (:func:`_literal_search`)."""
    rx, _, width, literals = _regex_plan(rx)
    if literals is None:
        return _Resumable(functools.partial(_search_end, rx=rx), width)
    table, alternatives = literals
    return _Resumable(lambda buf, start: (
        _search_literal_end(buf, start, table, alternatives) if type(buf) is bytearray
        else _search_end(buf, start, rx)), width)


def _compile(rx: BytesRegex | None) -> Any:
    if rx is None or type(rx) is re.Pattern or hasattr(rx, "search"):
        return rx
    return re.compile(rx)


def _read_regex(hdl: Handle, cb: DataCb, accept: Any, reject: Any = None,
                skip: Any = None) -> Reader:
    """``cb(hdl, data)`` once ``accept`` (a bytes regex, compiled or not)
    matches the read buffer: ``data`` is everything up to the end of the
    match (with what ``skip`` matches before, which is taken out of the
    buffer as it arrives).  If ``reject`` matches first it is a non-fatal
    ``EBADMSG``.  As for a line's regex, the searches resume where they
    stopped when the regex has a bounded width (and otherwise start over,
    quadratic in the worst case as in Perl).
    """
    if reject is None and skip is None:  # a line ending in the regex, with its end
        rx, _, width, literals = _regex_plan(_compile(accept))
        return _RegexLineReader(cb, rx, width, literals, True).read
    accept, reject, skip = _compile(accept), _compile(reject), _compile(skip)
    data = bytearray()
    accepts = _resumable(accept)
    rejects = None if reject is None else _resumable(reject)

    def reader(hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        end = accepts(hdl)
        if end is not None:
            data.extend(rbuf[:end])
            del rbuf[:end]
            cb(hdl, bytes(data))
            return True
        if rejects is not None and rejects(hdl) is not None:
            hdl._error(_errno.EBADMSG)
            if hdl._fh is None:
                return False
        if skip is not None:
            m = skip.search(rbuf)
            if m is not None and m.end():
                data.extend(rbuf[:m.end()])
                del rbuf[:m.end()]
                accepts.reset()
                if rejects is not None:
                    rejects.reset()
        return False
    return reader


def _read_cbor(hdl: Handle, cb: ValueCb) -> Reader:
    """``cb(hdl, value)`` for the next CBOR data item.  The end of the item
    is found in one pass that resumes on each arrival (in C with the
    compiled core, ``_speedups.CborScan``), then the item is decoded once
    (cbor2).  A malformed item, or one nesting containers deeper than
    :data:`CBOR_MAX_DEPTH` (400), is a non-fatal ``EBADMSG`` and the read
    buffer is emptied (CBOR has no way to find the next item).
    """
    return _cbor_reader(hdl, cb)


def _cbor_reader(hdl: _HandleCore, cb: ValueCb) -> Reader:
    # (made field by field: with the compiled core a C call and a C type's
    # fields, which push_read makes for every item of a CBOR stream)
    reader = _CborReader.__new__(_CborReader)
    reader.cb = cb
    coder = hdl._cbor
    reader.decode = cbor2.loads if coder is None else getattr(coder, "decode", cbor2.loads)
    reader.scan = None
    return reader.read


#: Fresh scanners, [C, Python], shared by the CBOR readers: a reader whose item
#: is all there scans and takes it with one, which starts afresh after it; one
#: whose item arrives in pieces keeps the scanner (its place) and leaves a new one.
_FRESH_SCANS: list[Any] = [None if _speedups is None else _speedups.CborScan(), _CborScan()]


class _CborReader:
    """The reader of :func:`_read_cbor` (a class, so that the compiled core
    makes and runs it as a C type); made by :func:`_cbor_reader`."""
    __slots__ = ("cb", "scan", "decode")
    cb: ValueCb
    scan: Any      # None until an item arrives in pieces: then its own scanner
    decode: Callable[[bytes], Any]

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        if not rbuf:
            return False
        scan = self.scan
        if scan is None:
            scan = _FRESH_SCANS[0 if type(rbuf) is bytearray and _FRESH_SCANS[0] is not None
                                else 1]
        try:
            data = scan.take(rbuf, hdl._rin - len(rbuf))
            if data is None:
                if self.scan is None:   # keep the place: the shared scanner is this reader's now
                    self.scan = scan
                    _FRESH_SCANS[_FRESH_SCANS.index(scan)] = type(scan)()
                return False
            value = self.decode(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError,
                RecursionError, MemoryError):
            scan.reset()
            del rbuf[:]
            hdl._error(_errno.EBADMSG)
            return False
        self.cb(hdl, value)
        return True


for _name, _factory in (("chunk", _read_chunk), ("line", _read_line), ("regex", _read_regex),
                        ("cbor", _read_cbor)):
    register_read_type(_name, _factory)
