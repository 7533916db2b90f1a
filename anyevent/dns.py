"""Asynchronous DNS stub resolver on the reactor (port of AnyEvent::DNS).

dnspython builds and parses the messages and reads ``resolv.conf``; the
transport is ours, on reactor io and timer watchers, so nothing blocks the
loop:

* every try gets a fresh UDP socket (a kernel-chosen random source port),
  connected to the server, and the request a random 16-bit id;
* an answer counts only if it comes from the server's address and port, and
  carries our id and question (:meth:`dns.message.Message.is_response`);
  anything else is ignored and the wait goes on;
* tries walk the list ``timeouts x servers`` (AnyEvent's defaults: 2, 5 and 5
  seconds per server), moving on at a timeout, at SERVFAIL/REFUSED/NOTIMP or
  at an ICMP port-unreachable; a late answer from an earlier try still counts;
* a truncated answer is asked again over TCP on the same server;
* at most ``max_outstanding`` requests (default 10, ``ANYEVENT_MAX_OUTSTANDING_DNS``)
  are on the wire, the rest wait in a queue;
* names are tried with the ``search`` list according to ``ndots``; EDNS0
  (4096-byte answers) when ``edns0`` is on (default: ``ANYEVENT_EDNS0``);
* a name with non-ASCII letters is asked in the form
  :func:`anyevent.util.idn_to_ascii` gives (UTS #46, as
  :func:`anyevent.socket.resolve_sockaddr` does in Perl): ``straße.de`` is
  ``xn--strae-oqa.de``, never IDNA 2003's ``strasse.de``.

Debugging: queries sent, timeouts and retries, TCP fallbacks and the rcode
of every answer are logged at DEBUG level on the ``anyevent.dns`` logger
(:mod:`logging`; nothing is formatted unless that level is enabled, and no
logger's level is ever set here).

Results use Perl's shapes: a resource record is a tuple ``(name, type,
class, ttl, *data)`` with ``type``/``class`` lowercase names (``"a"``,
``"in"``), names without the final dot, and data decoded per type: ``a``
and ``aaaa`` give the address text, ``mx`` ``(preference, exchange)``,
``srv`` ``(priority, weight, port, target)``, ``soa`` ``(mname, rname,
serial, refresh, retry, expire, minimum)``, ``txt``/``spf``/``hinfo`` the
strings (UTF-8 with ``surrogateescape``, so any bytes round-trip), ``ns``,
``cname``, ``ptr``, ``dname`` the name; unknown types the raw rdata bytes.
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Union, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rdtypes.util
from dns.message import Message

from . import _sockaddr as _aesock
from .reactor import loop
from ._idn import idn_to_ascii

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .reactor import IOWatcher

_log = logging.getLogger("anyevent.dns")

#: A Perl-shaped record: ``(name, type, class, ttl, *data)``.
Record = tuple[Any, ...]
#: A server as compiled by the resolver: ``(family, sockaddr)``.
Server = tuple[int, Any]
#: A server spec: ``"ip"``, ``"ip:port"``, ``"[v6]:port"``, ``(ip, port)`` or network-form bytes.
ServerSpec = Union[str, bytes, tuple[str, int]]


class RecordsCb(Protocol):
    """``cb(*records)``: :meth:`Resolver.resolve` and :func:`any`."""

    def __call__(self, *records: Record) -> object: ...


class NamesCb(Protocol):
    """``cb(*texts)``: addresses, names or texts, one per record (``cb()`` for none)."""

    def __call__(self, *texts: str) -> object: ...


class SrvCb(Protocol):
    """``cb(*(priority, weight, port, target))``: :func:`srv`."""

    def __call__(self, *srv: tuple[int, int, int, str]) -> object: ...

__all__ = ["a", "aaaa", "mx", "ns", "txt", "srv", "ptr", "any", "reverse_lookup",
           "reverse_verify", "resolver", "Resolver", "RESOLVER", "MAX_PKT",
           "DOMAIN_PORT", "EDNS0"]

MAX_PKT = 4096     #: largest answer we advertise (EDNS0) and accept, bytes
DOMAIN_PORT = 53   #: the DNS port, used when a server is given without one

#: Default for new resolvers' ``edns0`` (Perl's ``$AnyEvent::DNS::EDNS0``).
EDNS0 = bool(int(os.environ.get("ANYEVENT_EDNS0") or 0))

#: Public servers used only when no server is configured at all (as Perl does).
DNS_FALLBACK = ["8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1",
                "2001:4860:4860::8888", "2606:4700:4700::1111"]

_NEXT_SERVER_RCODES = frozenset((dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP))

# ---------------------------------------------------------------------------
# decoding answers into Perl-shaped tuples
# ---------------------------------------------------------------------------


def _name(n: dns.name.Name) -> str:
    return b".".join(n.labels[:-1] if n.is_absolute() else n.labels).decode("latin-1")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


_DECODERS: dict[int, Callable[[Any], tuple[Any, ...]]] = {
    dns.rdatatype.A: lambda r: (r.address,),
    dns.rdatatype.AAAA: lambda r: (_aesock.format_ipv6(socket.inet_pton(socket.AF_INET6, r.address)),),
    dns.rdatatype.NS: lambda r: (_name(r.target),),
    dns.rdatatype.CNAME: lambda r: (_name(r.target),),
    dns.rdatatype.PTR: lambda r: (_name(r.target),),
    dns.rdatatype.DNAME: lambda r: (_name(r.target),),
    dns.rdatatype.SOA: lambda r: (_name(r.mname), _name(r.rname), r.serial, r.refresh,
                                  r.retry, r.expire, r.minimum),
    dns.rdatatype.MX: lambda r: (r.preference, _name(r.exchange)),
    dns.rdatatype.TXT: lambda r: tuple(_text(s) for s in r.strings),
    dns.rdatatype.SPF: lambda r: tuple(_text(s) for s in r.strings),
    dns.rdatatype.HINFO: lambda r: (_text(r.cpu), _text(r.os)),
    dns.rdatatype.SRV: lambda r: (r.priority, r.weight, r.port, _name(r.target)),
    dns.rdatatype.NAPTR: lambda r: (r.order, r.preference, _text(r.flags), _text(r.service),
                                    _text(r.regexp), _name(r.replacement)),
    dns.rdatatype.CAA: lambda r: (r.flags, _text(r.tag), _text(r.value)),
}

_perl_names: dict[tuple[Any, int], str | int] = {}


def _perl_name(enum: Any, value: int, any_value: int, prefix: str) -> str | int:
    """Perl's name for a type or class: lower-case text, ``"*"`` for ANY, the
    number when dnspython only knows it as ``TYPE123``/``CLASS123``."""
    key = (enum, value)
    name = _perl_names.get(key)
    if name is None:
        text = enum.to_text(value)
        name = _perl_names[key] = "*" if value == any_value else (
            int(value) if text.startswith(prefix) else text.lower())
    return name


def _type_str(t: int) -> str | int:
    """Perl's name for a record type: ``"a"``, ``"*"`` for ANY, the number if unknown."""
    return _perl_name(dns.rdatatype, t, dns.rdatatype.ANY, "TYPE")


