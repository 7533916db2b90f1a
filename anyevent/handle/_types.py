"""The built-in read and write types beside ``line``, ``chunk`` and ``regex``.

A read type is a factory ``factory(hdl, cb, *args) -> reader``; the reader,
``reader(hdl) -> bool``, is called whenever data may be waiting and returns
true once it has taken its frame from the front of the read buffer and
called ``cb``.  A write type is ``fn(hdl, *args) -> bytes``.  What a type
may use of the handle is written down in :class:`TypeHost`; the types of
this module (``netstring``, ``packstring``, ``json``, ``cbor``,
``storable``, ``tls_detect``, ``tls_autostart``) use nothing else.  Their
framing is ``anyevent.handle._wire``'s; ``line``, ``chunk`` and
``regex``, whose readers the stream core makes and runs itself, are
``anyevent.handle._stream``'s.
"""

from __future__ import annotations

import errno as _errno
import io as _io
import json as _json
import pickle
import re
import sys
from typing import Any, Callable, Mapping, Protocol

import cbor2

from ._stream import (DataCb, Handle, Reader, TlsDetectCb, ValueCb, register_read_type,
                      register_write_type)
from ._wire import (_JSON_DECODER, _JSON_ENCODER, _JSON_WS, _PICKLE_TABLE, _SSL2_RECORD,
                    _TLS_RECORD, STORABLE_MAX_DEPTH, _check_pickle_depth,
                    _JsonScan, _json_value, _pack_length, _pack_struct, _PlainUnpickler,
                    _take, _take_fast, _unpack_length, Bytes)

try:
    from .. import _speedups  # the compiled core's C twins (setup.py)
except ImportError:  # pure Python
    _speedups = None  # type: ignore[assignment]


class TypeHost(Protocol):
    """What a read or write type may use of the handle it reads for."""

    #: the read buffer; a reader takes its frame off the front
    _rbuf: bytearray
    #: bytes read into the buffer since the handle began: a reader that scans
    #: a frame in pieces keeps its place while ``_rin - len(_rbuf)`` (the stream
    #: offset of the buffer's first byte) stays the same
    _rin: int
    #: the ``rbuf_max`` option (bytes) or None: a frame that declares a longer
    #: length is refused at once
    _rbuf_max: int | None
    #: end-of-file was seen (a number at the very end is complete)
    _eof: bool
    #: the ``json`` and ``cbor`` options (coders, or None)
    _json: Any
    _cbor: Any
    #: the ``storable_trusted`` option: pickles are loaded unrestricted
    _storable_trusted: bool

    def _error(self, errno: int, fatal: bool = False, message: str | None = None) -> None:
        """Report a bad frame: ``EBADMSG`` (malformed), ``ENOSPC`` (too long)."""

    def unshift_read(self, first: Any, /, *args: Any) -> None:
        """Put a reader for the rest of the frame at the front of the queue."""

    def starttls(self, tls: Any, ctx: Any = None) -> None:
        """Start TLS on the handle (``tls_autostart``)."""




def _thaw(hdl: Handle, data: bytes) -> Any:
    if hdl._storable_trusted:
        return pickle.loads(data)
    # (the C pass settles plain data without shared objects, and builtin
    # values without a class or a call need no restricted unpickler; the
    # rest, and every refusal with its reason, is the check's)
    plain = 0 if _speedups is None else _speedups.pickle_plain_depth(
        data, _PICKLE_TABLE, STORABLE_MAX_DEPTH)
    if plain == 2:
        return pickle.loads(data)
    if not plain:
        _check_pickle_depth(data, STORABLE_MAX_DEPTH)
    return _PlainUnpickler(_io.BytesIO(data)).load()


_NETSTRING_HEAD = re.compile(rb"(0|[1-9][0-9]{0,19}):")
_DIGITS = re.compile(rb"[0-9]{0,21}")


def _too_big(hdl: Handle, length: int) -> bool:
    """Fatal ENOSPC when a declared length can never fit in ``rbuf_max``, or
    in memory at all."""
    if length > sys.maxsize or (hdl._rbuf_max is not None and length > hdl._rbuf_max):
        hdl._error(_errno.ENOSPC, True)
        return True
    return False


