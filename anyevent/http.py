"""Non-blocking HTTP/HTTPS client (port of AnyEvent::HTTP 2.25).

::

    from anyevent.http import http_get

    def done(body, hdr):
        if str(hdr["Status"]).startswith("2"):
            print(len(body), hdr["content-type"])
        else:
            print("error", hdr["Status"], hdr["Reason"])

    http_get("http://example.com/", done)      # Perl's void context: nothing to keep
    body, hdr = await http_get("https://example.com/")   # in a coroutine

Every request is made on the one process-wide loop through
:class:`anyevent.handle.Handle`; connections are kept alive and reused per
scheme, host, port and ``sessionid``, at most :data:`MAX_PER_HOST` at a time
per host (further requests wait in a queue).

The completion callback is ``cb(body, headers)``: ``body`` is the response
body (:class:`bytes`; ``None`` on error; the Handle with
``want_body_handle``), ``headers`` a :class:`dict` of the response headers
with lower-cased names (a repeated header's values joined with ``","``) and
the pseudo-headers ``Status`` (:class:`int`), ``Reason``, ``HTTPVersion``,
``URL``, ``Redirect`` (``(body, headers)`` of the previous response of a
redirect chain), ``OrigStatus``/``OrigReason`` (the server's status when the
body phase failed).  Failures are the pseudo-statuses:

=====  ============================================================
595    connecting (refused, no address, proxy handshake)
596    TLS negotiation, sending the request, reading the headers
597    receiving the body
598    cancelled by ``on_header`` or ``on_body``
599    anything else (bad URL, too many redirections, garbled response)
=====  ============================================================

Differences from Perl (PORTING.md, "AnyEvent::HTTP", says why): https
verifies the server by default; the return value is a :class:`Request` that
dropping does not cancel, and it can be awaited; ``Status`` is an int; kept
connections are also keyed by proxy and TLS context; a header block over
:data:`MAX_HEADER_SIZE`, a Content-Length that is not a number and a body
longer than its Content-Length are errors; a redirect chain cut short by
``recurse`` is a 599; 1xx interim responses other than 101 are skipped; a
cookie's ``domain`` must cover the host that set it; unknown options are a
:class:`TypeError`.
"""

from __future__ import annotations

import calendar
import errno
import os
import re
import socket
import time
from collections import deque
from typing import (TYPE_CHECKING, Any, Callable, Generator, Mapping, MutableMapping, Protocol,
                    TypedDict, Union)
from urllib.parse import urljoin

from . import socket as _socket
from .handle import Handle
from .reactor import CondVar, _report, loop
from ._idn import idn_to_ascii

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .tls import TLS

__all__ = [
    "http_request", "http_get", "http_head", "http_post", "Request", "set_proxy",
    "cookie_jar_expire", "format_date", "parse_date",
    "USERAGENT", "MAX_RECURSE", "PERSISTENT_TIMEOUT", "TIMEOUT", "MAX_PER_HOST", "PROXY", "ACTIVE",
]

VERSION = "2.25"
#: The default ``User-Agent`` header (``$AnyEvent::HTTP::USERAGENT``).
USERAGENT = ("Mozilla/5.0 (compatible; U; AnyEvent-HTTP/%s; +http://software.schmorp.de/pkg/AnyEvent)"
             % VERSION)
#: The default ``recurse`` (redirections followed).
MAX_RECURSE = 10
#: Seconds an idle persistent connection is kept.
PERSISTENT_TIMEOUT = 3.0
#: The default ``timeout`` in seconds (of inactivity, not of the whole request).
TIMEOUT = 300.0
#: Connections per host at most; further requests wait for one to end.
MAX_PER_HOST = 4
#: The default proxy ``[host, port, scheme]`` (see :func:`set_proxy`), or None.
PROXY: list[Any] | None = None
#: Open, non-idle connections right now (read it as ``anyevent.http.ACTIVE``).
ACTIVE = 0

#: ``cb(body, headers)``: the completion callback.
HttpCb = Callable[[Any, dict[str, Any]], object]
#: A cookie jar: ``{"version": 2, host: {path: {name: {"value": ..., ...}}}}``.
CookieJar = MutableMapping[str, Any]


class TcpConnect(Protocol):
    """The ``tcp_connect`` option: :func:`anyevent.socket.tcp_connect`'s shape."""

    def __call__(self, host: str, service: str | int, cb: Callable[..., object],
                 prepare_cb: Callable[[socket.socket], Any] | None = ..., /) -> object: ...


class HttpOptions(TypedDict, total=False):
    """The keyword options of :func:`http_request` (Perl's names and meanings;
    ``cb`` is the completion callback given last, as Perl passes it)."""

    cb: HttpCb

    recurse: int
    headers: Mapping[str, Union[str, bytes, None]]
    timeout: float
    proxy: Union[list[Any], tuple[Any, ...], None]
    body: Union[bytes, str, None]
    cookie_jar: Union[CookieJar, None]
    tls_ctx: Union[str, Mapping[str, Any], "TLS", None]
    sessionid: Any
    on_prepare: Union[Callable[[socket.socket], Any], None]
    tcp_connect: Union[TcpConnect, None]
    on_header: Union[Callable[[dict[str, Any]], Any], None]
    on_body: Union[Callable[[bytes, dict[str, Any]], Any], None]
    want_body_handle: bool
    persistent: bool
    keepalive: bool
    handle_params: Union[Mapping[str, Any], None]


_OPTIONS = frozenset(HttpOptions.__annotations__) - {"cb"}

# ---------------------------------------------------------------------------
# connection slots per host
# ---------------------------------------------------------------------------

_CO_SLOT: dict[str, list[Any]] = {}  # host -> [connections in use, deque of waiting callbacks]


def _slot_schedule(host: str) -> None:
    global ACTIVE
    slot = _CO_SLOT[host]
    while slot[0] < MAX_PER_HOST:
        if slot[1]:
            slot[0] += 1
            ACTIVE += 1
            slot[1].popleft()()
        else:
            if not slot[0]:
                del _CO_SLOT[host]
            break


def _get_slot(host: str, cb: Callable[[], object]) -> None:
    global ACTIVE
    slot = _CO_SLOT.get(host)
    if slot is None:
        slot = _CO_SLOT[host] = [0, deque()]
    elif not slot[1] and slot[0] < MAX_PER_HOST:  # free, nobody waiting: at once
        slot[0] += 1
        ACTIVE += 1
        cb()
        return
    slot[1].append(cb)
    _slot_schedule(host)