def _class_str(c: int) -> str | int:
    """Perl's name for a record class: ``"in"``, ``"*"`` for ANY, the number if unknown."""
    return _perl_name(dns.rdataclass, c, dns.rdataclass.ANY, "CLASS")


def records(section: Iterable[Any]) -> list[Record]:
    """Flatten a dnspython message section into Perl-shaped record tuples."""
    out: list[Record] = []
    for rrset in section:
        head = (_name(rrset.name), _type_str(rrset.rdtype), _class_str(rrset.rdclass), rrset.ttl)
        decode = _DECODERS.get(rrset.rdtype)
        for rd in rrset:
            out.append(head + (decode(rd) if decode else (rd.to_wire(),)))
    return out


def _rdtype(qtype: str | int) -> Any:
    if isinstance(qtype, int):
        return qtype
    return dns.rdatatype.ANY if qtype == "*" else dns.rdatatype.from_text(qtype)


def _rdclass(qclass: str | int) -> Any:
    if isinstance(qclass, int):
        return qclass
    return dns.rdataclass.ANY if qclass == "*" else dns.rdataclass.from_text(qclass)


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

def _server(spec: ServerSpec) -> Server:
    """``(family, sockaddr)`` from ``"ip"``, ``"ip:port"``, ``"[v6]:port"``,
    ``(ip, port)`` or a network-form address (bytes)."""
    ip: str | None
    port: str | int
    if isinstance(spec, bytes):
        ip, port = _aesock.format_address(spec), DOMAIN_PORT
    elif isinstance(spec, tuple):
        ip, port = spec
    else:
        hp = _aesock.parse_hostport(spec, DOMAIN_PORT)
        if hp is None:
            raise ValueError("bad DNS server address %r" % (spec,))
        ip, port = hp
    ipn = _aesock.parse_address(str(ip))
    if ipn is None or len(ipn) not in (4, 16):
        raise ValueError("bad DNS server address %r" % (spec,))
    return (_aesock.address_family(ipn), _aesock.pack_sockaddr(int(port), ipn))


