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

import errno
import os
import re
import socket
import struct
import weakref

from . import dns as _dns
from . import connector as _connector
from .reactor import loop
from .util import guard, idn_to_ascii

__all__ = [
    "parse_ipv4", "parse_ipv6", "parse_unix", "parse_address", "aton",
    "format_ipv4", "format_ipv6", "format_address", "ntoa", "address_family",
    "parse_hostport", "format_hostport", "inet_aton", "pack_sockaddr",
    "unpack_sockaddr", "resolve_sockaddr", "tcp_connect", "tcp_server",
    "tcp_bind", "tcp_nodelay", "tcp_congestion", "last_error", "PROTOCOL",
    "UNIX_TOKEN", "getprotobyname", "parse_ip", "format_ip", "sockaddr_family",
]

#: The network-form "address" of Unix domain sockets (Perl's ``pack "S", AF_UNIX``).
UNIX_TOKEN = struct.pack("=H", socket.AF_UNIX)


def _protocols(spec):
    """Parse ``ANYEVENT_PROTOCOLS`` ("ipv4,ipv6"): earlier entries get higher numbers."""
    names = [p for p in re.split(r"\s*,\s*", spec.strip()) if p]
    return {name: len(names) - i for i, name in enumerate(names)}


#: Protocol preference, ``{"ipv4": 2, "ipv6": 1}`` by default: a missing
#: protocol is not used, a higher number is preferred (``%AnyEvent::PROTOCOL``).
PROTOCOL = _protocols(os.environ.get("ANYEVENT_PROTOCOLS") or "ipv4,ipv6")

# ---------------------------------------------------------------------------
# address parsing and formatting
# ---------------------------------------------------------------------------

_IPV4_RE = re.compile(r"(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)"
                      r"(?:\.(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)){0,3}\Z")


def _num(part):
    if part[:2] in ("0x", "0X"):
        return int(part, 16)
    return int(part, 8) if part[0] == "0" else int(part)


def parse_ipv4(text):
    """Parse a dotted IPv4 address in any POSIX form (``10.1``, ``0x7f.1``,
    ``0377.0.0.1``...) into 4 bytes; ``None`` if it does not parse.
    Port of ``parse_ipv4``.
    """
    if not _IPV4_RE.match(text):
        return None
    parts = [_num(p) for p in text.split(".")]
    if any(p >= 256 for p in parts[:-1]) or parts[-1] >= 2 ** (8 * (5 - len(parts))):
        return None
    value = parts[-1]
    for i, p in enumerate(parts[:-1]):
        value += p << (24 - 8 * i)
    return struct.pack("!I", value)


_HEX4_RE = re.compile(r"[0-9a-fA-F]{1,4}\Z")


def parse_ipv6(text):
    """Parse an IPv6 address (RFC 2373 forms, IPv4 tail allowed; a plain IPv4
    address becomes v4-mapped) into 16 bytes; ``None`` if it does not parse.
    Scope ids are not supported.  Port of ``parse_ipv6``.
    """
    n = text.count(":")
    if n < 2 or n > 8:
        ipn = None if n else parse_ipv4(text)
        return _V4MAPPED + ipn if ipn else None
    head, sep, tail = text.partition("::")
    if not sep:
        head, tail = "", head
    h = head.split(":") if head else []
    t = tail.split(":") if (tail or not sep) else []
    if t and "." in t[-1]:
        if n > 6:
            return None
        ipn = parse_ipv4(t.pop())
        if ipn is None:
            return None
        t += ["%x" % w for w in struct.unpack("!HH", ipn)]
    if len(h) + len(t) != 8 and not sep:
        return None
    if len(h) + len(t) > 8 or not all(_HEX4_RE.match(p) for p in h + t):
        return None
    words = [int(p, 16) for p in h] + [0] * (8 - len(h) - len(t)) + [int(p, 16) for p in t]
    return struct.pack("!8H", *words)


def parse_unix(text):
    """Return :data:`UNIX_TOKEN` for ``"unix/"``, else ``None`` (``parse_unix``)."""
    return UNIX_TOKEN if text == "unix/" else None