def _free_slot(host: str) -> None:
    global ACTIVE
    ACTIVE -= 1
    _CO_SLOT[host][0] -= 1
    _slot_schedule(host)


# ---------------------------------------------------------------------------
# cookies
# ---------------------------------------------------------------------------

def _check_jar(jar: CookieJar) -> None:
    if jar.get("version") != 2:
        jar.clear()


def cookie_jar_expire(jar: CookieJar, session_end: bool = False) -> None:
    """Remove the expired cookies from ``jar`` (and, with ``session_end``, the
    session cookies: those without ``_expires``).  A jar whose ``version`` is
    not 2 is emptied.  Port of ``AnyEvent::HTTP::cookie_jar_expire``.
    """
    _check_jar(jar)
    anow = loop.now()
    for chost, paths in list(jar.items()):
        if not isinstance(paths, dict):
            continue
        for cpath, cookies in list(paths.items()):
            for name, kv in list(cookies.items()):
                if "_expires" in kv:
                    if anow > kv["_expires"]:
                        del cookies[name]
                elif session_end:
                    del cookies[name]
            if not cookies:
                del paths[cpath]
        if not paths:
            del jar[chost]


_COOKIE_SPECIAL = re.compile(r"[=;,\s]", re.ASCII)


def _cookie_jar_extract(jar: CookieJar, scheme: str, host: str, path: str) -> list[str]:
    """The ``name=value`` strings of the cookies ``jar`` sends to ``host`` for ``path``."""
    _check_jar(jar)
    if not host.isascii():
        host = idn_to_ascii(host)
    found = []
    anow = loop.now()
    for chost, paths in jar.items():
        if not isinstance(paths, dict):
            continue
        if chost != host and not host.endswith("." + chost):
            continue
        for cpath, cookies in paths.items():
            if not path.startswith(cpath):
                continue
            for name, kv in list(cookies.items()):
                if scheme != "https" and "secure" in kv:
                    continue
                if "_expires" in kv and anow > kv["_expires"]:
                    del cookies[name]
                    continue
                value = kv.get("value")
                value = "" if value is None else str(value)
                if _COOKIE_SPECIAL.search(value):
                    value = '"%s"' % re.sub(r'([\\"])', r"\\\1", value)
                found.append("%s=%s" % (name, value))
    return found


_COOKIE_ATTR = re.compile(r"""\s*(?:
        expires \s*=\s* ([A-Z][a-z][a-z]+,\ [^,;]+)
      | ([^=;,\s]+) (?: \s*=\s* (?: "((?:[^\\"]+|\\.)*)" | ([^;,\s]*) ) )?
    )""", re.X | re.I | re.S | re.ASCII)
_COOKIE_SEMI = re.compile(r"\s*;", re.ASCII)
_COOKIE_COMMA = re.compile(r"\s*,", re.ASCII)
_COOKIE_UNQUOTE = re.compile(r"\\(.)", re.S)
_TWO_LETTER_SLD = re.compile(r"\.[^.][^.]\.[^.][^.]$")
_PERL_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def _perl_number(text: Any) -> float:
    """The number Perl reads from the front of ``text`` (0 if none)."""
    m = _PERL_NUMBER.match(text or "")
    if not m:
        return 0
    value = float(m.group(1))
    return int(value) if value.is_integer() else value


def _cookie_attrs(text: str, pos: int) -> tuple[list[Any], int]:
    """One cookie's ``[name, value, attr, value, ...]`` from ``text`` at ``pos``."""
    kv: list[Any] = []
    while True:
        m = _COOKIE_ATTR.match(text, pos)
        if m is None:
            break
        pos = m.end()
        if m.group(1) is not None:
            name, value = "expires", m.group(1)
        elif m.group(3) is not None:
            name, value = m.group(2), _COOKIE_UNQUOTE.sub(r"\1", m.group(3))
        else:
            name, value = m.group(2), m.group(4)
        kv += (name.lower() if kv else name, value)
        m = _COOKIE_SEMI.match(text, pos)
        if m is None:
            break
        pos = m.end()
    return kv, pos


def _cookie_domain(kv: dict[str, Any], host: str) -> str | None:
    """The jar key for a cookie set by ``host``; None to refuse the cookie."""
    if "domain" not in kv:
        return host
    cdom = kv["domain"] or ""
    if not cdom.startswith("."):
        cdom = "." + cdom
    if cdom.endswith("."):
        return None
    if cdom.count(".") < (3 if _TWO_LETTER_SLD.search(cdom) else 2):
        return None
    cdom = cdom[1:]
    if host.lower() != cdom.lower() and not host.lower().endswith("." + cdom.lower()):
        return None  # not in Perl: a server may only set cookies for its own domain
    return cdom


def _cookie_jar_set_cookie(jar: CookieJar, set_cookie: str | None, host: str,
                           date: str | None) -> None:
    """Store the cookies of a ``Set-Cookie`` header (values joined with ",") in ``jar``."""
    _check_jar(jar)
    if set_cookie is None:
        return
    anow = int(loop.now())
    snow = None  # the server's time
    pos = 0
    while True:
        attrs, pos = _cookie_attrs(set_cookie, pos)
        if not attrs:
            return
        name = attrs[0]
        kv = {"value": attrs[1]}
        kv.update(zip(attrs[2::2], attrs[3::2]))
        if "max-age" in kv:
            kv["_expires"] = anow + _perl_number(kv.pop("max-age"))
        elif "expires" in kv:
            if not snow:
                snow = (parse_date(date) if date else None) or anow
            kv["_expires"] = anow + ((parse_date(kv.pop("expires")) or 0) - snow)
        else:
            kv.pop("_expires", None)
        cpath = kv.pop("path", None) or "/"
        cdom = _cookie_domain(kv, host)
        if cdom is None:
            return  # Perl's "next" leaves its one-element loop: later cookies are dropped too
        jar["version"] = 2
        jar.setdefault(cdom.lower(), {}).setdefault(cpath, {})[name] = kv
        m = _COOKIE_COMMA.match(set_cookie, pos)
        if m is None:
            return
        pos = m.end()


# ---------------------------------------------------------------------------
# persistent connections
# ---------------------------------------------------------------------------

# (scheme, host, port, sessionid, proxy, TLS context) -> idle handles
_KA_CACHE: dict[tuple[Any, ...], list[Handle]] = {}


def _ka_fetch(key: tuple[Any, ...]) -> Handle:
    """The most recently stored idle connection for ``key`` (one must exist)."""
    handles = _KA_CACHE[key]
    hdl = handles.pop()
    if not handles:
        del _KA_CACHE[key]
    return hdl


