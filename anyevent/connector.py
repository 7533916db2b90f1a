"""Try a list of socket addresses in turn until one connects (port of IO::Async::Connector).

:class:`Connector` is what :func:`anyevent.socket.tcp_connect` and
``Handle(connect=...)`` are built on.  It either gets the addresses
(``addrs``/``addr``) or resolves ``host``/``service`` without blocking
(through :func:`anyevent.socket.resolve_sockaddr`: DNS, SRV, hosts file), then
for each address: ``socket()``, optional ``bind()`` to a local address,
``on_prepare``, non-blocking ``connect()``, and waits for the outcome (and
the optional timeout).  Every failed system call is reported to ``on_fail``;
when all addresses failed, ``on_connect_error`` gets the most significant
error: a ``connect`` error wins over ``bind``, which wins over ``socket``.

The connection attempt lives as long as the :class:`Connector` object:
dropping it or calling :meth:`Connector.cancel` stops the attempt and closes
the sockets in progress.

With the ``anyevent.connector`` logger at DEBUG, each step is logged: the
addresses resolved, each address tried, each failure with its errno, the
winner (nothing is formatted when DEBUG is off).

Beyond IO::Async, ``happy_eyeballs=True`` races the addresses as RFC 8305
describes: the address families are interleaved (the first address's family
first), and the next address is tried as soon as the current one fails or
``connection_attempt_delay`` seconds (default 0.25) have passed without an
answer, so a dead IPv6 (or IPv4) path costs a quarter second instead of a
full connect timeout.  The first socket that connects wins; the others are
closed.  :func:`anyevent.socket.tcp_connect` keeps trying in turn; to race,
use a Connector directly, e.g. ``Connector(host=h, service=s,
happy_eyeballs=True, on_connected=..., on_connect_error=...,
on_resolve_error=...)``.
"""

from __future__ import annotations

import errno
import functools
from functools import partial
import itertools
import logging
import os
import socket
from typing import Any, Callable, Mapping, Sequence, Union

from ._resolve import Target, resolve_sockaddr
from ._sockaddr import _sockaddr_text as _where, parse_address
from .reactor import loop, refcounted

#: An address as :func:`addrinfo` takes it: a 4-tuple or a dict (see there).
AddrSpec = Union[Sequence[Any], Mapping[str, Any]]
#: ``on_fail(syscall, ...)``: ``("socket", family, socktype, protocol, err)``,
#: ``("bind", sock, sockaddr, err)`` or ``("connect", sock, sockaddr, err)``.
FailCb = Callable[..., object]

__all__ = ["Connector", "addrinfo"]

_FAMILIES: dict[Any, Any] = {
    "inet": socket.AF_INET, "inet4": socket.AF_INET, "inet6": socket.AF_INET6,
             "unix": socket.AF_UNIX, 4: socket.AF_INET, 6: socket.AF_INET6}