def parse_address(text):
    """Parse an IPv4 or IPv6 address or ``"unix/"`` into network form.

    A v4-mapped IPv6 address (``::ffff:1.2.3.4``) gives the 4 IPv4 bytes.
    ``None`` if ``text`` is none of these.  Port of ``parse_address``/``aton``.
    """
    ipn = parse_ipv6(text)
    if ipn is None:
        return parse_unix(text)
    return ipn[12:] if ipn[:12] == _V4MAPPED else ipn


aton = parse_address

#: The old name of :func:`parse_address` (AnyEvent 4.x/5.x; 7.17 still exports
#: ``parse_ip`` but no longer defines it).
parse_ip = parse_address

_V4MAPPED = b"\0" * 10 + b"\xff\xff"
_ZERO_RUNS = [re.compile(r"(?:^|:)" + ":".join(["0"] * k) + r"(?:$|:)") for k in range(7, 1, -1)]


def format_ipv4(ipn):
    """4 bytes to dotted quad text (``format_ipv4``)."""
    return "%d.%d.%d.%d" % tuple(ipn)


def format_ipv6(ipn):
    """16 bytes to IPv6 text, with Perl's rules (longest zero run as ``::``,
    IPv4 tails for v4-compatible, v4-mapped and v4-translated addresses).
    Port of ``format_ipv6``.
    """
    if ipn[:8] == b"\0" * 8:
        if ipn == b"\0" * 16:
            return "::"
        if ipn == b"\0" * 15 + b"\1":
            return "::1"
        prefix = {b"\0" * 4: "::", b"\0\0\xff\xff": "::ffff:", b"\xff\xff\0\0": "::ffff:0:"}.get(ipn[8:12])
        if prefix is not None:
            return prefix + format_ipv4(ipn[12:])
    text = "%x:%x:%x:%x:%x:%x:%x:%x" % struct.unpack("!8H", ipn)
    for run in _ZERO_RUNS:
        text, n = run.subn("::", text, count=1)
        if n:
            break
    return text


def format_address(ipn):
    """Network form to text: IPv4, IPv6 (v4-mapped shown as IPv4) or ``"unix/"``;
    ``None`` for anything else.  Port of ``format_address``/``ntoa``.
    """
    if len(ipn) == 4:
        return format_ipv4(ipn)
    if len(ipn) == 16:
        return format_ipv4(ipn[12:]) if ipn[:12] == _V4MAPPED else format_ipv6(ipn)
    return "unix/" if ipn == UNIX_TOKEN else None


ntoa = format_address

#: The old name of :func:`format_address` (AnyEvent 4.x/5.x; 7.17 still exports
#: ``format_ip`` but no longer defines it).
format_ip = format_address


def address_family(ipn):
    """``AF_INET``, ``AF_INET6`` or ``AF_UNIX`` for a network-form address."""
    if len(ipn) == 4:
        return socket.AF_INET
    if len(ipn) == 16:
        return socket.AF_INET6
    return struct.unpack("=H", ipn)[0]


_HOSTPORT_V6 = re.compile(r"\s*([0-9a-fA-F:]*:[0-9a-fA-F:]*:[0-9a-fA-F.:]*)")
_HOSTPORT_HOST = re.compile(r"\s*(?:\[([^\[\]]+)\]|([^\[\]: ]+))")
_HOSTPORT_PORT = re.compile(r"(?:\s+|:|#)([^:\s]+)\s*\Z")
_TRAILING_SPACE = re.compile(r"\s*\Z")