def _ka_store(key: tuple[Any, ...], hdl: Handle) -> None:
    """Keep ``hdl`` idle for reuse: any read, EOF, error or PERSISTENT_TIMEOUT
    seconds without activity destroys it."""
    def forget(*_: object) -> None:
        handles = _KA_CACHE.get(key)
        if handles is not None and hdl in handles:
            handles.remove(hdl)
            if not handles:
                del _KA_CACHE[key]
        hdl.destroy()

    hdl.on_error(forget)
    hdl.on_eof(forget)
    hdl.on_read(forget)
    hdl.timeout(PERSISTENT_TIMEOUT)
    handles = _KA_CACHE.setdefault(key, [])
    handles.append(hdl)
    while len(handles) > MAX_PER_HOST:
        handles.pop(0).destroy()  # Perl lets it run into its timeout; nobody can use it


# ---------------------------------------------------------------------------
# response headers, dates, proxy
# ---------------------------------------------------------------------------

_STATUS_LINE = re.compile(r"HTTP/0*([0-9.]+)\s+([0-9]{3})(?:\s+([^\n]*))?\n", re.I | re.ASCII)
# Perl's "((?: [^\012]+ | \012[\011\040] )*)" without its nested quantifier
# (which backtracks exponentially here): continuation lines start with a blank
_HEADER_LINE = re.compile(r"([^:\000-\037]*):[\t ]*([^\n]*(?:\n[\t ][^\n]*)*)\n")
_HEADER_BLOCK = re.compile(r"(?:[^:\000-\037]*:[\t ]*[^\n]*(?:\n[\t ][^\n]*)*\n)*")
_CONNECT_LINE = re.compile(r"HTTP/([0-9.]+)\s+([0-9]{3})(?:\s+([^\r\n]*))?", re.I | re.ASCII)


def _parse_hdr(text: str, pos: int) -> dict[str, Any] | None:
    """The header lines of ``text`` from ``pos`` (CRs removed) as a dict of
    lower-cased names (repeated names joined with ","); None when the block
    is garbled.  Port of ``_parse_hdr``."""
    hdr: dict[str, Any] = {}
    block = text[pos:]
    if "\n " not in block and "\n\t" not in block:  # no folding: split in C
        lines = block.split("\n")
        del lines[-1]  # (after the block's last newline)
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                return None
            if not name.isprintable():  # control characters (and others): the full pattern
                return _parse_hdr_slowly(text, pos)
            name = name.lower()
            value = value.lstrip(" \t")
            old = hdr.get(name)
            hdr[name] = value if old is None else old + "," + value
        return hdr
    return _parse_hdr_slowly(text, pos)


def _parse_hdr_slowly(text: str, pos: int) -> dict[str, Any] | None:
    """:func:`_parse_hdr` with Perl's patterns (folded lines, any byte in a name)."""
    hdr: dict[str, Any] = {}
    if _HEADER_BLOCK.fullmatch(text, pos) is None:
        return None
    for name, value in _HEADER_LINE.findall(text, pos):
        name = name.lower()
        old = hdr.get(name)
        hdr[name] = value if old is None else old + "," + value
    return hdr


#: The most bytes a response's (or a proxy's) header block may have.
MAX_HEADER_SIZE = 256 * 1024


class _HeadReader:
    """A read request for a header block: ``cb(hdl, block, eol)`` with the
    bytes before the first empty line (``\n`` or ``\r\n`` after a ``\n``
    or at the start: Perl's ``$qr_nlnl``).  The search resumes where it
    stopped (linear in the block however it arrives).  A block over
    :data:`MAX_HEADER_SIZE` bytes calls ``too_long()`` instead."""

    __slots__ = ("cb", "too_long", "pos")

    def __init__(self, cb: Callable[[Handle, bytes, bytes], object],
                 too_long: Callable[[], object]) -> None:
        self.cb, self.too_long = cb, too_long
        self.pos = 0

    def __call__(self, hdl: Handle) -> bool:
        rbuf = hdl.rbuf
        if rbuf[:1] == b"\n" or rbuf[:2] == b"\r\n":
            at = 0
        else:
            start = self.pos if self.pos < len(rbuf) else 0
            crlf = rbuf.find(b"\n\r\n", start)
            lf = rbuf.find(b"\n\n", start, len(rbuf) if crlf < 0 else crlf + 2)
            if lf < 0 and crlf < 0:
                if len(rbuf) > MAX_HEADER_SIZE:
                    self.too_long()
                    return True
                self.pos = max(0, len(rbuf) - 2)
                return False
            at = (lf if lf >= 0 else crlf) + 1
        end = at + (1 if rbuf[at] == 10 else 2)
        block, eol = bytes(rbuf[:at]), bytes(rbuf[at:end])
        del rbuf[:end]
        self.cb(hdl, block, eol)
        return True


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE_FORMATS = (
    # RFC 822/1123 (" ") and cookie dates ("-")
    (re.compile(r"[A-Z][a-z][a-z]+, ([0-9][0-9]?)[- ]([A-Z][a-z][a-z])[- ]([0-9]{4}) "
                r"([0-9][0-9]?):([0-9][0-9]?):([0-9][0-9]?) GMT\Z"), (1, 2, 3, 4, 5, 6)),
    # RFC 850: two-digit years
    (re.compile(r"[A-Z][a-z][a-z]+, ([0-9][0-9]?)-([A-Z][a-z][a-z])-([0-9][0-9]) "
                r"([0-9][0-9]?):([0-9][0-9]?):([0-9][0-9]?) GMT\Z"), (1, 2, 3, 4, 5, 6)),
    # ISO C's asctime
    (re.compile(r"[A-Z][a-z][a-z]+ ([A-Z][a-z][a-z]) ([0-9 ]?[0-9]) "
                r"([0-9][0-9]?):([0-9][0-9]?):([0-9][0-9]?) ([0-9]{4})\Z"), (2, 1, 6, 3, 4, 5)),
)


def format_date(timestamp: float) -> str:
    """An HTTP date (RFC 1123, ``"Sun, 06 Nov 1994 08:49:37 GMT"``) for a POSIX
    timestamp in seconds.  Port of ``AnyEvent::HTTP::format_date``."""
    t = time.gmtime(timestamp)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