_SOCKTYPES: dict[Any, Any] = {
    "stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM, "raw": socket.SOCK_RAW}
_IN_PROGRESS = (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK)
_log = logging.getLogger("anyevent.connector")
_DEBUG = logging.DEBUG


def _errno_text(exc: OSError) -> str:
    """``ECONNREFUSED (111): Connection refused`` for an OSError."""
    name = errno.errorcode.get(exc.errno or 0, "errno")
    return "%s (%s): %s" % (name, exc.errno, exc.strerror or exc)


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _family(value: str | int | None, ip: str | None = None) -> int:
    if value in (None, 0):
        return socket.AF_INET6 if ip and ":" in ip else socket.AF_INET
    family: int = _FAMILIES.get(value, value)
    return family


def _socktype(value: str | int | None) -> int:
    return _SOCKTYPES.get(value, value) or socket.SOCK_STREAM


def addrinfo(spec: AddrSpec, local: bool = False) -> Target:
    """Normalise an address to ``(family, socktype, protocol, sockaddr)``.

    ``spec`` is such a tuple already (family/socktype may be names), or a
    dict ``{"family": "inet"|"inet6"|"unix"|AF_*, "socktype":
    "stream"|"dgram"|"raw"|SOCK_*, "protocol": int, "ip": str, "port": int}``
    or ``{"family": "unix", "path": str}`` or with ``"addr"`` holding a Python
    socket address.  For a local address ``ip`` defaults to the wildcard and
    ``port`` to 0.  Raises :class:`ValueError` for anything else.
    """
    if isinstance(spec, (tuple, list)) and len(spec) == 4:
        fam, stype, proto, sa = spec
        return (_family(fam), _socktype(stype), proto or 0, sa)
    if not isinstance(spec, dict):
        raise ValueError("not an address: %r" % (spec,))
    fam = _family(spec.get("family"), spec.get("ip"))
    stype = _socktype(spec.get("socktype"))
    proto = spec.get("protocol") or 0
    if "addr" in spec:
        return (fam, stype, proto, spec["addr"])
    if fam == socket.AF_UNIX:
        return (fam, stype, proto, spec["path"])
    ip = spec.get("ip") or (("::" if fam == socket.AF_INET6 else "0.0.0.0") if local else None)
    if ip is None:
        raise ValueError("address without ip: %r" % (spec,))
    port = int(spec.get("port") or 0)
    return (fam, stype, proto, (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port))


def _interleave(peers: list[Target]) -> list[Target]:
    """Alternate address families, the first address's family first (RFC 8305 section 4)."""
    by_family: dict[int, list[Target]] = {}
    for peer in peers:
        by_family.setdefault(peer[0], []).append(peer)
    rows = itertools.zip_longest(*by_family.values())
    return [peer for row in rows for peer in row if peer is not None]


class Connector:
    """Connect to the first address that works; IO::Async::Connector's ``connect``.

    Addresses (one of):
      ``addrs`` -- list of addresses (see :func:`addrinfo` for the forms);
      ``addr`` -- one address;
      ``host``, ``service`` -- resolved by :func:`anyevent.socket.resolve_sockaddr`
      with ``family`` (0, 4, 6, ``AF_*`` or ``"inet"``/``"inet6"``),
      ``socktype`` (``"stream"`` default, ``"dgram"``, ``"raw"`` or ``SOCK_*``),
      ``protocol`` (``IPPROTO_*`` number) and ``flags`` (``socket.AI_NUMERICHOST``
      forbids name lookups).

    Local side (optional): ``local_addrs``/``local_addr`` (same forms), or
    ``local_host``/``local_service`` (resolved like ``host``).  Each remote
    address is tried with each local address of its family.

    Continuations (exactly one of the first two):
      ``on_connected(sock)`` -- the connected non-blocking :class:`socket.socket`;
      ``on_socket(sock)`` -- the socket, meant for datagram/raw sockets;
      ``on_connect_error(syscall, err)`` -- all addresses failed: ``syscall`` is
      ``"connect"``, ``"bind"`` or ``"socket"``, ``err`` the :class:`OSError`;
      ``on_resolve_error(message)`` -- the host/service did not resolve (required
      with ``host``);
      ``on_fail(...)`` -- optional, each failure as it happens:
      ``("socket", family, socktype, protocol, err)``,
      ``("bind", sock, sockaddr, err)`` or ``("connect", sock, sockaddr, err)``
      (a timeout is ``connect`` with ``ETIMEDOUT``).

    ``on_prepare(sock)`` -- optional, called before each connect; its return
    value, if true, is the timeout in seconds for that address; ``timeout`` is
    the default per-address timeout (``None``: the kernel's).

    Racing (RFC 8305 "Happy Eyeballs", off by default): with
    ``happy_eyeballs=True`` the addresses are reordered to alternate families,
    starting with the first address's, and a new one starts every
    ``connection_attempt_delay`` seconds (default 0.25) or as soon as the
    latest fails, while earlier ones keep connecting.  The first connected
    socket is delivered and the other sockets in flight are closed without an
    ``on_fail`` call (their addresses go back to the front of the queue, for
    :meth:`retry`).  ``on_fail`` and ``on_connect_error`` behave as without
    racing.

    Work starts from the loop, never inside the constructor; no callback runs
    before the constructor returns.  Raises :class:`TypeError` for missing
    continuations and :class:`ValueError` for malformed addresses.
    """

    _state: _Attempt | None = None

    def __init__(self, *, addrs: Sequence[AddrSpec] | None = None, addr: AddrSpec | None = None,
                 local_addrs: Sequence[AddrSpec] | None = None, local_addr: AddrSpec | None = None,
                 host: str | None = None, service: str | int | None = None,
                 local_host: str | None = None, local_service: str | int | None = None,
                 family: str | int = 0, socktype: str | int | None = None, protocol: int = 0,
                 flags: int = 0,
                 on_connected: Callable[[socket.socket], object] | None = None,
                 on_socket: Callable[[socket.socket], object] | None = None,
                 on_connect_error: Callable[[str, OSError], object] | None = None,
                 on_resolve_error: Callable[[str], object] | None = None,
                 on_fail: FailCb | None = None,
                 on_prepare: Callable[[socket.socket], float | None] | None = None,
                 timeout: float | None = None, happy_eyeballs: bool = False,
                 connection_attempt_delay: float = 0.25) -> None:
        refcounted(self)  # a cycle through the connector keeps it, as in Perl
        done = [cb for cb in (on_connected, on_socket) if cb is not None]
        if len(done) != 1:
            raise TypeError("Connector needs exactly one of on_connected, on_socket")
        if on_connect_error is None:
            raise TypeError("Connector needs on_connect_error")
        if host is not None and on_resolve_error is None:
            raise TypeError("Connector with host needs on_resolve_error")
        if addr is not None:
            addrs = [addr]
        if local_addr is not None:
            local_addrs = [local_addr]
        if host is None and addrs is None:
            raise TypeError("Connector needs addrs, addr or host")
        self._state = _Attempt(
            on_connected=on_connected, on_socket=on_socket,
            on_connect_error=on_connect_error, on_resolve_error=on_resolve_error,
            on_fail=on_fail, on_prepare=on_prepare, timeout=timeout,
            delay=connection_attempt_delay if happy_eyeballs else None)
        st = self._state
        st.peers = None if addrs is None else [addrinfo(a) for a in addrs]
        st.locals = None if local_addrs is None else [addrinfo(a, True) for a in local_addrs]
        st.lookup = (host, service, local_host, local_service, family, socktype, protocol, flags)
        loop.postpone(st.start)

    def retry(self) -> None:
        """After ``on_connected``: give up this connection and try the next address.

        The socket already delivered stays the caller's.  When no address is
        left, ``on_connect_error`` runs with the most significant earlier
        error (``ECONNABORTED`` if there was none).
        """
        if self._state is not None:
            self._state.next()

    def cancel(self) -> None:
        """Stop the attempt, close the socket in progress; no callback runs after this."""
        st, self._state = self._state, None
        if st is not None:
            st.cancel()

    __del__ = cancel


class _Attempt:
    """The mutable state of one connection attempt, owned by its Connector.

    ``delay`` is ``None`` to try addresses one at a time, or the seconds
    between starts when racing.
    """

    # the Connector's callbacks (None once cancelled: a callback that gets here
    # after cancel() is a bug, and fails loudly)
    on_connected: Any
    on_socket: Any
    on_connect_error: Any
    on_resolve_error: Any
    on_fail: FailCb | None
    on_prepare: Callable[[socket.socket], float | None] | None
    timeout: float | None
    delay: float | None
    peers: Any    # list[Target]; None until resolved when there is a host
    locals: list[Target] | None
    lookup: tuple[Any, ...]
    pending: int
    queue: list[tuple[Target, Target | None]]
    tries: list[_Try]
    pacer: Any
    errors: dict[str, OSError]

    def __init__(self, **callbacks: Any) -> None:
        self.__dict__.update(callbacks)
        self.cancelled = False
        self.queue = []            # (peer addrinfo, local addrinfo or None), next at the end
        self.tries = []            # _Try in flight: at most one unless racing
        self.pacer = None          # racing: timer starting the next address
        self.errors = {}           # syscall -> last OSError

    # -- resolution ---------------------------------------------------------

    def start(self) -> None:
        if self.cancelled:
            return
        host, service, lhost, lservice, family, socktype, protocol, flags = self.lookup
        fam = {socket.AF_INET: 4, socket.AF_INET6: 6, "inet": 4, "inet6": 6}.get(family, family)
        stype = _socktype(socktype)
        proto = {socket.IPPROTO_UDP: "udp", 0: "udp" if stype == socket.SOCK_DGRAM else "tcp"}.get(
            protocol, "tcp")
        jobs: list[tuple[str, list[tuple[Any, Any]]]] = []
        if host is not None:
            if flags & socket.AI_NUMERICHOST and parse_address(str(host)) is None:
                return self.resolve_error("%s: not a numeric host address" % host)
            jobs.append(("peers", [(host, service)]))
        if self.locals is None and (lhost is not None or lservice is not None):
            hosts = [lhost] if lhost is not None else ["0.0.0.0", "::"]
            jobs.append(("locals", [(h, lservice or 0) for h in hosts]))
        self.pending = sum(len(j[1]) for j in jobs)
        if not self.pending:
            return self.resolved()
        for attr, specs in jobs:
            setattr(self, attr, [])
            for h, s in specs:
                try:
                    resolve_sockaddr(str(h), s, proto, fam, stype, partial(self._collect, attr))
                except ValueError as exc:
                    return self.resolve_error(str(exc))

    def _collect(self, attr: str, *targets: Target) -> None:
        getattr(self, attr).extend(targets)
        self.pending -= 1
        if not self.pending and not self.cancelled:
            if not self.peers:
                host, service = self.lookup[:2]
                return self.resolve_error("%s: no address found for service %s" % (host, service))
            self.resolved()

    def resolve_error(self, message: str) -> None:
        _log.debug("resolve failed: %s", message)
        cb = self.on_resolve_error
        self.cancel()
        cb(message)

    def resolved(self) -> None:
        if _log.isEnabledFor(_DEBUG):
            host, service = self.lookup[:2]
            _log.debug("%s: %d address(es) to try: %s",
                       "addresses given" if host is None else "%s port %s" % (host, service),
                       len(self.peers), ", ".join(_where(p[3]) for p in self.peers))
        for peer in self.peers if self.delay is None else _interleave(self.peers):
            if self.locals is None:
                self.queue.append((peer, None))
            else:
                self.queue.extend((peer, l) for l in self.locals if l[0] == peer[0])
        self.queue.reverse()  # pop() from the end
        self.next()

    # -- connecting ----------------------------------------------------------

    def fail(self, syscall: str, *args: Any) -> None:
        self.errors[syscall] = args[-1]
        if _log.isEnabledFor(_DEBUG):
            what = _where(args[1]) if syscall in ("bind", "connect") else "family %s" % args[0]
            _log.debug("%s %s failed: %s", syscall, what, _errno_text(args[-1]))
        if self.on_fail is not None:
            self.on_fail(syscall, *args)

    def next(self) -> None:
        """Start the next queued address; when racing, schedule the one after it."""
        while self.queue and not self.cancelled:
            if self.launch(self.queue.pop()):
                if self.delay is not None and self.queue:
                    loop.now_update()  # the delay counts from this attempt's start
                    self.pacer = loop.timer(self.delay, 0, self.next)
                return
        if not self.tries and not self.cancelled:
            self.give_up()

    def launch(self, entry: tuple[Target, Target | None]) -> bool:
        """socket(), bind(), on_prepare, connect() for one queue entry; True if in flight."""
        (fam, stype, proto, sa), local = entry
        try:
            sock = socket.socket(fam, stype, proto)
        except OSError as exc:
            self.fail("socket", fam, stype, proto, exc)
            return False
        sock.setblocking(False)
        if local is not None:
            try:
                sock.bind(local[3])
            except OSError as exc:
                self.fail("bind", sock, local[3], exc)
                sock.close()
                return False
        timeout = (self.on_prepare(sock) if self.on_prepare else None) or self.timeout
        err = sock.connect_ex(sa)
        if err not in _IN_PROGRESS:
            self.fail("connect", sock, sa, _oserror(err))
            sock.close()
            return False
        if _log.isEnabledFor(_DEBUG):
            _log.debug("connect %s: trying (fd %d)", _where(sa), sock.fileno())
        t = _Try(entry, sock, sa)
        t.watch = loop.io(sock, 1, functools.partial(self.writable, t))
        if timeout:
            loop.now_update()  # count from now, not from the start of this iteration
            t.timer = loop.timer(timeout, 0, functools.partial(
                self.failed_connect, t, _oserror(errno.ETIMEDOUT)))
        self.tries.append(t)
        return True

    def writable(self, t: _Try) -> None:
        err = t.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            return  # spurious wake-up
        if err:
            return self.failed_connect(t, _oserror(err))
        self.tries.remove(t)
        t.watch = t.timer = self.pacer = None
        for loser in reversed(self.tries):   # racing: the others go back to the queue front
            loser.close()
            self.queue.append(loser.entry)
        self.tries = []
        if _log.isEnabledFor(_DEBUG):
            _log.debug("connect %s: connected from %s", _where(t.sa), _where(t.sock.getsockname()))
        if self.on_connected is not None:
            self.on_connected(t.sock)
        else:
            self.on_socket(t.sock)

    def failed_connect(self, t: _Try, exc: OSError) -> None:
        self.tries.remove(t)
        self.fail("connect", t.sock, t.sa, exc)
        t.close()
        self.next()

    def give_up(self) -> None:
        for syscall in ("connect", "bind", "socket"):
            if syscall in self.errors:
                err = self.errors[syscall]
                break
        else:
            syscall, err = "connect", _oserror(errno.ECONNABORTED)
        if _log.isEnabledFor(_DEBUG):
            _log.debug("giving up: every address failed; reporting %s: %s", syscall, _errno_text(err))
        cb = self.on_connect_error
        self.cancel()
        cb(syscall, err)

    def cancel(self) -> None:
        self.cancelled = True
        self.pacer = None
        self.queue = []
        for t in self.tries:
            t.close()
        self.tries = []
        for name in ("on_connected", "on_socket", "on_connect_error",
                     "on_resolve_error", "on_fail", "on_prepare"):
            setattr(self, name, None)


class _Try:
    """One socket connecting to one address."""

    __slots__ = ("entry", "sock", "sa", "watch", "timer")

    entry: tuple[Target, Target | None]
    sock: socket.socket
    sa: Any
    watch: Any
    timer: Any

    def __init__(self, entry: tuple[Target, Target | None], sock: socket.socket, sa: Any) -> None:
        self.entry, self.sock, self.sa = entry, sock, sa
        self.watch = self.timer = None

    def close(self) -> None:
        self.watch = self.timer = None
        self.sock.close()