def parse_hostport(text, default_service=None):
    """Split ``"host:port"`` (also ``[v6]:port``, ``v6 port``, ``host#port``,
    ``unix/:path``, ``/path``) into ``(host, service)``, both ``str``.

    ``default_service`` is used when the string has no port.  Returns
    ``None`` when no service was found or the string does not parse.
    Port of ``parse_hostport``.
    """
    text = str(text)
    if text.startswith("/"):
        return ("unix/", text)
    m = _HOSTPORT_V6.match(text)
    if m:
        host = m.group(1)
        if parse_ipv6(host) is None:
            return None
    else:
        m = _HOSTPORT_HOST.match(text)
        if not m:
            return None
        host = m.group(1) or m.group(2)
    rest = text[m.end():]
    pm = _HOSTPORT_PORT.match(rest)
    if pm:
        port = pm.group(1)
    elif _TRAILING_SPACE.match(rest) and default_service not in (None, ""):
        port = str(default_service)
    else:
        return None
    if ":" in host and parse_ipv6(host) is None:
        return None
    return (host, port)


def format_hostport(host, port=None):
    """Inverse of :func:`parse_hostport`: brackets hosts containing ``:``."""
    if ":" in host:
        host = "[%s]" % host
    return host if port in (None, "") else "%s:%s" % (host, port)


def _sockaddr_text(sa):
    """A Python socket address as text for logs and reprs: ``host:port``,
    ``[v6]:port``, a Unix path (quoted), or ``-`` for an unnamed socket."""
    if isinstance(sa, tuple):
        return format_hostport(sa[0], sa[1])
    return repr(sa) if sa else "-"


# ---------------------------------------------------------------------------
# socket addresses
# ---------------------------------------------------------------------------

def pack_sockaddr(service, host):
    """Build the Python socket address for port ``service`` on network-form
    ``host`` (for Unix, ``service`` is the path).  Raises :class:`ValueError`
    for an invalid host.  Port of ``pack_sockaddr``.
    """
    af = address_family(host)
    if af == socket.AF_INET:
        return (format_ipv4(host), int(service))
    if af == socket.AF_INET6:
        return (socket.inet_ntop(socket.AF_INET6, host), int(service), 0, 0)
    if af == socket.AF_UNIX:
        return service
    raise ValueError("pack_sockaddr: invalid host")


def sockaddr_family(sa):
    """The address family (``socket.AF_INET``, ``AF_INET6`` or ``AF_UNIX``,
    an int) of a socket address: a Python one as :func:`pack_sockaddr`
    builds (``(ip, port)``, ``(ip6, port, flow, scope)``, a path str/bytes),
    or a raw C ``struct sockaddr`` given as a :class:`bytearray` or
    :class:`memoryview` (family in the first two bytes, native order).
    Raises :class:`ValueError` for anything else.  Port of
    ``AnyEvent::Socket::sockaddr_family`` (Perl's ``Socket::sockaddr_family``).
    """
    if isinstance(sa, (bytearray, memoryview)):
        if len(sa) < 2:
            raise ValueError("sockaddr_family: sockaddr too short")
        return struct.unpack_from("=H", sa)[0]
    if isinstance(sa, (str, bytes)):
        return socket.AF_UNIX
    if isinstance(sa, tuple) and len(sa) == 2 and isinstance(sa[0], str):
        return socket.AF_INET
    if isinstance(sa, tuple) and len(sa) == 4 and isinstance(sa[0], str):
        return socket.AF_INET6
    raise ValueError("sockaddr_family: not a socket address: %r" % (sa,))


#: Protocol numbers known without /etc/protocols (Perl's ``%PROTO_BYNAME``).
PROTO_BYNAME = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "icmp": socket.IPPROTO_ICMP}


def getprotobyname(name):
    """``(name, NAME, number)`` for a protocol name (case-insensitive;
    ``("tcp", "TCP", 6)``), or ``None`` if it is unknown.  tcp, udp and icmp
    are known even without ``/etc/protocols`` (:data:`PROTO_BYNAME`).
    Port of ``AnyEvent::Socket::getprotobyname`` (Perl returns the empty list
    where this returns ``None``).
    """
    name = name.lower()
    proton = PROTO_BYNAME.get(name)
    if proton is None:
        try:
            proton = socket.getprotobyname(name)
        except OSError:
            return None
    return (name, name.upper(), proton)


