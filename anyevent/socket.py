"""IPv4/IPv6/Unix address helpers and non-blocking TCP (port of AnyEvent::Socket).

Host addresses travel in *network form*, as in Perl: 4 bytes for IPv4,
16 bytes for IPv6, and the 2-byte token :data:`UNIX_TOKEN` for Unix domain
sockets (what ``parse_unix("unix/")`` returns).  Socket addresses
(``pack_sockaddr``, ``resolve_sockaddr``) are what Python's :mod:`socket`
accepts: ``(ip, port)``, ``(ip6, port, 0, 0)`` or a path string.

Nothing here blocks the loop: names are resolved through :mod:`anyevent.dns`
and ``/etc/hosts`` (or ``ANYEVENT_HOSTS``), never with ``getaddrinfo``.

Perl's ``$!`` after a failed :func:`tcp_connect` is :func:`last_error`.
"""

from __future__ import annotations

import errno
import os
import socket
import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol, cast
from ._sockaddr import (PROTO_BYNAME, PROTOCOL, UNIX_TOKEN, address_family, aton, format_address,
                        format_hostport, format_ip, format_ipv4, format_ipv6, getprotobyname,
                        ntoa, pack_sockaddr, parse_address, parse_hostport, parse_ip, parse_ipv4,
                        parse_ipv6, parse_unix, sockaddr_family, unpack_sockaddr)
from ._resolve import AddressesCb, Target, TargetsCb, inet_aton, resolve_sockaddr
from .connector import Connector
from .reactor import loop
from .util import Guard, guard

if TYPE_CHECKING:
    from .reactor import IOWatcher, TimerWatcher

#: ``tcp_connect``'s ``prepare_cb(sock) -> connect timeout in seconds`` (falsy: the kernel's).
PrepareCb = Callable[[socket.socket], "float | None"]
#: ``tcp_server``'s ``accept_cb(sock, host, port)`` (port: an int, the path for Unix sockets).
AcceptCb = Callable[[socket.socket, str, Any], object]
#: ``tcp_server``/``tcp_bind``'s ``prepare_cb(sock, host, port) -> backlog`` (falsy: 128).
ListenPrepareCb = Callable[[socket.socket, str, Any], "int | None"]


class ConnectCb(Protocol):
    """``cb(sock, host, port, retry)`` on success, ``cb()`` on failure (see :func:`last_error`);
    ``port`` is an int, or the path for a Unix socket."""

    def __call__(self, sock: socket.socket = ..., host: str = ..., port: Any = ...,
                 retry: Callable[[], None] = ..., /) -> object: ...

__all__ = [
    "parse_ipv4", "parse_ipv6", "parse_unix", "parse_address", "aton",
    "format_ipv4", "format_ipv6", "format_address", "ntoa", "address_family",
    "parse_hostport", "format_hostport", "inet_aton", "pack_sockaddr",
    "unpack_sockaddr", "resolve_sockaddr", "tcp_connect", "tcp_server",
    "tcp_bind", "tcp_nodelay", "tcp_congestion", "last_error", "PROTOCOL",
    "UNIX_TOKEN", "getprotobyname", "parse_ip", "format_ip", "sockaddr_family",
]


# ---------------------------------------------------------------------------
# tcp_connect, tcp_server, tcp_bind
# ---------------------------------------------------------------------------

_last_error: OSError | None = None


def last_error() -> OSError | None:
    """The :class:`OSError` behind the last failed :func:`tcp_connect` (Perl's ``$!``).

    Read it inside the failure callback ``cb()``: ``err.errno`` is e.g.
    ``errno.ECONNREFUSED``, ``errno.ETIMEDOUT``, or ``errno.ENXIO`` when the
    name did not resolve; ``err.strerror`` is ``os.strerror(err.errno)``.
    ``None`` before any failure.
    """
    return _last_error


def _set_last_error(err: OSError) -> None:
    global _last_error
    _last_error = err