def _peer(server: Server) -> str:
    """``"ip:port"`` of a ``(family, sockaddr)`` server, for the debug log."""
    return _aesock.format_hostport(server[1][0], server[1][1])


def _question(query: Message) -> str:
    """``"name/TYPE"`` of a query's question, for the debug log."""
    q = query.question[0]
    return "%s/%s" % (q.name, dns.rdatatype.to_text(q.rdtype))


def _same_address(got: Any, want: Any) -> bool:
    return got[0] == want[0] and got[1] == want[1] or (
        # compare IPv6 texts through their binary form
        len(want) == 4 and got[1] == want[1]
        and socket.inet_pton(socket.AF_INET6, got[0].partition("%")[0])
        == socket.inet_pton(socket.AF_INET6, want[0]))


# ---------------------------------------------------------------------------
# one request on the wire
# ---------------------------------------------------------------------------

class _Request:
    """A query and its tries; lives while its watchers live."""
    __slots__ = ("query", "wire", "cb", "tries", "udp", "tcp", "timer", "bad", "done")

    query: Message
    wire: bytes
    cb: Callable[..., object] | None
    udp: list[tuple[socket.socket, Any, Server]]
    tcp: _TCPQuery | None
    timer: Any
    bad: Message | None

    def __init__(self, query: Message, cb: Callable[..., object]) -> None:
        self.query, self.cb = query, cb
        self.tries = 0
        self.udp = []          # (socket, io watcher, server) of every try so far
        self.tcp = None
        self.timer = None
        self.bad = None        # the last SERVFAIL-like answer
        self.done = False


class _TCPQuery:
    """Asks one server over TCP (2-byte length prefix, RFC 1035 4.2.2)."""

    def __init__(self, resolver: Resolver, req: _Request, server: Server) -> None:
        self.resolver, self.req, self.server = resolver, req, server
        self.out = len(req.wire).to_bytes(2, "big") + req.wire
        self.inbuf = bytearray()
        self.sock = socket.socket(server[0], socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex(server[1])
        self.watch: IOWatcher | None = loop.io(self.sock, 1, self._writable)

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._failed()
        self.out = self.out[n:]
        if not self.out:
            self.watch = loop.io(self.sock, 0, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65537)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._failed()
        if not data:
            return self._failed()
        self.inbuf += data
        if len(self.inbuf) >= 2:
            size = int.from_bytes(self.inbuf[:2], "big")
            if len(self.inbuf) >= 2 + size:
                res = self.resolver._parse(self.req, bytes(self.inbuf[2:2 + size]))
                if res is None:
                    return self._failed()
                self.close()
                self.resolver._answer(self.req, res, self.server, over_tcp=True)

    def _failed(self) -> None:
        _log.debug("query %d: TCP to %s failed", self.req.query.id, _peer(self.server))
        self.close()
        self.resolver._next_try(self.req)

    def close(self) -> None:
        self.watch = None
        self.sock.close()
        self.req.tcp = None


# ---------------------------------------------------------------------------
# the resolver
# ---------------------------------------------------------------------------

class _Timeouts(tuple[float, ...]):
    """A resolver's timeouts: a tuple of seconds that, called, sets new ones
    (Perl's ``$resolver->timeout(@seconds)`` method)."""

    _resolver: Resolver

    def __new__(cls, resolver: Resolver, timeouts: Iterable[float]) -> _Timeouts:
        if isinstance(timeouts, (str, bytes)) or not hasattr(timeouts, "__iter__"):
            raise TypeError("timeout must be a list of seconds, not %r" % (timeouts,))
        timeouts = tuple(timeouts)
        if not timeouts or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                   and t > 0 for t in timeouts):
            raise ValueError("timeout must be a non-empty list of seconds > 0, not %r"
                             % (timeouts,))
        self = super().__new__(cls, timeouts)
        self._resolver = resolver
        return self

    def __call__(self, *timeouts: float) -> None:
        self._resolver.timeout = timeouts


