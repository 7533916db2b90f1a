"""Address parsing and formatting, socket addresses (the part of AnyEvent::Socket below DNS).

Pure functions: no loop, no DNS.  :mod:`anyevent.dns` and
:mod:`anyevent.connector` build on them; :mod:`anyevent.socket` re-exports
every public name, which is where users import them from.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from typing import Union, cast, overload

#: A network-form host address: 4 bytes (IPv4), 16 bytes (IPv6) or :data:`UNIX_TOKEN`.
Ipn = bytes
#: A Python socket address: ``(ip, port)``, ``(ip6, port, flowinfo, scope_id)`` or a Unix path.
SockAddr = Union[tuple[str, int], tuple[str, int, int, int], str, bytes]

#: The network-form "address" of Unix domain sockets (Perl's ``pack "S", AF_UNIX``).
UNIX_TOKEN = struct.pack("=H", socket.AF_UNIX)


def _protocols(spec: str) -> dict[str, int]:
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


def _num(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part, 16)
    return int(part, 8) if part[0] == "0" else int(part)


def parse_ipv4(text: str) -> Ipn | None:
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


def parse_ipv6(text: str) -> Ipn | None:
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


def parse_unix(text: str) -> Ipn | None:
    """Return :data:`UNIX_TOKEN` for ``"unix/"``, else ``None`` (``parse_unix``)."""
    return UNIX_TOKEN if text == "unix/" else None


def parse_address(text: str) -> Ipn | None:
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


def format_ipv4(ipn: Ipn) -> str:
    """4 bytes to dotted quad text (``format_ipv4``)."""
    return "%d.%d.%d.%d" % tuple(ipn)


def format_ipv6(ipn: Ipn) -> str:
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


def format_address(ipn: Ipn) -> str | None:
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


def address_family(ipn: Ipn) -> int:
    """``AF_INET``, ``AF_INET6`` or ``AF_UNIX`` for a network-form address."""
    if len(ipn) == 4:
        return socket.AF_INET
    if len(ipn) == 16:
        return socket.AF_INET6
    family: int = struct.unpack("=H", ipn)[0]
    return family


_HOSTPORT_V6 = re.compile(r"\s*([0-9a-fA-F:]*:[0-9a-fA-F:]*:[0-9a-fA-F.:]*)")
_HOSTPORT_HOST = re.compile(r"\s*(?:\[([^\[\]]+)\]|([^\[\]: ]+))")
_HOSTPORT_PORT = re.compile(r"(?:\s+|:|#)([^:\s]+)\s*\Z")
_TRAILING_SPACE = re.compile(r"\s*\Z")


def parse_hostport(text: str, default_service: str | int | None = None) -> tuple[str, str] | None:
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


def format_hostport(host: str, port: str | int | None = None) -> str:
    """Inverse of :func:`parse_hostport`: brackets hosts containing ``:``."""
    if ":" in host:
        host = "[%s]" % host
    return host if port in (None, "") else "%s:%s" % (host, port)


def _sockaddr_text(sa: SockAddr | None) -> str:
    """A Python socket address as text for logs and reprs: ``host:port``,
    ``[v6]:port``, a Unix path (quoted), or ``-`` for an unnamed socket."""
    if isinstance(sa, tuple):
        return format_hostport(sa[0], sa[1])
    return repr(sa) if sa else "-"


# ---------------------------------------------------------------------------
# socket addresses
# ---------------------------------------------------------------------------

def pack_sockaddr(service: int | str, host: Ipn) -> SockAddr:
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
        return cast("SockAddr", service)  # the path
    raise ValueError("pack_sockaddr: invalid host")


def sockaddr_family(sa: SockAddr | bytearray | memoryview) -> int:
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
        family: int = struct.unpack_from("=H", sa)[0]
        return family
    if isinstance(sa, (str, bytes)):
        return socket.AF_UNIX
    if isinstance(sa, tuple) and len(sa) == 2 and isinstance(sa[0], str):
        return socket.AF_INET
    if isinstance(sa, tuple) and len(sa) == 4 and isinstance(sa[0], str):
        return socket.AF_INET6
    raise ValueError("sockaddr_family: not a socket address: %r" % (sa,))


#: Protocol numbers known without /etc/protocols (Perl's ``%PROTO_BYNAME``).
PROTO_BYNAME = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "icmp": socket.IPPROTO_ICMP}


def getprotobyname(name: str) -> tuple[str, str, int] | None:
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


@overload
def unpack_sockaddr(sa: tuple[str, int] | tuple[str, int, int, int]) -> tuple[int, Ipn]: ...
@overload
def unpack_sockaddr(sa: str | bytes) -> tuple[str, Ipn]: ...


def unpack_sockaddr(sa: SockAddr) -> tuple[int | str, Ipn]:
    """``(service, host)`` from a Python socket address: ``(port, 4 or 16
    bytes)`` for IP, ``(path, UNIX_TOKEN)`` for Unix.  Port of ``unpack_sockaddr``.
    """
    if isinstance(sa, (str, bytes)):
        return (os.fsdecode(sa), UNIX_TOKEN)
    if len(sa) == 2:
        return (sa[1], socket.inet_pton(socket.AF_INET, sa[0]))
    return (sa[1], socket.inet_pton(socket.AF_INET6, sa[0].partition("%")[0]))