def tcp_connect(host: str, service: str | int, cb: ConnectCb,
                prepare_cb: PrepareCb | None = None) -> Connector:
    """Connect to ``host``/``service`` without blocking; return a guard.

    ``host``: name, address or ``"unix/"``; ``service``: port, service name,
    ``"name=port"`` or (for Unix) a path.  Every resolved target is tried in
    turn (SRV and hosts file included, see :func:`resolve_sockaddr`).
    ``prepare_cb(sock)`` is called before each connect; its return value is the
    connect timeout in seconds (falsy: the kernel's).  On success
    ``cb(sock, host, port, retry)``: ``sock`` is a non-blocking
    :class:`socket.socket`, ``host`` the peer address text, ``retry()`` moves on
    to the next target (``sock`` stays yours).  On failure ``cb()`` with no
    arguments and the reason in :func:`last_error` (``ENXIO``: no address).
    ``cb`` never runs before ``tcp_connect`` returns.  Dropping or
    ``cancel()``-ing the returned guard (a :class:`anyevent.connector.Connector`)
    aborts the attempt and closes its socket.  Port of ``tcp_connect``.
    """
    def connected(sock: socket.socket) -> None:
        peer_port, peer_host = unpack_sockaddr(sock.getpeername())
        cb(sock, cast(str, format_address(peer_host)), peer_port,
           ref().retry)  # type: ignore[union-attr]  # the connector is alive while it calls back

    def failed(syscall: str, err: OSError) -> None:
        _set_last_error(err)
        cb()

    conn = Connector(
        host=host, service=service, on_prepare=prepare_cb, on_connected=connected,
        on_connect_error=failed,
        on_resolve_error=lambda message: failed("resolve", OSError(errno.ENXIO, os.strerror(errno.ENXIO))))
    ref = weakref.ref(conn)  # the callbacks must not keep the guard alive
    return conn