class _MaxOutstanding(int):
    """A resolver's ``max_outstanding``: an int that, called, sets a new one
    (Perl's ``$resolver->max_outstanding($n)`` method)."""

    _resolver: Resolver

    def __new__(cls, resolver: Resolver, n: int) -> _MaxOutstanding:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError("max_outstanding must be an int >= 1, not %r" % (n,))
        self = super().__new__(cls, n)
        self._resolver = resolver
        return self

    def __call__(self, n: int) -> None:
        self._resolver.max_outstanding = n


def _is_compiled_server(s: object) -> TypeIs[Server]:
    """Whether ``s`` is already a ``(family, sockaddr)`` pair."""
    return (isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], tuple)
            and s[0] in (socket.AF_INET, socket.AF_INET6))


class Resolver:
    """A DNS stub resolver (an ``AnyEvent::DNS`` object).

    Keyword arguments (all optional):
      ``server`` -- list of servers: ``"1.2.3.4"``, ``"1.2.3.4:5353"``,
      ``"[::1]:5353"``, ``(ip, port)`` or network-form bytes; none means
      127.0.0.1 then :data:`DNS_FALLBACK`;
      ``timeout`` -- per-try timeouts in seconds, each applied to every server
      in turn (default ``[2, 5, 5]``);
      ``search`` -- domain suffixes; ``ndots`` -- dots needed before the name
      is first tried as is (default 1);
      ``max_outstanding`` -- requests on the wire at once (default 10);
      ``edns0`` -- advertise :data:`MAX_PKT`-byte UDP answers (default :data:`EDNS0`).

    Perl's hash fields are attributes that take effect when assigned
    (``res.timeout = [0.5]`` is ``$res->{timeout} = [0.5]``, and the retry
    plan is rebuilt at once, where Perl waits for the next ``_compile``):
    ``timeout`` (a tuple of seconds; also callable, ``res.timeout(2, 5, 5)``
    as Perl's method), ``max_outstanding`` (an int; also callable, as Perl's
    method), ``server`` (read back as ``(family, sockaddr)`` pairs),
    ``search`` (a list; changes to it count from the next ``resolve``),
    ``ndots`` (an int).  A value of the wrong type or range raises
    :class:`TypeError` or :class:`ValueError` instead of being ignored.
    """

    edns0: bool

    def __init__(self, *, server: Iterable[ServerSpec] = (), timeout: Iterable[float] = (2, 5, 5),
                 search: Iterable[str] = (), ndots: int = 1,
                 max_outstanding: int = 10, edns0: bool | None = None) -> None:
        self._server_list = [_server(s) for s in server]
        self._timeout = _Timeouts(self, timeout)
        self.search = search
        self.ndots = ndots
        self._max = _MaxOutstanding(self, max_outstanding)
        self.edns0 = EDNS0 if edns0 is None else edns0
        self._outstanding = 0
        self._queue: list[_Request] = []   # requests waiting for a slot (FIFO via index)
        self._qhead = 0
        self._wait: list[Callable[[Resolver], object]] = []  # wait_for_slot callbacks
        self._whead = 0
        self._ids: set[int] = set()
        self._compile()

    # -- configuration: Perl's hash fields ---------------------------------

    @property
    def timeout(self) -> _Timeouts:
        """The per-try timeouts in seconds, a tuple; assign a list to change
        them, or call it as Perl's method: ``res.timeout(2, 5, 5)``."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeouts: Iterable[float]) -> None:
        self._timeout = _Timeouts(self, timeouts)
        self._compile()

    @property
    def max_outstanding(self) -> _MaxOutstanding:
        """How many requests may be on the wire at once, an int; assign to
        change it, or call it as Perl's method: ``res.max_outstanding(5)``."""
        return self._max

    @max_outstanding.setter
    def max_outstanding(self, n: int) -> None:
        self._max = _MaxOutstanding(self, n)
        self._scheduler()

    @property
    def server(self) -> list[Server]:
        """The servers, as ``(family, sockaddr)`` pairs; assign a list of
        server specs (as for the constructor) to replace them."""
        return self._server_list

    @server.setter
    def server(self, servers: Iterable[ServerSpec | Server]) -> None:
        if isinstance(servers, (str, bytes)):
            raise TypeError("server must be a list of servers, not %r" % (servers,))
        self._server_list = [s if _is_compiled_server(s) else _server(s) for s in servers]
        self._compile()

    @property
    def search(self) -> list[str]:
        """The search suffixes, a list of str."""
        return self._search

    @search.setter
    def search(self, suffixes: Iterable[str]) -> None:
        if isinstance(suffixes, (str, bytes)):
            raise TypeError("search must be a list of domains, not %r" % (suffixes,))
        self._search = [s for s in dict.fromkeys(str(s).rstrip(".") for s in suffixes) if s]

    @property
    def ndots(self) -> int:
        """Dots a name needs to be tried as is before the search list, an int."""
        return self._ndots

    @ndots.setter
    def ndots(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("ndots must be an int >= 0, not %r" % (n,))
        self._ndots = n

    def _compile(self) -> None:
        self.search = self._search
        self._server_list = list(dict.fromkeys(self._server_list))
        if not self._server_list:
            default = "::1" if _aesock.PROTOCOL.get("ipv6", 0) > _aesock.PROTOCOL.get("ipv4", 0) \
                else "127.0.0.1"
            self._server_list = [_server(s) for s in [default] + DNS_FALLBACK]
        self._retry = [(srv, t) for t in self._timeout for srv in self._server_list]

    def parse_resolv_conf(self, text: str) -> None:
        """Configure from ``resolv.conf`` text: ``nameserver``, ``domain``,
        ``search``, ``options timeout:N attempts:N ndots:N edns0``.
        Replaces the servers and the search list.  Port of ``parse_resolv_conf``.
        """
        conf = dns.resolver.Resolver(configure=False)
        try:
            conf.read_resolv_conf(io.StringIO(text))
            self._server_list = [_server(cast(str, s)) for s in conf.nameservers]
        except (dns.resolver.NoResolverConfiguration, ValueError):
            self._server_list = []
        search = conf.search or ([conf.domain] if conf.domain != dns.name.root else [])
        self.search = [_name(n) for n in search]
        if conf.ndots is not None:
            self.ndots = conf.ndots
        if conf.use_edns is not None and conf.edns >= 0:
            self.edns0 = True
        # dnspython has one timeout and no attempts; AnyEvent keeps a list
        opts = dict(re.findall(r"\b(timeout|attempts):(\d+)", " ".join(
            l for l in text.splitlines() if l.split()[:1] == ["options"])))
        if opts:
            first = int(opts.get("timeout", self._timeout[0]))
            self._timeout = _Timeouts(self, [first] * int(
                opts.get("attempts", 1 if "timeout" in opts else len(self._timeout))))
        self._compile()

    def os_config(self) -> None:
        """Read ``/etc/resolv.conf`` if it exists (``os_config``)."""
        self._load_resolv_conf_file("/etc/resolv.conf")

    def _load_resolv_conf_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                self.parse_resolv_conf(f.read())
        except OSError:
            self._server_list = []
            self._compile()

    # -- scheduling ---------------------------------------------------------

    def _scheduler(self) -> None:
        while self._outstanding < self._max:
            if self._qhead < len(self._queue):
                req = self._queue[self._qhead]
                self._qhead += 1
                self._start(req)
            elif self._whead < len(self._wait):
                cb = self._wait[self._whead]
                self._whead += 1
                cb(self)
            else:
                break
        if self._qhead == len(self._queue):
            self._queue.clear()
            self._qhead = 0
        if self._whead == len(self._wait):
            self._wait.clear()
            self._whead = 0

    def wait_for_slot(self, cb: Callable[[Resolver], object]) -> None:
        """Call ``cb(resolver)`` once a request could be sent without queueing."""
        self._wait.append(cb)
        self._scheduler()

    def request(self, query: Message,
                cb: Callable[[Message], object] | Callable[[], object]) -> None:
        """Send ``query`` (a :class:`dns.message.Message`) and call ``cb(answer)``
        with the :class:`dns.message.Message` received, or ``cb()`` when no
        server answered.  Handles ids, timeouts, retries and TCP fallback,
        not search lists or CNAMEs.  Port of ``request``.
        """
        self._queue.append(_Request(query, cb))
        self._scheduler()

    def _start(self, req: _Request) -> None:
        self._outstanding += 1
        qid = secrets.randbits(16)
        while qid in self._ids:
            qid = secrets.randbits(16)
        self._ids.add(qid)
        req.query.id = qid
        req.wire = req.query.to_wire()
        loop.now_update()  # timeouts count from now, even after a long callback
        self._next_try(req)

    def _next_try(self, req: _Request) -> None:
        while not req.done:
            if req.tcp is not None:
                req.tcp.close()
            if req.tries >= len(self._retry):
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("query %d %s: no usable answer after %d tries, giving up%s",
                               req.query.id, _question(req.query), req.tries,
                               "" if req.bad is None
                               else " (last rcode %s)" % dns.rcode.to_text(req.bad.rcode()))
                return self._finish(req, req.bad)
            server, timeout = self._retry[req.tries]
            req.tries += 1
            req.timer = loop.timer(timeout, 0, partial(self._timed_out, req, server, timeout))
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("query %d %s to %s, try %d of %d, timeout %gs", req.query.id,
                           _question(req.query), _peer(server), req.tries, len(self._retry), timeout)
            try:
                sock = socket.socket(server[0], socket.SOCK_DGRAM)
            except OSError:
                continue
            try:
                sock.setblocking(False)
                sock.connect(server[1])
                sock.send(req.wire)
            except OSError as e:
                _log.debug("query %d: sending to %s failed: %s", req.query.id, _peer(server), e)
                sock.close()
                continue
            req.udp.append((sock, loop.io(sock, 0, partial(self._udp_readable, req, sock, server)),
                            server))
            return

    def _timed_out(self, req: _Request, server: Server, timeout: float) -> None:
        _log.debug("query %d: no answer from %s within %gs", req.query.id, _peer(server), timeout)
        self._next_try(req)

    def _udp_readable(self, req: _Request, sock: socket.socket, server: Server) -> None:
        try:
            data, peer = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            # e.g. ECONNREFUSED from an ICMP port unreachable: this try is over
            _log.debug("query %d: %s: %s", req.query.id, _peer(server), e)
            current = req.udp[-1][0] is sock
            req.udp = [u for u in req.udp if u[0] is not sock]
            sock.close()
            if current and req.tcp is None:
                self._next_try(req)
            return
        if not _same_address(peer, server[1]):
            _log.debug("query %d: ignored a packet from %s", req.query.id, peer)
            return
        res = self._parse(req, data)
        if res is not None:
            self._answer(req, res, server)
        else:
            _log.debug("query %d: ignored a packet from %s that does not answer it",
                       req.query.id, _peer(server))

    @staticmethod
    def _parse(req: _Request, data: bytes) -> Message | None:
        """The message if it is an answer to ``req``, else ``None``."""
        try:
            res = dns.message.from_wire(data, ignore_trailing=True)
        except (dns.exception.DNSException, ValueError):
            return None
        return res if req.query.is_response(res) else None

    def _answer(self, req: _Request, res: Message, server: Server,
                over_tcp: bool = False) -> None:
        if req.done:
            return
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("query %d %s: %s from %s%s, %d answer records%s", req.query.id,
                       _question(req.query), dns.rcode.to_text(res.rcode()), _peer(server),
                       " over TCP" if over_tcp else "", sum(len(r) for r in res.answer),
                       ", truncated" if res.flags & dns.flags.TC else "")
        if res.flags & dns.flags.TC and not over_tcp:
            if req.tcp is None:
                _log.debug("query %d: truncated, asking %s again over TCP", req.query.id,
                           _peer(server))
                timeout = self._retry[req.tries - 1][1]
                req.timer = loop.timer(timeout, 0, partial(self._timed_out, req, server, timeout))
                req.tcp = _TCPQuery(self, req, server)
        elif res.rcode() in _NEXT_SERVER_RCODES:
            req.bad = res
            self._next_try(req)
        else:
            self._finish(req, res)

    def _finish(self, req: _Request, res: Message | None) -> None:
        req.done = True
        req.timer = None
        if req.tcp is not None:
            req.tcp.close()
        for sock, _, _ in req.udp:
            sock.close()
        req.udp = []
        self._ids.discard(req.query.id)
        self._outstanding -= 1
        self._scheduler()
        cb: Any
        cb, req.cb = req.cb, None
        if res is None:
            cb()
        else:
            cb(res)

    # -- resolve ------------------------------------------------------------

    def resolve(self, qname: str, qtype: str | int, cb: RecordsCb, *,
                search: Iterable[str] | None = None, accept: Iterable[str | int] | None = None,
                class_: str | int = "in") -> None:
        """Look up ``qname`` records of ``qtype`` and call ``cb(*records)``.

        ``qtype``: a lowercase type name (``"a"``, ``"mx"``...), ``"*"`` for
        any, or a number.  Records are Perl-shaped tuples (see the module
        docs); ``cb()`` with nothing on any error or when nothing was found.
        ``search``: the suffixes to try (default from ``search``/``ndots``;
        ignored for a name ending in a dot); ``accept``: the record types to
        return (default ``[qtype]``; with ``"cname"`` CNAMEs are not
        followed); ``class_``: ``"in"``, ``"ch"``, ``"hs"``.  CNAME chains are
        followed up to 10 deep.  Port of ``resolve``.
        """
        self.wait_for_slot(lambda _self: _Resolution(self, qname, qtype, cb, search, accept, class_))


class _Resolution:
    """One ``resolve`` call: walks the search list and CNAME chains."""

    def __init__(self, resolver: Resolver, qname: str, qtype: str | int, cb: RecordsCb | None,
                 search: Iterable[str] | None, accept: Iterable[str | int] | None,
                 class_: str | int) -> None:
        self.resolver, self.qtype, self.cb, self.class_ = resolver, qtype, cb, class_
        qname = idn_to_ascii(qname)
        if not qname.isascii():
            # idn_to_ascii refused it: send the UTF-8 bytes as Perl does (never IDNA 2003)
            qname = qname.encode("utf-8").decode("latin-1")
        if qname.endswith("."):
            qname, suffixes = qname[:-1], [""]
        elif search is not None:
            suffixes = list(search)
        elif qname.count(".") >= resolver.ndots:
            suffixes = [""] + resolver.search
        else:
            suffixes = resolver.search + [""]
        self.qname = qname
        self.suffixes = suffixes
        self.accept = {_type_str(_rdtype(t)) for t in (accept if accept is not None else [qtype])}
        self.next_suffix()

    def next_suffix(self) -> None:
        if not self.suffixes:
            cb, self.cb = self.cb, None
            cb()  # type: ignore[misc]  # set until the one call
            return
        suffix = self.suffixes.pop(0)
        self.name = (self.qname + "." + suffix).rstrip(".").lower()
        self.depth = 10
        self.ask()

    def ask(self) -> None:
        try:
            query = dns.message.make_query(
                dns.name.from_text(self.name.encode("latin-1")), _rdtype(self.qtype),
                _rdclass(self.class_),
                use_edns=0 if self.resolver.edns0 else False, payload=MAX_PKT)
        except (dns.exception.DNSException, ValueError):
            return self.next_suffix()
        self.resolver.request(query, self.answered)

    def answered(self, res: Message | None = None) -> None:
        if res is None:
            return self.next_suffix()
        rrs = records(res.answer)
        any_type = "*" in self.accept
        followed = False
        while True:
            name = self.name
            found = [rr for rr in rrs if rr[0].lower() == name and (any_type or rr[1] in self.accept)]
            if found:
                cb, self.cb = self.cb, None
                cb(*found)  # type: ignore[misc]  # set until the one call
                return
            cnames = [rr for rr in rrs if rr[0].lower() == name and rr[1] == "cname"]
            if cnames:
                self.depth -= 1
                if not self.depth:
                    return self.next_suffix()
                followed = True
                self.name = cnames[0][4].lower()
            elif followed:
                return self.ask()
            else:
                return self.next_suffix()


# ---------------------------------------------------------------------------
# the default resolver and the convenience functions
# ---------------------------------------------------------------------------

#: The resolver :func:`resolver` returns; assign your own to replace it
#: (Perl's ``$AnyEvent::DNS::RESOLVER``).
RESOLVER: Resolver | None = None


def resolver() -> Resolver:
    """The process-wide :class:`Resolver`, created on first use.

    Configured from ``ANYEVENT_RESOLV_CONF`` if set, else ``/etc/resolv.conf``;
    ``max_outstanding`` from ``ANYEVENT_MAX_OUTSTANDING_DNS`` (default 10).
    """
    global RESOLVER
    if RESOLVER is None:
        res = Resolver(max_outstanding=int(os.environ.get("ANYEVENT_MAX_OUTSTANDING_DNS") or 0) or 10)
        conf = os.environ.get("ANYEVENT_RESOLV_CONF")
        if conf:
            res._load_resolv_conf_file(conf)
        else:
            res.os_config()
        RESOLVER = res
    return RESOLVER


def _field4(cb: NamesCb) -> RecordsCb:
    """Adapt ``cb`` to receive the first data field of each record."""
    return lambda *rrs: cb(*[rr[4] for rr in rrs])


def a(domain: str, cb: NamesCb) -> None:
    """``cb(*ipv4_texts)`` for ``domain``'s A records (``AnyEvent::DNS::a``)."""
    resolver().resolve(domain, "a", _field4(cb))


def aaaa(domain: str, cb: NamesCb) -> None:
    """``cb(*ipv6_texts)`` for ``domain``'s AAAA records."""
    resolver().resolve(domain, "aaaa", _field4(cb))


def mx(domain: str, cb: NamesCb) -> None:
    """``cb(*exchange_names)``, lowest preference first."""
    resolver().resolve(domain, "mx", lambda *rrs: cb(*[rr[5] for rr in sorted(rrs, key=lambda r: r[4])]))


def ns(domain: str, cb: NamesCb) -> None:
    """``cb(*nameserver_names)``."""
    resolver().resolve(domain, "ns", _field4(cb))


def txt(domain: str, cb: NamesCb) -> None:
    """``cb(*texts)``: the first string of each TXT record (use
    ``resolver().resolve(domain, "txt", cb)`` for all of them)."""
    resolver().resolve(domain, "txt", _field4(cb))


def ptr(domain: str, cb: NamesCb) -> None:
    """``cb(*names)`` for PTR records of ``domain`` (see :func:`reverse_lookup`)."""
    resolver().resolve(domain, "ptr", _field4(cb))


def any(domain: str, cb: RecordsCb) -> None:  # noqa: A001 - Perl's name
    """``cb(*records)``: every record an ANY query returns (RFC 8482 discourages it)."""
    resolver().resolve(domain, "*", cb)


def srv(service: str, proto: str, domain: str, cb: SrvCb) -> None:
    """``cb(*(priority, weight, port, target))`` for ``_service._proto.domain``,
    lowest priority first, within a priority ordered by RFC 2782 weighted
    random choice (dnspython's ``weighted_processing_order``, which gives a
    weight-0 record weight 0.1; Perl gives it about ``1/(sum+1)`` as first).
    Port of ``AnyEvent::DNS::srv``.
    """
    def order(*rrs: Record) -> None:
        cb(*[item.rr for item in dns.rdtypes.util.weighted_processing_order(  # type: ignore[no-untyped-call]
            _SrvItem(rr[4:8]) for rr in rrs)])
    resolver().resolve("_%s._%s.%s" % (service, proto, domain), "srv", order)


class _SrvItem:
    """An SRV tuple as dnspython's RFC 2782 ordering wants it (the two methods
    :class:`dns.rdtypes.IN.SRV.SRV` has)."""
    __slots__ = ("rr",)

    def __init__(self, rr: tuple[int, int, int, str]) -> None:
        self.rr = rr

    def _processing_priority(self) -> int:
        return self.rr[0]

    def _processing_weight(self) -> int:
        return self.rr[1]


def _ptr_name(ipn: bytes) -> str | None:
    """The in-addr.arpa/ip6.arpa name (str, final dot) for a network-form
    address, or ``None``; v4-mapped and v4-compatible IPv6 addresses use
    in-addr.arpa, as Perl's ``_munge_ptr``.  Built by :mod:`dns.reversename`."""
    if len(ipn) == 16 and ipn[:10] == b"\0" * 10 and ipn[10:12] in (b"\xff\xff", b"\0\0"):
        ipn = ipn[12:]
    if len(ipn) not in (4, 16):
        return None
    text = socket.inet_ntop(socket.AF_INET if len(ipn) == 4 else socket.AF_INET6, ipn)
    return dns.reversename.from_address(text).to_text()


def reverse_lookup(ip: str, cb: NamesCb) -> None:
    """``cb(*hostnames)`` for an IPv4/IPv6 address text (v4-mapped handled);
    ``cb()`` if it is not an address.  Port of ``reverse_lookup``.
    """
    ipn = _aesock.parse_address(ip)
    name = ipn and _ptr_name(ipn)
    if not name:
        cb()
        return
    resolver().resolve(name, "ptr", _field4(cb))


def reverse_verify(ip: str, cb: NamesCb) -> None:
    """Like :func:`reverse_lookup`, but passes only names whose forward
    lookup (A or AAAA) gives the address back.  Port of ``reverse_verify``.
    """
    ipn = _aesock.parse_address(ip)
    name = ipn and _ptr_name(ipn)
    if not ipn or not name:
        cb()
        return
    text = _aesock.format_address(ipn)
    qtype = "a" if len(ipn) == 4 else "aaaa"
    verified: list[str] = []

    def got_names(*names: str) -> None:
        pending = [len(names)]
        if not names:
            cb()
            return
        for host in names:
            def checked(*rrs: Record, host: str = host) -> None:
                verified.extend(host for rr in rrs if rr[4] == text)
                pending[0] -= 1
                if not pending[0]:
                    cb(*verified)
            resolver().resolve(host + ".", qtype, checked)
    ptr(name, got_names)