def parse_date(date: str) -> int | None:
    """The POSIX timestamp (seconds) of an HTTP date (RFC 1123, RFC 850, asctime)
    or a Netscape cookie date; None if ``date`` is none of them or not a valid
    time.  Port of ``AnyEvent::HTTP::parse_date``."""
    for pattern, order in _DATE_FORMATS:
        m = pattern.match(date)
        if m is None:
            continue
        d, mon, y, hh, mm, ss = (m.group(i) for i in order)
        year = int(y)
        if len(y) == 2:
            year += 2000 if year < 69 else 1900
        if mon not in _MONTHS:
            return None
        try:
            parts = (year, _MONTHS.index(mon) + 1, int(d), int(hh), int(mm), int(ss))
            if not (1 <= parts[2] <= calendar.monthrange(year, parts[1])[1]
                    and parts[3] < 24 and parts[4] < 60 and parts[5] < 60):
                return None
        except ValueError:
            return None
        return calendar.timegm(parts + (0, 0, 0))
    return None


_PROXY_URL = re.compile(r"(http)://([^:/]+)(?::(\d*))?", re.I)


def set_proxy(url: str | None) -> None:
    """Set the default proxy from ``"http://host[:port]"`` (port 3128 if left
    out); None or ``""`` clears it.  Raises :class:`ValueError` for another
    form.  At import it is read from the ``http_proxy`` environment variable
    (errors ignored), as Perl does.  Port of ``AnyEvent::HTTP::set_proxy``."""
    global PROXY
    if url:
        m = _PROXY_URL.match(url)
        if m is None:
            raise ValueError("%s: invalid proxy URL" % url)
        PROXY = [m.group(2), int(m.group(3) or 3128), m.group(1)]
    else:
        PROXY = None


try:
    set_proxy(os.environ.get("http_proxy"))
except ValueError:
    pass


# ---------------------------------------------------------------------------
# http_request
# ---------------------------------------------------------------------------

_TLS_CTX_LOW = {"cache": 1, "sslv2": 1}
_TLS_CTX_HIGH = {"cache": 1, "verify": 1, "verify_peername": "https"}

_IDEMPOTENT = frozenset((
    "DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE",
    "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY", "LABEL", "LINK", "MERGE",
    "MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "ORDERPATCH",
    "PROPFIND", "PROPPATCH", "REBIND", "REPORT", "SEARCH", "UNBIND", "UNCHECKOUT", "UNLINK",
    "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
))

_URL = re.compile(r"([^:]+):(?://([^/?#]*))?([^?#]*)(\?[^#]*)?(?:#(.*))?\Z", re.S)
_AUTHORITY = re.compile(r"(?:.*@)?([^@]+?)(?::(\d+))?\Z", re.S)
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")
_DIGITS = re.compile(r"[ \t]*([0-9]+)[ \t]*\Z")
_KEEPALIVE = re.compile(r"\bkeep-?alive\b", re.I)
_CLOSE = re.compile(r"\bclose\b", re.I)
_CHUNKED = re.compile(r"\bchunked\b", re.I)
_NO_BODY = frozenset((204, 205, 304))
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_SMALL_BODY = 65536  # bodies up to this are read in one piece, longer ones as they arrive
_LARGE_BODY = _LARGE_READ = 1 << 20  # bodies over 1 MiB are read up to 1 MiB at a time

_URL_CACHE: dict[str, Any] = {}  # url -> what _parse_url made of it


def _parse_url(url: str) -> tuple[str, str, str, int, str, str] | str:
    """``(scheme, authority, host, port, Host header, path+query)`` of ``url``,
    or the ``Reason`` why it cannot be requested (remembered for the next time)."""
    m = _URL.match(url)
    scheme = m.group(1).lower() if m else ""
    a = _AUTHORITY.match(m.group(2) or "") if m else None
    parsed: tuple[str, str, str, int, str, str] | str
    if scheme not in ("http", "https"):
        parsed = "Only http and https URL schemes supported"
    elif a is None:
        parsed = "Unparsable URL"
    else:
        uhost = a.group(1).lower()
        port = a.group(2)
        host = uhost if port is None else "%s:%s" % (uhost, port)
        if uhost.startswith("[") and uhost.endswith("]"):
            uhost = uhost[1:-1]
        upath = m.group(3) + (m.group(4) or "")  # type: ignore[union-attr]
        if not upath.startswith("/"):
            upath = "/" + upath
        parsed = (scheme, m.group(2) or "", uhost,  # type: ignore[union-attr]
                  int(port) if port is not None else (80 if scheme == "http" else 443), host, upath)
    if len(_URL_CACHE) >= 1024:
        _URL_CACHE.clear()
    _URL_CACHE[url] = parsed
    return parsed


_running: set[_State] = set()  # requests under way: what keeps a dropped Request going


class Request:
    """What :func:`http_request` returns: the request under way.

    ``req.cancel()`` cancels it (the callback is not called; Perl's ``undef
    $guard``).  Dropping the object does **not** cancel: a request written in
    Perl's void style runs to its end.  ``await req`` (on every model) gives
    ``(body, headers)`` when it completes, whether or not a callback was
    given; awaiting a cancelled request raises :class:`asyncio.CancelledError`.
    ``req.done`` tells whether the callback ran (or would have).
    """

    __slots__ = ("_state", "_result", "_cv", "_cancelled", "__weakref__")

    def __init__(self) -> None:
        self._state: _State | None = None
        self._result: tuple[Any, dict[str, Any]] | None = None
        self._cv: CondVar[Any] | None = None
        self._cancelled = False

    @property
    def done(self) -> bool:
        """True once the request completed (its ``(body, headers)`` are known)."""
        return self._result is not None

    def cancel(self) -> None:
        """Cancel the request: its connection is closed, the callback never runs
        (nothing happens once it completed)."""
        state, self._state = self._state, None
        if state is None:
            return
        state.destroy()
        self._cancelled = True
        if self._cv is not None:
            self._cv.croak(_cancelled_error())

    def _complete(self, body: Any, hdr: dict[str, Any]) -> None:
        self._state = None
        self._result = (body, hdr)
        if self._cv is not None:
            self._cv.send()

    def __await__(self) -> Generator[Any, None, tuple[Any, dict[str, Any]]]:
        if self._result is None:
            if self._cancelled:
                raise _cancelled_error()
            if self._cv is None:
                self._cv = CondVar()
            yield from self._cv.__await__()
        assert self._result is not None
        return self._result

    def __repr__(self) -> str:
        state = self._state
        what = "done" if self._result is not None else (
            "%s %s" % (state.method, state.url) if state is not None else "cancelled")
        return "<anyevent.http.Request %s>" % what


_CAPITALISED: dict[str, str] = {}