def unpack_sockaddr(sa):
    """``(service, host)`` from a Python socket address: ``(port, 4 or 16
    bytes)`` for IP, ``(path, UNIX_TOKEN)`` for Unix.  Port of ``unpack_sockaddr``.
    """
    if isinstance(sa, (str, bytes)):
        return (os.fsdecode(sa), UNIX_TOKEN)
    if len(sa) == 2:
        return (sa[1], socket.inet_pton(socket.AF_INET, sa[0]))
    return (sa[1], socket.inet_pton(socket.AF_INET6, sa[0].partition("%")[0]))


def inet_aton(name, cb):
    """Resolve ``name`` (an address, ``localhost`` or a DNS name) and call
    ``cb(*addresses)`` with network-form addresses, preferred protocol first.
    Port of ``inet_aton``.
    """
    ipn = parse_ipv4(name) or parse_ipv6(name)
    if ipn:
        return cb(ipn)
    if name == "localhost":
        return cb(socket.inet_aton("127.0.0.1"), b"\0" * 15 + b"\1")
    results = {}
    lookups = [(p, f, parse) for p, f, parse in (("ipv4", _dns.a, parse_ipv4),
                                                ("ipv6", _dns.aaaa, parse_ipv6)) if p in PROTOCOL]

    def done():
        if len(results) == len(lookups):
            ordered = sorted(results.items(), key=lambda kv: -PROTOCOL[kv[0]])
            cb(*[ipn for _, ipns in ordered for ipn in ipns])

    for proto, lookup, parse in lookups:
        lookup(name, lambda *addrs, proto=proto, parse=parse: (
            results.__setitem__(proto, [parse(a) for a in addrs]), done()))
    if not lookups:
        cb()


# ---------------------------------------------------------------------------
# /etc/hosts
# ---------------------------------------------------------------------------

_hosts = {}          # name -> ([ipv4 network addresses], [ipv6 network addresses])
_hosts_stamp = None  # (path, mtime) of the loaded file


def _parse_hosts(text):
    hosts = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].lower().split()
        if len(fields) < 2:
            continue
        ipn = parse_ipv4(fields[0])
        slot = 0
        if ipn is None:
            ipn, slot = parse_ipv6(fields[0]), 1
        if ipn is None:
            continue
        for name in fields[1:]:
            hosts.setdefault(name, ([], []))[slot].append(ipn)
    return hosts


def _hosts_lookup(name, slot):
    """Addresses of ``name`` from the hosts file (reloaded when its mtime changes).

    The file is ``ANYEVENT_HOSTS`` or ``/etc/hosts``; a local file read, as
    Perl does without IO::AIO.
    """
    global _hosts, _hosts_stamp
    path = os.environ.get("ANYEVENT_HOSTS") or "/etc/hosts"
    try:
        stamp = (path, os.stat(path).st_mtime_ns)
        if stamp != _hosts_stamp:
            with open(path, encoding="latin-1") as f:
                _hosts = _parse_hosts(f.read())
            _hosts_stamp = stamp
    except OSError:
        _hosts, _hosts_stamp = {}, None
    entry = _hosts.get(name)
    return entry[slot] if entry else []


# ---------------------------------------------------------------------------
# resolve_sockaddr
# ---------------------------------------------------------------------------

def _service_port(service, proto):
    """Split a service into (name for SRV or None, port).  Raises ValueError."""
    service = str(service)
    m = re.match(r"(\S+)=(\d+)\Z", service)
    if m:
        return m.group(1), int(m.group(2))
    if service.isdigit():
        return None, int(service)
    try:
        return service, socket.getservbyname(service, proto)
    except OSError:
        raise ValueError("%s/%s: service unknown" % (service, proto)) from None


