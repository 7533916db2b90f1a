"""Name resolution for sockets: the hosts file, :func:`resolve_sockaddr` and
:func:`inet_aton` (the part of AnyEvent::Socket built on :mod:`anyevent.dns`).

:mod:`anyevent.connector` builds on this; :mod:`anyevent.socket` re-exports
the public names, which is where users import them from.
"""

from __future__ import annotations

import os
import re
import socket
from functools import partial
from typing import Any, Callable, Protocol

from . import dns as _dns
from ._sockaddr import (PROTOCOL, address_family, getprotobyname, pack_sockaddr,
                        parse_address, parse_ipv4, parse_ipv6, Ipn, SockAddr)
from ._idn import idn_to_ascii

#: What :func:`resolve_sockaddr` gives: ``(family, socktype, protocol, sockaddr)``.
Target = tuple[int, int, int, SockAddr]


class TargetsCb(Protocol):
    """``cb(*targets)``: the callback of :func:`resolve_sockaddr`."""

    def __call__(self, *targets: Target) -> object: ...


class AddressesCb(Protocol):
    """``cb(*addresses)``: network-form addresses, the callback of :func:`inet_aton`."""

    def __call__(self, *ipns: Ipn) -> object: ...


def inet_aton(name: str, cb: AddressesCb) -> None:
    """Resolve ``name`` (an address, ``localhost`` or a DNS name) and call
    ``cb(*addresses)`` with network-form addresses, preferred protocol first.
    Port of ``inet_aton``.
    """
    ipn = parse_ipv4(name) or parse_ipv6(name)
    if ipn:
        cb(ipn)
        return
    if name == "localhost":
        cb(socket.inet_aton("127.0.0.1"), b"\0" * 15 + b"\1")
        return
    results: dict[str, list[Ipn]] = {}
    lookups = [(p, f, parse) for p, f, parse in (("ipv4", _dns.a, parse_ipv4),
                                                ("ipv6", _dns.aaaa, parse_ipv6)) if p in PROTOCOL]

    def done() -> None:
        if len(results) == len(lookups):
            ordered = sorted(results.items(), key=lambda kv: -PROTOCOL[kv[0]])
            cb(*[ipn for _, ipns in ordered for ipn in ipns])

    def got(proto: str, parse: Callable[[str], Any], *addrs: str) -> None:
        results[proto] = [parse(a) for a in addrs]
        done()

    for proto, lookup, parse in lookups:
        lookup(name, partial(got, proto, parse))
    if not lookups:
        cb()


# ---------------------------------------------------------------------------
# /etc/hosts
# ---------------------------------------------------------------------------

_Hosts = dict[str, tuple[list[Ipn], list[Ipn]]]
_hosts: _Hosts = {}   # name -> ([ipv4 network addresses], [ipv6 network addresses])
_hosts_stamp: tuple[str, int] | None = None  # (path, mtime) of the loaded file


def _parse_hosts(text: str) -> _Hosts:
    hosts: _Hosts = {}
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


def _hosts_lookup(name: str, slot: int) -> list[Ipn]:
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

def _service_port(service: str | int, proto: str) -> tuple[str | None, int]:
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


def resolve_sockaddr(node: str, service: str | int, proto: str | None, family: int | None,
                     type_: int | None, cb: TargetsCb) -> None:
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
            cb()
            return
        cb((socket.AF_UNIX, type_ or socket.SOCK_STREAM, 0, str(service)))
        return
    family = family or 0
    if (family == 4 and "ipv4" not in PROTOCOL) or (family == 6 and "ipv6" not in PROTOCOL):
        cb()
        return
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
        def srv_done(*srv: tuple[int, int, int, str]) -> None:
            if len(srv) == 1 and srv[0][3] in ("", "."):
                cb()  # a lone "." target: the service is not offered
                return
            targets = [(t + ".", p) for _, _, p, t in srv if t not in ("", ".")]
            resolve(targets or [(node, port)])
        _dns.srv(srv_name, proto, node, srv_done)
    else:
        resolve([(node, port)])


class _TargetResolver:
    """Turns (node, port) targets into sockaddrs; DNS first, hosts file second."""

    def __init__(self, family: int, type_: int, proton: int, cb: TargetsCb) -> None:
        self.family, self.type, self.proton, self.cb = family, type_, proton, cb
        self.results: list[tuple[float, str, Target]] = []  # (rank, protocol, target)
        self.pending = 0

    def resolve(self, targets: list[tuple[str, int]]) -> None:
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

    def _add(self, rank: float, ipn: Ipn, port: int) -> None:
        af = address_family(ipn)
        if af == socket.AF_INET and self.family != 6:
            protocol = "ipv4"
        elif af == socket.AF_INET6 and self.family != 4:
            protocol = "ipv6"
        else:
            return
        self.results.append((rank, protocol, (af, self.type, self.proton, pack_sockaddr(port, ipn))))

    def _lookup(self, query: Callable[[str, Callable[..., None]], None],
                parse: Callable[[str], Ipn | None], node: str, port: int, idx: int,
                slot: int) -> None:
        self.pending += 1

        def done(*addrs: str) -> None:
            ipns: list[Any] = [parse(a) for a in addrs] or _hosts_lookup(node, slot)
            rank = idx + 0.5 * (slot and not addrs)  # as Perl: hosts v6 after hosts v4
            for ipn in ipns:
                self._add(rank, ipn, port)
            self._end()
        query(node, done)

    def _end(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.results.sort(key=lambda r: (-PROTOCOL.get(r[1], 0), r[0]))
            self.cb(*[r[2] for r in self.results])