def _capitalise(name: str) -> str:
    """``"Name: "`` for a header name (Perl's ``"\\u$_: "``)."""
    if len(_CAPITALISED) >= 1024:
        _CAPITALISED.clear()
    text = _CAPITALISED[name] = name[:1].upper() + name[1:] + ": "
    return text


def _ctx_key(tls_ctx: Any) -> Any:
    """What tells TLS contexts apart in the connection cache's key: equal
    option dicts are the same context (as ``tls_ctx_from`` makes them)."""
    if isinstance(tls_ctx, Mapping):
        try:
            return frozenset(tls_ctx.items())
        except TypeError:  # a list or dict among the values
            from .tls import _freeze
            return _freeze(tls_ctx)
    return tls_ctx  # None, "low", "high" or a TLS object (by identity)


def _cancelled_error() -> BaseException:
    import asyncio
    return asyncio.CancelledError("http request cancelled")


def _call(cb: Callable[..., Any], *args: Any) -> Any:
    """Call a user callback; an exception goes to the loop's exception handler."""
    try:
        return cb(*args)
    except Exception as exc:  # noqa: BLE001 - the request's connection must not pay for it
        _report(exc, "http_request callback")
        return None


def _encode(value: str | bytes, what: str) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode("latin-1")
    if b"\r" in data or b"\n" in data:
        raise ValueError("http_request: %s contains a line break: %r" % (what, value))
    return data