def _read_netstring(hdl: Handle, cb: DataCb) -> Reader:
    def reader(hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        m = _NETSTRING_HEAD.match(rbuf)
        if m is None:
            if _DIGITS.fullmatch(rbuf) is None or len(rbuf) > 20:
                hdl._error(_errno.EBADMSG)
            return False
        length = int(m.group(1))
        if _too_big(hdl, length):
            return False
        del rbuf[:m.end()]

        def body(hdl: Handle, string: bytes) -> None:
            def comma(hdl: Handle, c: bytes) -> None:
                if c == b",":
                    cb(hdl, string)
                else:
                    hdl._error(_errno.EBADMSG)
            hdl.unshift_read("chunk", 1, comma)
        hdl.unshift_read("chunk", length, body)
        return True
    return reader


def _read_packstring(hdl: Handle, cb: DataCb, fmt: str) -> Reader:
    _pack_struct(fmt)  # validate early
    return _PackstringReader(cb, fmt).read


class _PackstringReader:
    """A length in pack format ``fmt``, then that many bytes, given to
    :meth:`deliver` (``cb(hdl, data)``).  A length that can never fit in
    ``rbuf_max`` is a fatal ``ENOSPC``, a negative or malformed one a fatal
    ``EBADMSG``.  A frame not all there yet is read as a chunk, so that a
    long one is not scanned again on every arrival."""
    __slots__ = ("cb", "fmt")

    def __init__(self, cb: Callable[..., object], fmt: str) -> None:
        self.cb, self.fmt = cb, fmt

    def read(self, hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        try:
            head = _unpack_length(self.fmt, rbuf)
        except ValueError:
            hdl._error(_errno.EBADMSG, True)
            return False
        if head is None:
            return False
        length, size = head
        if length < 0:
            hdl._error(_errno.EBADMSG, True)
            return False
        if _too_big(hdl, length):
            return False
        del rbuf[:size]
        if length <= len(rbuf):
            self.deliver(hdl, (_take_fast if type(rbuf) is bytearray else _take)(rbuf, length))
        else:
            hdl.unshift_read("chunk", length, self.deliver)
        return True

    def deliver(self, hdl: Handle, data: bytes) -> None:
        self.cb(hdl, data)


class _StorableReader(_PackstringReader):
    """:class:`_PackstringReader` with format ``w`` whose frames are thawed
    (:func:`_thaw`) before ``cb(hdl, value)``; one that will not is a
    non-fatal ``EBADMSG``, and the frame is skipped."""
    __slots__ = ()

    def deliver(self, hdl: Handle, data: bytes) -> None:
        try:
            value = _thaw(hdl, data)
        except Exception:  # noqa: BLE001 - any unpickling failure is a bad message
            hdl._error(_errno.EBADMSG)
            return
        self.cb(hdl, value)


def _json_decoder(hdl: Handle) -> Any:
    coder = hdl._json
    if isinstance(coder, tuple):
        coder = coder[1]
    return coder if hasattr(coder, "raw_decode") else _JSON_DECODER


def _read_json(hdl: Handle, cb: ValueCb) -> Reader:
    """``cb(hdl, value)`` for the next JSON text (UTF-8): an array, object,
    string, number, ``true``, ``false`` or ``null`` (JSON::XS with
    ``allow_nonref``), after any whitespace.  The values are the same
    however the stream is split: a number at the end of the buffer waits for
    the next byte or end-of-file.  Invalid JSON (NaN and Infinity included)
    is a non-fatal ``EBADMSG`` and the bad text is skipped; the decoder is
    ``json=``'s ``raw_decode`` if it has one.
    """
    decoder = _json_decoder(hdl)
    scan = _JsonScan()

    def reader(hdl: Handle) -> bool:
        rbuf = hdl._rbuf
        if not scan.pos:
            start = _JSON_WS.match(rbuf).end()  # type: ignore[union-attr]  # matches ''
            if start:
                del rbuf[:start]
            if not rbuf:
                return False
        end = scan.end(rbuf, hdl._eof, hdl._rin - len(rbuf))
        if end < 0:
            return False
        scan.__init__()  # type: ignore[misc]
        try:
            value = _json_value(decoder, rbuf, end)
        except (ValueError, RecursionError):  # too deep nesting: RecursionError
            # skip the bad text, like JSON::XS's incr_skip, and start over
            del rbuf[:max(1, end)]
            hdl._error(_errno.EBADMSG)
            return False
        del rbuf[:end]
        cb(hdl, value)
        return True
    return reader


def _read_storable(hdl: Handle, cb: ValueCb, *_perl_format: str) -> Reader:
    """A BER-framed pickle: packstring "w" plus thawing (Perl's storable type;
    Perl scripts pass a pack format too, which Perl also ignores).

    ``cb(hdl, value)``.  Unless the handle has ``storable_trusted``, only
    plain data of any pickle protocol (0-5) is accepted: the builtin
    scalars and containers, ``set``, ``frozenset``, ``bytes``,
    ``bytearray``, ``complex``, ``slice``, ``OrderedDict``, ``Decimal`` and
    the ``datetime`` types, nested at most :data:`STORABLE_MAX_DEPTH` (400)
    deep and without cycles; anything else (other classes, deeper nesting,
    cyclic or malformed pickles) is checked in one pass before anything is
    built and reported as a non-fatal ``EBADMSG`` (the frame is skipped).
    """
    return _StorableReader(cb, "w").read


def _read_tls_detect(hdl: Handle, cb: TlsDetectCb) -> Reader:
    def reader(hdl: Handle) -> bool:
        rbuf = bytes(hdl._rbuf[:6])  # an SSL2-style hello needs six bytes
        m = _TLS_RECORD.match(rbuf) or _SSL2_RECORD.match(rbuf)
        if m is not None:
            head = m.group(1)
            if head is None:
                return False
            if len(head) != 3:
                return False  # partial match: cannot decide yet
            cb(hdl, "accept", head[0], head[1])  # head: major, minor, length/padding
        else:
            cb(hdl, None)
        return True
    return reader


def _read_tls_autostart(hdl: Handle, cb: Any, *tls_args: Any) -> Reader:
    # Perl: push_read(tls_autostart => $tls[, $ctx]); the "callback" slot is the mode.
    args = (cb,) + tls_args

    def detected(hdl: Handle, kind: str | None, *version: int) -> None:
        if kind:
            hdl.starttls(*args)
    return _read_tls_detect(hdl, detected)


for _name, _factory in (
    ("netstring", _read_netstring), ("packstring", _read_packstring),
    ("json", _read_json), ("storable", _read_storable),
    ("tls_detect", _read_tls_detect), ("tls_autostart", _read_tls_autostart),
):
    register_read_type(_name, _factory)


# ---------------------------------------------------------------------------
# Built-in write types
# ---------------------------------------------------------------------------

def _write_netstring(hdl: Handle, data: Bytes) -> bytes:
    data = bytes(data)
    return b"%d:%s," % (len(data), data)


def _write_packstring(hdl: Handle, fmt: str, data: Bytes) -> bytes:
    data = bytes(data)
    return _pack_length(fmt, len(data)) + data


def json_coder() -> tuple[_json.JSONEncoder, _json.JSONDecoder]:
    """The JSON coder a handle uses when ``json=`` is not given (Perl's
    ``AnyEvent::Handle::json_coder``): a tuple ``(encoder, decoder)`` of a
    compact UTF-8 :class:`json.JSONEncoder` and a :class:`json.JSONDecoder`
    that refuses NaN and Infinity (as JSON::XS does);
    pass it (or your own objects with ``encode``/``raw_decode``) as
    ``Handle(json=...)``."""
    return _JSON_ENCODER, _JSON_DECODER


class _CborCoder:
    """``encode``/``decode`` through cbor2 with fixed keyword arguments."""
    __slots__ = ("dumps_kw", "loads_kw")
    dumps_kw: dict[str, Any]
    loads_kw: dict[str, Any]

    def __init__(self, dumps_kw: dict[str, Any], loads_kw: dict[str, Any]) -> None:
        self.dumps_kw, self.loads_kw = dumps_kw, loads_kw

    def encode(self, value: Any) -> bytes:
        return cbor2.dumps(value, **self.dumps_kw)

    def decode(self, data: Bytes) -> Any:
        return cbor2.loads(data, **self.loads_kw)


def cbor_coder(dumps_kw: Mapping[str, Any] | None = None,
               loads_kw: Mapping[str, Any] | None = None) -> _CborCoder:
    """A CBOR coder for ``Handle(cbor=...)`` (Perl's
    ``AnyEvent::Handle::cbor_coder``, a ``CBOR::XS`` object): an object
    with ``encode(value) -> bytes`` and ``decode(bytes) -> value`` on
    cbor2, with the keyword arguments of :func:`cbor2.dumps` /
    :func:`cbor2.loads` given as dicts.  Any object with those two methods
    can be passed as ``cbor=`` instead."""
    return _CborCoder(dict(dumps_kw or {}), dict(loads_kw or {}))


def _write_json(hdl: Handle, value: Any) -> bytes:
    coder = hdl._json
    if isinstance(coder, tuple):
        coder = coder[0]
    if not hasattr(coder, "encode"):
        coder = _JSON_ENCODER
    text = coder.encode(value)
    return text.encode("utf-8") if isinstance(text, str) else text


def _write_cbor(hdl: Handle, value: Any) -> bytes:
    coder = hdl._cbor
    if hasattr(coder, "encode"):
        return coder.encode(value)  # type: ignore[no-any-return]
    return cbor2.dumps(value, **(coder or {}))


def _write_storable(hdl: Handle, value: Any) -> bytes:
    """A BER-framed pickle: packstring "w", as the storable read type expects."""
    return _write_packstring(hdl, "w", pickle.dumps(value, protocol=4))


for _name, _fn in (
    ("netstring", _write_netstring), ("packstring", _write_packstring),
    ("json", _write_json), ("cbor", _write_cbor), ("storable", _write_storable),
):
    register_write_type(_name, _fn)