def resolve_sockaddr(node, service, proto, family, type_, cb):
    """Resolve ``node`` and ``service`` into socket addresses to try in order.

    ``node``: IP address, host name, ``localhost`` or ``"unix/"``; a name
    with non-ASCII letters is converted with :func:`anyevent.util.idn_to_ascii`
    (UTS #46 non-transitional, as Perl: ``straße.de`` is ``xn--strae-oqa.de``,
    not IDNA 2003's ``strasse.de``)
    (then ``service`` is an absolute path).  ``service``: port number, name
    from ``/etc/services``, or ``"name=port"``.  When both are names, SRV
    records are consulted first.  Names DNS does not know come from the
    hosts file.  ``proto``: ``"tcp"`` (default) or ``"udp"``...; ``family``:
    0 (any), 4 or 6, limited by :data:`PROTOCOL`; ``type_``: a ``SOCK_*``
    constant or ``None`` (stream, or datagram for udp).

    Calls ``cb(*targets)``, each ``(family, type, proto, sockaddr)``.
    Raises :class:`ValueError` for an unknown protocol or service.
    Port of ``resolve_sockaddr``.
    """
    if node == "unix/":
        if family or not str(service).startswith("/"):
            return cb()
        return cb((socket.AF_UNIX, type_ or socket.SOCK_STREAM, 0, str(service)))
    family = family or 0
    if (family == 4 and "ipv4" not in PROTOCOL) or (family == 6 and "ipv6" not in PROTOCOL):
        return cb()
    if not family:
        family = 4 if "ipv6" not in PROTOCOL else (6 if "ipv4" not in PROTOCOL else 0)
    proto = proto or "tcp"
    type_ = type_ or (socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
    known = getprotobyname(proto)
    if known is None:
        raise ValueError("%s: protocol unknown" % proto)
    proton = known[2]
    srv_name, port = _service_port(service, proto)
    node = idn_to_ascii(node)  # as Perl: UTS #46, "straße.de" is xn--strae-oqa.de
    resolve = _TargetResolver(family, type_, proton, cb).resolve
    if node == "localhost":
        resolve([("127.0.0.1", port), ("::1", port)])
    elif srv_name is not None and parse_address(node) is None:
        def srv_done(*srv):
            if len(srv) == 1 and srv[0][3] in ("", "."):
                return cb()  # a lone "." target: the service is not offered
            targets = [(t + ".", p) for _, _, p, t in srv if t not in ("", ".")]
            resolve(targets or [(node, port)])
        _dns.srv(srv_name, proto, node, srv_done)
    else:
        resolve([(node, port)])


class _TargetResolver:
    """Turns (node, port) targets into sockaddrs; DNS first, hosts file second."""

    def __init__(self, family, type_, proton, cb):
        self.family, self.type, self.proton, self.cb = family, type_, proton, cb
        self.results = []  # (rank, protocol, target)
        self.pending = 0

    def resolve(self, targets):
        self.pending += 1
        for idx, (node, port) in enumerate(targets):
            ipn = parse_address(node)
            if ipn is not None:
                self._add(idx, ipn, port)
                continue
            node = node.lower()
            if self.family != 6:
                self._lookup(_dns.a, parse_ipv4, node, port, idx, 0)
            if self.family != 4:
                self._lookup(_dns.aaaa, parse_ipv6, node, port, idx, 1)
        self._end()

    def _add(self, rank, ipn, port):
        af = address_family(ipn)
        if af == socket.AF_INET and self.family != 6:
            protocol = "ipv4"
        elif af == socket.AF_INET6 and self.family != 4:
            protocol = "ipv6"
        else:
            return
        self.results.append((rank, protocol, (af, self.type, self.proton, pack_sockaddr(port, ipn))))

    def _lookup(self, query, parse, node, port, idx, slot):
        self.pending += 1

        def done(*addrs):
            ipns = [parse(a) for a in addrs] or _hosts_lookup(node, slot)
            rank = idx + 0.5 * (slot and not addrs)  # as Perl: hosts v6 after hosts v4
            for ipn in ipns:
                self._add(rank, ipn, port)
            self._end()
        query(node, done)

    def _end(self):
        self.pending -= 1
        if not self.pending:
            self.results.sort(key=lambda r: (-PROTOCOL.get(r[1], 0), r[0]))
            self.cb(*[r[2] for r in self.results])


# ---------------------------------------------------------------------------
# tcp_connect, tcp_server, tcp_bind
# ---------------------------------------------------------------------------

_last_error = None


def last_error():
    """The :class:`OSError` behind the last failed :func:`tcp_connect` (Perl's ``$!``).

    Read it inside the failure callback ``cb()``: ``err.errno`` is e.g.
    ``errno.ECONNREFUSED``, ``errno.ETIMEDOUT``, or ``errno.ENXIO`` when the
    name did not resolve; ``err.strerror`` is ``os.strerror(err.errno)``.
    ``None`` before any failure.
    """
    return _last_error


def _set_last_error(err):
    global _last_error
    _last_error = err


def tcp_connect(host, service, cb, prepare_cb=None):
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
    def connected(sock):
        peer_port, peer_host = unpack_sockaddr(sock.getpeername())
        cb(sock, format_address(peer_host), peer_port, ref().retry)

    def failed(syscall, err):
        _set_last_error(err)
        cb()

    conn = _connector.Connector(
        host=host, service=service, on_prepare=prepare_cb, on_connected=connected,
        on_connect_error=failed,
        on_resolve_error=lambda message: failed("resolve", OSError(errno.ENXIO, os.strerror(errno.ENXIO))))
    ref = weakref.ref(conn)  # the callbacks must not keep the guard alive
    return conn


def _bind_listener(host, service, prepare_cb):
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
        if af == socket.AF_UNIX:
            path = str(service)
            if os.path.lexists(path):
                os.unlink(path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            service = service or 0
            path = int(service) if str(service).isdigit() else socket.getservbyname(str(service), "tcp")
        sock.bind(pack_sockaddr(path, ipn))
        if af == socket.AF_UNIX:
            ino = os.lstat(path).st_ino
            unlink = lambda: _unlink_if_same(path, ino)
        sock.setblocking(False)
        backlog = 0
        if prepare_cb is not None:
            port, lhost = unpack_sockaddr(sock.getsockname())
            backlog = prepare_cb(sock, format_address(lhost), port)
        sock.listen(backlog or 128)
    except BaseException:
        sock.close()
        raise
    return sock, unlink


def _unlink_if_same(path, ino):
    try:
        if os.lstat(path).st_ino == ino:
            os.unlink(path)
    except OSError:
        pass


def tcp_bind(host, service, done_cb, prepare_cb=None):
    """Create a listening socket and pass it to ``done_cb(sock)``; return a guard.

    Same arguments as :func:`tcp_server`; ``accept`` is left to you.  Dropping
    the guard closes the socket (and unlinks a Unix socket path).  Raises
    :class:`OSError`/:class:`ValueError` on errors.  Port of ``tcp_bind``.
    """
    sock, unlink = _bind_listener(host, service, prepare_cb)

    def cleanup():
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

    def __init__(self, sock, unlink, accept_cb, backoff_cb):
        self.sock, self.unlink, self.accept_cb = sock, unlink, accept_cb
        self.backoff_cb = backoff_cb
        self.unix = sock.family == socket.AF_UNIX
        self.pause = None
        self.watch = loop.io(sock, 0, self._accept)

    def _accept(self):
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
            self.accept_cb(fh, format_address(host), port)

    def _resume(self):
        self.pause = None
        if self.sock is not None:
            self.watch = loop.io(self.sock, 0, self._accept)

    def close(self):
        self.watch = self.pause = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            if self.unlink:
                self.unlink()


def tcp_server(host, service, accept_cb, prepare_cb=None, backoff_cb=None):
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
    each such pause (not in Perl: a server's hook to log it).  Returns a
    guard; dropping it closes the listener (and unlinks its Unix path).
    Port of ``tcp_server``.
    """
    sock, unlink = _bind_listener(host, service, prepare_cb)
    server = _Server(sock, unlink, accept_cb, backoff_cb)
    return guard(server.close)


def tcp_nodelay(fh, enable):
    """Set ``TCP_NODELAY`` (disable Nagle) on or off; ``False`` on error."""
    try:
        fh.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enable else 0)
    except OSError:
        return False
    return True


def tcp_congestion(fh, algorithm):
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