def _bind_listener(host: str | None, service: str | int | None,
                   prepare_cb: ListenPrepareCb | None, reuse_port: bool = False,
                   ) -> tuple[socket.socket, Callable[[], None] | None]:
    """Create, bind and listen; return (sock, cleanup-guard-callback)."""
    if host is None:
        host = "::" if PROTOCOL.get("ipv6", 0) > PROTOCOL.get("ipv4", 0) else "0"
    ipn = parse_address(str(host))
    if ipn is None:
        raise ValueError("tcp_bind: cannot parse %r as host address" % (host,))
    af = address_family(ipn)
    sock = socket.socket(af, socket.SOCK_STREAM)
    unlink = None
    try:
        path: str | int
        if af == socket.AF_UNIX:
            path = str(service)
            if os.path.lexists(path):
                os.unlink(path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # before bind: the kernel checks it there
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            service = service or 0
            path = int(service) if str(service).isdigit() else socket.getservbyname(str(service), "tcp")
        sock.bind(pack_sockaddr(path, ipn))
        if af == socket.AF_UNIX:
            ino = os.lstat(str(path)).st_ino
            unlink = lambda: _unlink_if_same(str(path), ino)
        sock.setblocking(False)
        backlog: int | None = 0
        if prepare_cb is not None:
            port, lhost = unpack_sockaddr(sock.getsockname())
            backlog = prepare_cb(sock, cast(str, format_address(lhost)), port)
        sock.listen(backlog or 128)
    except BaseException:
        sock.close()
        raise
    return sock, unlink


def _unlink_if_same(path: str, ino: int) -> None:
    try:
        if os.lstat(path).st_ino == ino:
            os.unlink(path)
    except OSError:
        pass


def tcp_bind(host: str | None, service: str | int | None,
             done_cb: Callable[[socket.socket], object],
             prepare_cb: ListenPrepareCb | None = None, *, reuse_port: bool = False) -> Guard:
    """Create a listening socket and pass it to ``done_cb(sock)``; return a guard.

    Same arguments as :func:`tcp_server`; ``accept`` is left to you.  Dropping
    the guard closes the socket (and unlinks a Unix socket path).  Raises
    :class:`OSError`/:class:`ValueError` on errors.  Port of ``tcp_bind``.
    """
    sock, unlink = _bind_listener(host, service, prepare_cb, reuse_port)

    def cleanup() -> None:
        sock.close()
        if unlink:
            unlink()
    g = guard(cleanup)
    done_cb(sock)
    return g


#: Seconds an accept loop pauses when the process runs out of descriptors.
ACCEPT_BACKOFF = 0.1


class _Server:
    """The accept loop behind :func:`tcp_server`."""

    def __init__(self, sock: socket.socket, unlink: Callable[[], None] | None, accept_cb: AcceptCb,
                 backoff_cb: Callable[[OSError], object] | None) -> None:
        self.sock: socket.socket | None = sock
        self.unlink, self.accept_cb = unlink, accept_cb
        self.backoff_cb = backoff_cb
        self.unix = sock.family == socket.AF_UNIX
        self.pause: TimerWatcher | None = None
        self.watch: IOWatcher | None = loop.io(sock, 0, self._accept)

    def _accept(self) -> None:
        while self.sock is not None:
            try:
                fh, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # out of descriptors: stop watching for a moment instead of spinning
                self.watch = None
                self.pause = loop.timer(ACCEPT_BACKOFF, 0, self._resume)
                if self.backoff_cb is not None:
                    self.backoff_cb(exc)
                return
            fh.setblocking(False)
            port, host = unpack_sockaddr(peer) if not self.unix else (peer, UNIX_TOKEN)
            self.accept_cb(fh, cast(str, format_address(host)), port)

    def _resume(self) -> None:
        self.pause = None
        if self.sock is not None:
            self.watch = loop.io(self.sock, 0, self._accept)

    def close(self) -> None:
        self.watch = self.pause = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            if self.unlink:
                self.unlink()


def tcp_server(host: str | None, service: str | int | None, accept_cb: AcceptCb,
               prepare_cb: ListenPrepareCb | None = None,
               backoff_cb: Callable[[OSError], object] | None = None, *,
               reuse_port: bool = False) -> Guard:
    """Listen on ``host``/``service`` and call ``accept_cb(sock, host, port)``
    for every connection (non-blocking sockets; for Unix, host ``"unix/"``).

    ``host``: IPv4/IPv6 address, ``None`` (``0`` or ``::`` by
    :data:`PROTOCOL`) or ``"unix/"`` with ``service`` an absolute path (an
    existing file there is unlinked first).  ``service``: port, service name,
    0/``None`` for an ephemeral port.  ``prepare_cb(sock, host, port)`` runs
    before ``listen`` and may return the backlog (default 128).  Raises
    :class:`OSError`/:class:`ValueError` before listening on errors.  When
    the process is out of descriptors (``EMFILE``) accepting pauses for
    :data:`ACCEPT_BACKOFF` seconds rather than spinning, and
    ``backoff_cb(exc)``, if given, is called with the :class:`OSError` at
    each such pause (not in Perl: a server's hook to log it).
    ``reuse_port=True`` (not in Perl either) sets ``SO_REUSEPORT`` before
    binding, so that several processes can listen on one TCP port and the
    kernel spreads new connections among them (``prepare_cb`` runs after
    ``bind``, too late for it).  Returns a
    guard; dropping it closes the listener (and unlinks its Unix path).
    Port of ``tcp_server``.
    """
    sock, unlink = _bind_listener(host, service, prepare_cb, reuse_port)
    server = _Server(sock, unlink, accept_cb, backoff_cb)
    return guard(server.close)


def tcp_nodelay(fh: socket.socket, enable: bool) -> bool:
    """Set ``TCP_NODELAY`` (disable Nagle) on or off; ``False`` on error."""
    try:
        fh.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enable else 0)
    except OSError:
        return False
    return True


def tcp_congestion(fh: socket.socket, algorithm: str) -> bool:
    """Set the congestion control algorithm (``TCP_CONGESTION``, e.g. ``"cubic"``,
    ``"reno"``); ``False`` on error or where the option does not exist.
    """
    option = getattr(socket, "TCP_CONGESTION", None)
    if option is None:
        return False
    try:
        fh.setsockopt(socket.IPPROTO_TCP, option, algorithm.encode())
    except OSError:
        return False
    return True