class _State:
    """One request of a chain (Perl's ``%state`` and the closures around it)."""

    __slots__ = (
        "owner", "cb", "method", "url", "arg", "recurse", "pseudo", "hdr", "uscheme", "uhost",
        "uport", "uauthority", "upath", "rhost", "rport", "rpath", "proxy", "timeout",
        "persistent", "keepalive", "idempotent", "ka_key", "was_persistent", "ae_error",
        "alive", "handle", "slot_host", "connect_guard", "redirect", "length", "body",
        "received", "on_body", "old_eof", "__weakref__",
    )
    hdr: dict[str, Any]
    body: list[bytes | bytearray]
    length: int
    received: int
    on_body: Callable[[bytes, dict[str, Any]], Any] | None

    def __init__(self, owner: Request, cb: HttpCb | None, method: str, url: str,
                 arg: dict[str, Any], recurse: int, pseudo: dict[str, Any]) -> None:
        self.owner = owner
        self.cb = cb
        self.method = method
        self.url = url
        self.arg = arg
        self.recurse = recurse
        self.pseudo = pseudo
        self.alive = True
        self.handle: Handle | None = None
        self.slot_host: str | None = None
        self.connect_guard: Any = None
        self.was_persistent = False
        self.ae_error = 595
        self.redirect = False
        self.old_eof: Any = None

    # -- the end of a request ------------------------------------------------

    def destroy(self) -> None:
        """Perl's ``_destroy_state``: close the connection, give back the slot."""
        self.alive = False
        _running.discard(self)
        hdl, self.handle = self.handle, None
        if hdl is not None:
            hdl.destroy()
        self.release()

    def release(self) -> None:
        """Let go of the connection slot and the connect attempt (``%state = ()``)."""
        host, self.slot_host = self.slot_host, None
        if host is not None:
            _free_slot(host)
        guard, self.connect_guard = self.connect_guard, None
        if guard is not None and hasattr(guard, "cancel"):
            guard.cancel()

    def complete(self, body: Any, hdr: dict[str, Any]) -> None:
        self.owner._complete(body, hdr)
        if self.cb is not None:
            _call(self.cb, body, hdr)

    def error(self, status: int, reason: Any) -> None:
        """Fail with pseudo-status ``status`` (Perl's ``_error``)."""
        self.destroy()
        hdr = dict(self.pseudo)
        hdr["Status"] = status
        hdr["Reason"] = reason
        self.complete(None, hdr)

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        arg = self.arg
        headers = arg.get("headers")
        hdr: dict[str, Any] = {k.lower(): v for k, v in headers.items()} if headers else {}
        if self.recurse < 0:
            return self.error(599, "Too many redirections")
        proxy = arg["proxy"] if "proxy" in arg else PROXY
        self.timeout = arg.get("timeout") or TIMEOUT
        parsed = _URL_CACHE.get(self.url) or _parse_url(self.url)
        if isinstance(parsed, str):
            return self.error(599, parsed)
        scheme, uauthority, uhost, uport, host, upath = parsed
        if "host" not in hdr:
            hdr["host"] = host
        self.uscheme, self.uhost, self.uport = scheme, uhost, uport
        self.uauthority, self.upath = uauthority, upath
        jar = arg.get("cookie_jar")
        if jar is not None:
            cookies = _cookie_jar_extract(jar, scheme, uhost, upath)
            if cookies:
                hdr["cookie"] = "; ".join(cookies)
        if proxy:
            self.rpath, self.rhost, self.rport = self.url, str(proxy[0]).lower(), proxy[1]
            rscheme = (proxy[2] if len(proxy) > 2 and proxy[2] is not None else "http").lower()
            if rscheme != "http":
                return self.error(599, "Only http proxies are supported")
        else:
            self.rhost, self.rport, self.rpath = uhost, uport, upath
        self.proxy = proxy
        if "referer" not in hdr:
            hdr["referer"] = "%s://%s%s" % (scheme, uauthority, upath)
        if "user-agent" not in hdr:
            hdr["user-agent"] = USERAGENT
        body = arg.get("body")
        if body or self.method != "GET":
            hdr["content-length"] = str(len(body or b""))
        self.idempotent = self.method in _IDEMPOTENT
        self.persistent = bool(arg["persistent"]) if "persistent" in arg else self.idempotent
        self.keepalive = bool(arg["keepalive"]) if "keepalive" in arg else not proxy
        # Perl's key is scheme, host, port and sessionid; ours adds the proxy and
        # the TLS context: a request that verifies never rides an unverified connection
        sessionid = arg.get("sessionid")
        self.ka_key = (scheme, uhost, uport, "" if sessionid is None else str(sessionid),
                       proxy and tuple(proxy),
                       _ctx_key(arg.get("tls_ctx")) if scheme == "https" else None)
        hdr["connection"] = ("keep-alive, " if self.keepalive else "") + "Te" \
            if self.persistent else "close, Te"
        if "te" not in hdr:
            hdr["te"] = "trailers"
        self.hdr = hdr
        _running.add(self)
        _get_slot(uhost, self.got_slot)

    def got_slot(self) -> None:
        self.slot_host = self.uhost
        if not self.alive:
            return self.release()
        if self.persistent and self.ka_key in _KA_CACHE:
            self.was_persistent = True
            self.handle = _ka_fetch(self.ka_key)
            self.handle.on_read(None)
            self.prepare_handle()
            if not self.proxy or self.uscheme == "https":  # (a proxy wants the whole URL;
                self.rpath = self.upath                    # Perl sends the path: a bug)
            self.actual_request()
        else:
            connect = self.arg.get("tcp_connect") or _socket.tcp_connect
            on_prepare = self.arg.get("on_prepare") or self.connect_timeout
            guard = connect(self.rhost, self.rport, self.connected, on_prepare)
            if self.alive and self.handle is None:  # (a tcp_connect may call back at once)
                self.connect_guard = guard

    def connect_timeout(self, fh: socket.socket) -> float:
        return self.timeout

    # -- connected ------------------------------------------------------------

    def connected(self, fh: socket.socket | None = None, *_: Any) -> None:
        if not self.alive:  # cancelled meanwhile
            if fh is not None:
                fh.close()
            return
        if fh is None:
            err = _socket.last_error()
            return self.error(self.ae_error, err.strerror if err is not None else "connect failed")
        self.connect_guard = None
        arg = self.arg
        tls_ctx = arg.get("tls_ctx")
        if tls_ctx == "low":
            tls_ctx = _TLS_CTX_LOW
        elif tls_ctx == "high":
            tls_ctx = _TLS_CTX_HIGH
        elif tls_ctx is None and self.uscheme == "https":
            from .tls import default_ctx  # ours, whatever handle.set_tls_ctx put in place
            tls_ctx = default_ctx()
        try:
            params: dict[str, Any] = {**(arg.get("handle_params") or {}), "fh": fh,
                                      "peername": self.uhost, "tls_ctx": tls_ctx}
            self.handle = Handle(**params)
        except Exception as exc:  # noqa: BLE001 - bad handle_params: fail this request
            fh.close()
            return self.error(599, "cannot create handle: %s" % exc)
        self.prepare_handle()
        if self.proxy and self.uscheme == "https":
            self.proxy_connect()
        else:
            if not self.proxy:
                self.hdr.pop("proxy-authorization", None)
            self.actual_request()

    def prepare_handle(self) -> None:
        hdl = self.handle
        assert hdl is not None
        hdl.on_error(self.on_error)
        hdl.on_eof(self.on_eof)
        hdl.timeout_reset()
        hdl.timeout(self.timeout)

    def on_error(self, hdl: Handle, fatal: bool, message: str) -> None:
        self.error(self.ae_error, message)

    def on_eof(self, hdl: Handle) -> None:
        self.error(self.ae_error, "Unexpected end-of-file")

    def proxy_connect(self) -> None:
        auth = self.hdr.pop("proxy-authorization", None)
        line = "CONNECT %s:%s HTTP/1.0\r\n" % (self.uhost, self.uport)
        if auth is not None:
            line += "proxy-authorization: %s\r\n" % auth
        hdl = self.handle
        assert hdl is not None
        hdl.push_write(line.encode("latin-1") + b"\r\n")
        hdl.push_read(_HeadReader(self.proxy_response, self.head_too_long))

    def proxy_response(self, hdl: Handle, line: bytes, eol: bytes) -> None:
        text = line.decode("latin-1")
        m = _CONNECT_LINE.match(text)
        if m is None:
            return self.error(599, "Invalid proxy connect response (%s)" % text)
        if m.group(2) == "200":
            self.rpath = self.upath
            self.actual_request()
        else:
            self.error(int(m.group(2)), m.group(3))

    # -- the request ------------------------------------------------------------

    def actual_request(self) -> None:
        self.ae_error = 596
        hdl = self.handle
        assert hdl is not None
        if self.uscheme == "https" and hdl.tls is None:
            hdl.starttls("connect")
        hdr = self.hdr
        head = ["%s %s HTTP/1.1\r\n" % (self.method, self.rpath)]
        for k, v in self.hdr.items():
            if v is not None:
                head += (_CAPITALISED.get(k) or _capitalise(k),
                         v.decode("latin-1") if type(v) is bytes else v, "\r\n")
        head.append("\r\n")
        body = self.arg.get("body") or b""
        hdl.push_write("".join(head).encode("latin-1") + body)
        if not self.alive:
            return
        self.hdr = {}
        if self.was_persistent and self.idempotent:
            self.old_eof = hdl["on_eof"]
            hdl.on_eof(self.retry)
            hdl.on_read(self.first_byte)
        else:
            hdl.push_read(_HeadReader(self.read_response, self.head_too_long))

    def head_too_long(self) -> None:
        self.error(self.ae_error, "Response header block longer than %d bytes" % MAX_HEADER_SIZE)

    def retry(self, hdl: Handle) -> None:
        """The persisted connection closed before answering: once more on a new one."""
        self.destroy()
        arg = dict(self.arg, persistent=False)
        child = _State(self.owner, self.cb, self.method, self.url, arg, self.recurse - 1,
                       self.pseudo)
        self.owner._state = child
        child.start()

    def first_byte(self, hdl: Handle) -> None:
        if not self.alive:
            return
        hdl.on_eof(self.old_eof)
        self.old_eof = None  # (our own bound method: a cycle through self)
        hdl.on_read(None)
        hdl.push_read(_HeadReader(self.read_response, self.head_too_long))

    # -- the response -----------------------------------------------------------

    def read_response(self, hdl: Handle, line: bytes, eol: bytes) -> None:
        if not self.alive:
            return
        text = line.decode("latin-1")
        if "\r" in text:
            text = text.replace("\r", "")  # Perl weeds out every CR of the block
        m = _STATUS_LINE.match(text)
        if m is None:
            return self.error(599, "Invalid server response")
        status = int(m.group(2))
        if 100 <= status < 200 and status != 101:
            # an interim response (Perl skips 100 only): the real one follows
            return hdl.push_read(_HeadReader(self.read_response, self.head_too_long))
        parsed = _parse_hdr(text, m.end())
        pseudo = self.pseudo
        pseudo["HTTPVersion"] = m.group(1)
        pseudo["Status"] = status
        pseudo["Reason"] = m.group(3)
        if parsed is None:
            return self.error(599, "Garbled response headers")
        parsed.update(pseudo)
        self.hdr = hdr = parsed
        if "location" in hdr:
            hdr["location"] = self.location(hdr["location"])
        if self.recurse:
            if status in (301, 302, 303):
                self.redirect = True
                if self.method != "HEAD":
                    self.method = "GET"
                    self.arg.pop("body", None)
            elif status in (307, 308):
                self.redirect = True
        self.ae_error = 597
        self.body_phase(hdl, hdr, status)

    def location(self, loc: str) -> str:
        """The absolute URL of a ``Location`` header (relative ones resolved)."""
        if loc.startswith("//"):
            return "%s:%s" % (self.uscheme, loc)
        if loc == "":
            return self.url
        if re.match(r"[^:/?#]+:", loc):
            return loc
        return urljoin("%s://%s%s" % (self.uscheme, self.uauthority, self.upath), loc)

    def body_phase(self, hdl: Handle, hdr: dict[str, Any], status: int) -> None:
        """Read the body the way the headers say (Perl's many code paths)."""
        arg = self.arg
        user = not self.redirect  # on_header, on_body, want_body_handle: final responses only
        chunked = "transfer-encoding" in hdr and _CHUNKED.search(hdr["transfer-encoding"]) is not None
        length: int | None = None
        if not chunked and "content-length" in hdr:
            text = hdr["content-length"]
            if not (text.isascii() and text.isdigit()):
                m = _DIGITS.match(text)
                if m is None:
                    return self.finish(None, 597, "Invalid Content-Length: %r" % text)
                text = m.group(1)
            if len(text) > 18:
                return self.finish(None, 597, "Invalid Content-Length: %r" % text)
            length = int(text)
        on_header = arg.get("on_header")
        if user and on_header is not None and not _call(on_header, hdr):
            return self.finish(None, 598, "Request cancelled by on_header")
        if status in _NO_BODY or 100 <= status < 200 or self.method == "HEAD" or length == 0:
            return self.finish(b"", keep=True)
        if user and arg.get("want_body_handle"):
            hdl.on_eof(None)
            hdl.on_error(None)
            hdl.on_read(None)
            self.handle = None
            return self.finish(hdl)
        on_body = arg.get("on_body") if user else None
        self.on_body = on_body
        self.body = []
        if chunked:
            self.received = 0
            hdl.push_read("line", self.read_chunk)
        elif length is not None:
            self.length = length
            if on_body is None and length <= _SMALL_BODY:
                hdl.on_eof(None)
                hdl.push_read("chunk", length, self.got_length)
            else:  # in pieces as they arrive (to on_body, or joined once at the end)
                if on_body is None:
                    hdl.on_eof(None)
                if length > _LARGE_BODY and hdl.max_read_size < _LARGE_READ:
                    hdl.max_read_size = _LARGE_READ  # fewer, larger reads: 20 % faster
                hdl.on_read(self.stream_length)
        elif on_body is not None:
            hdl.on_eof(self.stream_eof)
            hdl.on_read(self.stream_until_eof)
        else:
            hdl.on_eof(None)
            hdl.on_error(self.until_eof_error)
            hdl.on_read(_ignore)

    def got_length(self, hdl: Handle, data: bytes) -> None:
        self.body_end(hdl.rbuf, data)

    def body_end(self, rbuf: bytearray, data: bytes) -> None:
        """The Content-Length body is complete: ``data`` is the answer, unless
        ``rbuf`` holds bytes beyond it."""
        if rbuf:
            return self.finish(None, 597, "Body longer than Content-Length (%d more bytes)"
                               % len(rbuf))
        self.finish(data, keep=True)

    def stream_length(self, hdl: Handle) -> None:
        rbuf = hdl.rbuf
        data: bytes | bytearray
        if len(rbuf) > self.length:
            with memoryview(rbuf) as view:
                data = bytes(view[:self.length])
            del rbuf[:self.length]
        elif self.on_body is None:
            data = hdl.take_rbuf()  # Perl's "delete $_[0]{rbuf}": kept to be joined, no copy
            rbuf = hdl.rbuf
        else:
            data = bytes(rbuf)
            rbuf.clear()
        self.length -= len(data)
        if not self.give(data):
            return
        if self.length <= 0:
            self.body_end(rbuf, b"" if self.on_body is not None else b"".join(self.body))

    def stream_until_eof(self, hdl: Handle) -> None:
        rbuf = hdl.rbuf
        data = bytes(rbuf)
        rbuf.clear()
        self.give(data)

    def stream_eof(self, hdl: Handle) -> None:
        self.finish(b"")

    def until_eof_error(self, hdl: Handle, fatal: bool, message: str) -> None:
        if hdl.errno in (0, errno.EPIPE):
            self.finish(bytes(hdl.rbuf))
        else:
            self.finish(None, self.ae_error, message)

    def give(self, data: bytes | bytearray) -> bool:
        """Pass body data to ``on_body`` (or keep it); False (the request
        finished) if ``on_body`` refused it."""
        if self.on_body is None:
            self.body.append(data)
            return True
        if _call(self.on_body, data, self.hdr):
            return True
        self.finish(None, 598, "Request cancelled by on_body")
        return False

    def read_chunk(self, hdl: Handle, line: bytes, eol: bytes) -> None:
        m = _CHUNK_SIZE.match(line)
        if m is None or len(m.group()) > 15:  # (16 hex digits would be over 2**60 bytes)
            return self.finish(None, self.ae_error, "Garbled chunked transfer encoding")
        size = int(m.group(), 16)
        if size:
            self.received += size
            hdl.push_read("chunk", size, self.got_chunk)
        else:
            if not self.hdr.get("content-length"):
                self.hdr["content-length"] = str(self.received)
            hdl.push_read(_HeadReader(self.read_trailer, self.head_too_long))

    def got_chunk(self, hdl: Handle, data: bytes) -> None:
        if self.give(data):
            hdl.push_read("line", self.chunk_end)

    def chunk_end(self, hdl: Handle, line: bytes, eol: bytes) -> None:
        if line:
            return self.finish(None, self.ae_error, "Garbled chunked transfer encoding")
        hdl.push_read("line", self.read_chunk)

    def read_trailer(self, hdl: Handle, line: bytes, eol: bytes) -> None:
        if line:
            trailer = _parse_hdr(line.decode("latin-1").replace("\r", ""), 0)
            if trailer is None:
                return self.finish(None, self.ae_error, "Garbled response trailers")
            self.hdr.update(trailer)
        self.finish(b"" if self.on_body is not None else b"".join(self.body), keep=True)

    def finish(self, data: Any, status: int | None = None, reason: str | None = None,
               keep: bool = False) -> None:
        """The response is complete (or failed with ``status``, ``reason``)."""
        hdr = self.hdr
        hdl, self.handle = self.handle, None
        if hdl is not None:
            connection = hdr.get("connection") or ""
            if self.persistent and keep and (
                    _KEEPALIVE.search(connection) if hdr["HTTPVersion"] != "1.1"
                    and _version(hdr["HTTPVersion"]) < 1.1
                    else not _CLOSE.search(connection)):
                _ka_store(self.ka_key, hdl)
            else:
                hdl.destroy()
        self.alive = False
        _running.discard(self)
        self.release()
        if status is not None:
            hdr["OrigStatus"], hdr["Status"] = hdr["Status"], status
            hdr["OrigReason"], hdr["Reason"] = hdr["Reason"], reason
        jar = self.arg.get("cookie_jar")
        if jar is not None:
            _cookie_jar_set_cookie(jar, hdr.get("set-cookie"), self.uhost, hdr.get("date"))
        if self.recurse == 0 and "Redirect" in hdr and hdr["Status"] in _REDIRECTS:
            # not in Perl (which returns the last 3xx): a chain cut short is an error
            hdr["OrigStatus"], hdr["Status"] = hdr["Status"], 599
            hdr["OrigReason"], hdr["Reason"] = hdr["Reason"], "Too many redirections"
            data = None
        if self.redirect and "location" in hdr:
            pseudo = {"URL": hdr["location"], "Redirect": (data, hdr)}
            child = _State(self.owner, self.cb, self.method, hdr["location"], self.arg,
                           self.recurse - 1, pseudo)
            self.owner._state = child
            child.start()
        else:
            self.complete(data, hdr)


def _ignore(hdl: Handle) -> None:
    """An ``on_read`` that leaves the data in rbuf (read until EOF)."""


def _version(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float(_perl_number(text))


def http_request(method: str, url: str, callback: HttpCb | None = None, /,
                 **opts: Unpack[HttpOptions]) -> Request:
    """Make an HTTP request; ``cb(body, headers)`` when it completes.

    ``method``: ``"GET"``, ``"POST"``, ... (upper-cased); ``url``: an absolute
    ``http://`` or ``https://`` URL.  ``cb`` may come positionally or as
    ``cb=`` (Perl passes it last); it runs once, never for a cancelled
    request, and may run before this returns (a bad URL, a reused
    connection that fails at once).  ``body`` is :class:`bytes` (``None`` on
    error), ``headers`` a dict: see the module documentation for the keys and
    the pseudo-statuses 595-599.  An exception raised by ``cb``, ``on_header``
    or ``on_body`` goes to the loop's exception handler.

    Options (Perl's, all optional):

    - ``recurse`` (int, default :data:`MAX_RECURSE`): redirections to follow;
      301/302/303 repeat as GET without body (HEAD stays HEAD), 307/308 keep
      the method and body.
    - ``headers`` (mapping name -> str/bytes/None): request headers; ``None``
      suppresses a default (``user-agent``, ``referer``, ``te``, ``host``).
    - ``timeout`` (seconds, default :data:`TIMEOUT`): of inactivity, restarted
      by each connect attempt and by reading or writing.
    - ``proxy`` (``[host, port]`` or ``[host, port, "http"]``, or None for
      none): default :data:`PROXY`; https goes through ``CONNECT``.
    - ``body`` (bytes, or str sent as UTF-8): the request body.
    - ``cookie_jar`` (dict, initially empty): cookies sent and stored (see
      :func:`cookie_jar_expire` for the layout).
    - ``tls_ctx``: ``"low"`` (no verification, Perl's default), ``"high"``
      (chain and host name against the system store), a dict of
      :class:`anyevent.tls.TLS` options or a ``TLS``; left out, the server is
      verified as by ``"high"`` but with the trust that
      :func:`anyevent.tls.default_ctx` uses (``ANYEVENT_CA_FILE``...).
    - ``sessionid``: connections are only reused between requests of the same
      ``sessionid`` (with the same scheme, host and port).
    - ``on_prepare(sock) -> timeout`` and ``tcp_connect(host, port, cb,
      prepare_cb) -> guard``: as for :func:`anyevent.socket.tcp_connect`.
    - ``on_header(headers) -> bool``: false aborts with 598.
    - ``on_body(data, headers) -> bool``: receives the body in pieces
      instead of ``cb`` (which gets ``b""``); false aborts with 598.
    - ``want_body_handle`` (bool): ``cb`` gets the :class:`Handle` positioned
      at the body instead of the body (``b""`` when there is none); it is yours.
    - ``persistent`` (bool; default true for idempotent methods): reuse and
      keep connections; a reused connection closed before the first byte of
      the answer is retried once on a new one.
    - ``keepalive`` (bool; default true without proxy): ask HTTP/1.0 servers
      for keep-alive too.
    - ``handle_params`` (dict): extra :class:`Handle` options.

    Returns a :class:`Request` (``cancel()``, awaitable).  Raises
    :class:`TypeError` for an unknown option and :class:`ValueError` for a
    header name or value with a line break or outside Latin-1.
    Port of ``AnyEvent::HTTP::http_request``.
    """
    cb = opts.pop("cb", callback)  # cb=: Perl's callback-last spelling
    if not _OPTIONS.issuperset(opts):
        raise TypeError("http_request: unknown option(s) %s" % ", ".join(sorted(set(opts) - _OPTIONS)))
    arg: dict[str, Any] = dict(opts)
    for name, value in (arg.get("headers") or {}).items():
        _encode(name, "a header name")
        if value is not None:
            _encode(value, "header %s" % name)
    body = arg.get("body")
    if isinstance(body, str):
        arg["body"] = body.encode()
    recurse = arg.pop("recurse", MAX_RECURSE)
    owner = Request()
    state = _State(owner, cb, method.upper(), url, arg, recurse, {"URL": url})
    owner._state = state
    state.start()
    return owner


def http_get(url: str, callback: HttpCb | None = None, /,
             **opts: Unpack[HttpOptions]) -> Request:
    """``http_request("GET", url, cb, **opts)``.  Port of ``http_get``."""
    return http_request("GET", url, callback, **opts)


def http_head(url: str, callback: HttpCb | None = None, /,
              **opts: Unpack[HttpOptions]) -> Request:
    """``http_request("HEAD", url, cb, **opts)``.  Port of ``http_head``."""
    return http_request("HEAD", url, callback, **opts)


def http_post(url: str, body: bytes | str, callback: HttpCb | None = None, /,
              **opts: Unpack[HttpOptions]) -> Request:
    """``http_request("POST", url, cb, body=body, **opts)``.  Port of ``http_post``."""
    opts["body"] = body
    return http_request("POST", url, callback, **opts)
