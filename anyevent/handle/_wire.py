"""The wire formats of the Handle's read and write types, apart from the Handle.

Nothing here touches a handle or a hot path: Perl's pack lengths and BER
integers (``packstring``, ``storable``), the restricted unpickler and its
depth check (``storable``), and the incremental scanners that find where a
JSON text or a CBOR data item ends however the bytes arrive (``json``,
``cbor``), plus the TLS record shapes ``tls_detect`` looks for.  The read
types in ``anyevent.handle._types`` (and the CBOR reader of
``anyevent.handle._stream``) frame with them.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import json as _json
import pickle
import pickletools
import re
import struct
from typing import Any, Callable, NoReturn, Union

try:
    from .. import _speedups  # the compiled core's C twins (setup.py)
except ImportError:  # pure Python
    _speedups = None  # type: ignore[assignment]

#: Data ``push_write`` takes.
Bytes = Union[bytes, bytearray, memoryview]


# ---------------------------------------------------------------------------
# Perl pack formats for packstring
# ---------------------------------------------------------------------------

def ber_encode(n: int) -> bytes:
    """Encode a non-negative int as a BER compressed integer (Perl ``pack "w"``)."""
    if n < 0:
        raise ValueError("BER integers cannot be negative")
    out = bytearray([n & 0x7F])
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.reverse()
    return bytes(out)


def ber_decode(buf: Bytes, limit: int = 10) -> tuple[int, int] | None:
    """Decode a BER integer at the start of ``buf``.

    Returns ``(value, nbytes)``, or ``None`` if ``buf`` holds only a prefix.
    Raises :class:`ValueError` when more than ``limit`` bytes would be needed
    (no length of ours is that big; it is a hostile or broken peer).
    """
    n = 0
    for i, b in enumerate(buf):
        if i >= limit:
            raise ValueError("BER integer too long")
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, i + 1
    if len(buf) >= limit:
        raise ValueError("BER integer too long")
    return None


_PACK_LETTERS = {
    # letter: (struct code, default byte order, signed variant with "!")
    "c": "b", "C": "B", "s": "h", "S": "H", "l": "i", "L": "I",
    "q": "q", "Q": "Q", "i": "i", "I": "I", "j": "q", "J": "Q",
}
_PACK_FIXED = {"n": ">H", "N": ">I", "v": "<H", "V": "<I"}
_PACK_FIXED_SIGNED = {"n": ">h", "N": ">i", "v": "<h", "V": "<i"}
_NATIVE_BANG = {"s": "h", "S": "H", "l": "l", "L": "L", "i": "i", "I": "I"}
_PACK_CACHE: dict[str, Any] = {}


def _pack_struct(fmt: str) -> Any:
    """Map a Perl pack length format (``"N"``, ``"w"``, ``"L<"``, ``"n!"``...) to a
    :class:`struct.Struct`, or ``None`` for BER (``"w"``).  Raises ValueError.
    """
    try:
        return _PACK_CACHE[fmt]
    except KeyError:
        pass
    m = re.fullmatch(r"([cCsSlLqQiInNvVjJw])([!<>]*)", fmt)
    if not m:
        raise ValueError("unsupported packstring format %r" % (fmt,))
    letter, mods = m.groups()
    if ("!" in mods and letter not in "sSlLiInNvV"
            or ("<" in mods or ">" in mods) and letter not in "sSlLqQiIjJ"
            or "<" in mods and ">" in mods):
        raise ValueError("packstring format %r: Perl's pack does not allow these modifiers"
                         " on %s" % (fmt, letter))
    if letter == "w":
        st = None
    elif letter in _PACK_FIXED:
        st = struct.Struct((_PACK_FIXED_SIGNED if "!" in mods else _PACK_FIXED)[letter])
    else:
        order = "<" if "<" in mods else ">" if ">" in mods else "="
        code = _PACK_LETTERS[letter]
        if "!" in mods and letter in _NATIVE_BANG:
            size = struct.calcsize("@" + _NATIVE_BANG[letter])
            code = {2: "h", 4: "i", 8: "q"}[size]
            if letter.isupper():
                code = code.upper()
        st = struct.Struct(order + code)
    _PACK_CACHE[fmt] = st
    return st


def _pack_length(fmt: str, n: int) -> bytes:
    """The length prefix of ``n`` bytes in pack format ``fmt``; ValueError
    when ``n`` does not fit it (Perl's pack would wrap it: a corrupt frame)."""
    st = _pack_struct(fmt)
    if st is None:
        return ber_encode(n)
    try:
        return st.pack(n)  # type: ignore[no-any-return]
    except struct.error:
        raise ValueError("packstring: a length of %d bytes does not fit format %r"
                         % (n, fmt)) from None


def _unpack_length(fmt: str, buf: Bytes) -> tuple[int, int] | None:
    """``(length, header_size)`` from the front of ``buf``, or None if incomplete."""
    st = _pack_struct(fmt)
    if st is None:
        return ber_decode(buf)
    if len(buf) < st.size:
        return None
    return st.unpack_from(buf)[0], st.size


# ---------------------------------------------------------------------------
# Restricted unpickling for the storable type
# ---------------------------------------------------------------------------

#: How deeply the storable read type lets containers nest (cbor2's limit):
#: deeper pickles are refused with EBADMSG before anything is built.
STORABLE_MAX_DEPTH = 400

_SAFE_CLASSES = {
    ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "complex"), ("builtins", "slice"),
    ("collections", "OrderedDict"), ("datetime", "date"), ("datetime", "time"),
    ("datetime", "datetime"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("decimal", "Decimal"),
}


def _of_data(cls: Callable[..., Any]) -> Callable[..., Any]:
    """``cls`` for unpickling, refusing ``cls(n)``: a few bytes of input must
    not allocate ``n`` bytes.  (``range`` is refused altogether, since
    ``set(range(n))`` is the same kind of memory bomb.)
    """
    def make(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError("storable: refusing %s(int)" % cls.__name__)
        return cls(*args)
    return make


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles of bytes use it, and only so."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("storable: refusing _codecs.encode of that")
    return text.encode("latin-1")


_DATA_FACTORIES = {
    ("builtins", "bytearray"): _of_data(bytearray), ("builtins", "bytes"): _of_data(bytes),
    ("_codecs", "encode"): _latin1_encode,
}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 name of a global in a protocol 0-2 pickle (pickle's own
    compat mapping: ``__builtin__.set`` is ``builtins.set``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only; any other class is refused."""

    def find_class(self, module: str, name: str) -> Any:
        key = _python3_name(module, name)
        if key in _DATA_FACTORIES:
            return _DATA_FACTORIES[key]
        if key in _SAFE_CLASSES:
            return getattr(importlib.import_module(key[0]), key[1])
        raise pickle.UnpicklingError("storable: refusing to load %s.%s" % (module, name))


# opcodes adding to the container below their arguments / calling a callable
_PICKLE_FILLS = frozenset(("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"))
_PICKLE_CALLS = frozenset(("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"))
_PICKLE_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"))
_PICKLE_GETS = frozenset(("GET", "BINGET", "LONG_BINGET"))
# opcodes that reach find_class, call an object or ask for outside data
_PICKLE_NAMES_OR_CALLS = _PICKLE_CALLS | frozenset((
    "GLOBAL", "STACK_GLOBAL", "BUILD", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
    "NEXT_BUFFER", "READONLY_BUFFER"))


class _Shared:
    """An object the pickle may refer to twice (memoized or DUP'ed), in the
    depth model of :func:`_check_pickle_depth`."""
    __slots__ = ("depth", "nested")

    def __init__(self, depth: int) -> None:
        self.depth, self.nested = depth, False


def _depth(obj: Any) -> int:
    return obj.depth if obj.__class__ is _Shared else obj


def _shared(stack: list[Any]) -> Any:
    top = stack[-1]
    if top.__class__ is not _Shared:
        top = stack[-1] = _Shared(top)
    return top


def _pickle_op(name: str, args: list[Any]) -> Any:
    """What ``name`` pushes, given what it popped (depths or _Shared)."""
    for obj in args[name in _PICKLE_FILLS:]:
        if obj.__class__ is _Shared:
            obj.nested = True  # inside something now: must not change any more
    depths = [_depth(obj) for obj in args]
    if name not in _PICKLE_FILLS:
        if name in _PICKLE_CALLS:
            return max(depths)
        return 1 + max(depths) if depths else 0
    target = args[0]
    depth = max(depths[0], 1 + max(depths[1:]))
    if target.__class__ is not _Shared:
        return depth
    if target.nested:
        raise pickle.UnpicklingError("storable: refusing to fill a container already nested"
                                     " in another (cyclic data)")
    target.depth = depth
    return target


def _check_pickle_depth(data: bytes, limit: int) -> None:
    """Run the pickle machine over nesting depths instead of objects (one
    pass over the opcodes); raise UnpicklingError if any object would nest
    deeper than ``limit`` or the data is cyclic, ValueError (or another
    exception) if the pickle is malformed.

    Sound because a container that went into another one may not change
    any more: then the depth of everything nested is final.
    """
    stack: list[Any]
    memo: dict[Any, Any]
    stack, marks, memo = [], [], {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "MARK":
            marks.append(len(stack))
        elif name in _PICKLE_GETS:
            stack.append(memo[arg])
        elif name in _PICKLE_PUTS:
            memo[len(memo) if arg is None else arg] = _shared(stack)
        elif name == "DUP":
            stack.append(_shared(stack))
        else:
            before = op.stack_before
            if pickletools.markobject in before:
                base = marks.pop() - before.index(pickletools.markobject)
            else:
                base = len(stack) - len(before)
            if base < 0:
                raise ValueError("storable: pickle stack underflow")
            args = stack[base:]
            del stack[base:]
            if op.stack_after:
                pushed = _pickle_op(name, args)
                if _depth(pushed) > limit:
                    raise pickle.UnpicklingError("storable: nesting deeper than %d" % limit)
                stack.append(pushed)


def _pickle_table() -> bytes:
    """For ``_speedups.pickle_plain_depth``: six bytes per opcode byte (the
    kind of its argument, its class, the items it pops below its mark or in
    all, whether it pops to a mark, the items it pushes, whether it names a
    class or calls something), from pickletools."""
    widths = {-1: 100, -2: 201, -3: 204, -4: 205, -5: 208}
    table = bytearray([0, 255, 0, 0, 0, 1] * 256)
    for op in pickletools.opcodes:
        name, before = op.name, op.stack_before
        kind = 0 if op.arg is None else widths.get(op.arg.n, op.arg.n)
        if op.arg is not None and op.arg.name == "stringnl_noescape_pair":
            kind = 101
        cls = (1 if name in _PICKLE_FILLS else 2 if name in _PICKLE_CALLS
               else 3 if name in _PICKLE_GETS or name == "DUP"
               else 4 if name in _PICKLE_PUTS else 5 if name == "MARK" else 6 if name == "STOP"
               else 0)
        marked = pickletools.markobject in before
        items = before.index(pickletools.markobject) if marked else len(before)
        table[6 * ord(op.code):6 * ord(op.code) + 6] = bytes(
            (kind, cls, items, marked, len(op.stack_after), name in _PICKLE_NAMES_OR_CALLS))
    return bytes(table)


_PICKLE_TABLE = _pickle_table() if _speedups is not None else b""


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError("not JSON: " + name)


# strict like JSON::XS: NaN and Infinity are no JSON
_JSON_DECODER = _json.JSONDecoder(parse_constant=_refuse_constant)
_JSON_ENCODER = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_JSON_WS = re.compile(rb"[ \t\n\r]*")
_JSON_OUTSIDE = re.compile(rb'["\[\]{}]')
_JSON_INSIDE = re.compile(rb'[\\"]')
_JSON_NUMBER = re.compile(rb"[-+.0-9eE]*")  # the bytes a number runs over
_JSON_LITERALS = (b"true", b"false", b"null")


class _JsonScan:
    """Finds where the JSON text at the start of a buffer ends, scanning each
    byte only once however the text is split (JSON::XS's incremental parser
    does the same): an array or object ends at its closing bracket (brackets
    counted outside strings, escapes skipped inside them), a string at its
    closing quote, a number at the first byte that cannot continue it, or at
    end-of-file.
    """
    __slots__ = ("pos", "depth", "in_str", "gen")

    def __init__(self) -> None:
        self.pos = self.depth = self.gen = 0
        self.in_str = False

    def end(self, buf: bytearray, eof: bool, gen: int) -> int:
        """Index just past the JSON text at the start of ``buf``; -1 if more
        input may complete it; 0 if it can never be valid.  ``gen`` is the
        stream offset of ``buf[0]`` (``hdl._rin - len(buf)``): a new value
        means bytes left its front since the last call, so the scan starts
        over."""
        if self.pos and gen != self.gen:
            self.__init__()  # type: ignore[misc]
        self.gen = gen
        first = buf[0]
        if first in b'[{"':
            end = self._nested_end(buf)
        elif first in b"-0123456789":
            end = self._number_end(buf, eof)
        else:
            return _literal_end(buf, eof)
        return end

    def _number_end(self, buf: bytearray, eof: bool) -> int:
        self.pos = _JSON_NUMBER.match(buf, self.pos).end()  # type: ignore[union-attr]  # matches ''
        return self.pos if self.pos < len(buf) or eof else -1

    def _nested_end(self, buf: bytearray) -> int:
        pos, depth, in_str = self.pos, self.depth, self.in_str
        size = len(buf)
        result = -1
        while True:
            if in_str:
                m = _JSON_INSIDE.search(buf, pos)
                if m is None:
                    pos = size
                    break
                if buf[m.start()] == 92:  # backslash: skip the escaped byte
                    if m.end() >= size:
                        pos = m.start()
                        break
                    pos = m.end() + 1
                    continue
                in_str = False
                pos = m.end()
                if depth <= 0:  # a string at the top level
                    result = pos
                    break
                continue
            m = _JSON_OUTSIDE.search(buf, pos)
            if m is None:
                pos = size
                break
            pos = m.end()
            c = buf[m.start()]
            if c == 34:
                in_str = True
            elif c == 91 or c == 123:
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    result = pos
                    break
        self.pos, self.depth, self.in_str = pos, depth, in_str
        return result


def _literal_end(buf: bytearray, eof: bool) -> int:
    """``true``, ``false`` or ``null`` at the start of ``buf``: as for :meth:`_JsonScan.end`."""
    for literal in _JSON_LITERALS:
        if buf.startswith(literal):
            return len(literal)
        if not eof and len(buf) < len(literal) and literal.startswith(buf):
            return -1
    return 0


def _json_value(decoder: Any, rbuf: bytearray, end: int) -> Any:
    """The value of the JSON text ``rbuf[:end]``; ValueError if it is not
    one JSON text (``1.``, ``1-2`` and ``01`` are not, as in JSON::XS)."""
    text = rbuf[:end].decode("utf-8")
    value, used = decoder.raw_decode(text)
    if used != len(text):
        raise ValueError("JSON text followed by garbage")
    return value


#: Containers nested deeper than this are EBADMSG (cbor2's own limit).
CBOR_MAX_DEPTH = 400
# runs of fixed-size data items (integers, simple values, floats, empty
# strings and containers), each with its item size: skipped at C speed
_CBOR_RUNS = tuple((re.compile(rx, re.DOTALL), size) for rx, size in (
    (rb"[\x00-\x17\x20-\x37\x40\x60\x80\xa0\xe0-\xf7]*", 1),
    (rb"(?:[\x18\x38\xf8].)*", 2), (rb"(?:[\x19\x39\xf9]..)*", 3),
    (rb"(?:[\x1a\x3a\xfa].{4})*", 5), (rb"(?:[\x1b\x3b\xfb].{8})*", 9)))
_INDEFINITE = -1


class _CborScan:
    """Finds where the CBOR data item at the start of a buffer ends, in one
    pass that resumes where it stopped however the item is split: headers
    are read (major type, argument, indefinite lengths, tags), string
    contents skipped, and ``open`` holds how many items each open array or
    map still needs (``_INDEFINITE`` until its break).
    """
    __slots__ = ("pos", "open", "gen")
    open: list[int]

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pos = self.gen = 0
        self.open = []

    def take(self, buf: bytearray, gen: int) -> bytes | None:
        """The item at the start of ``buf``, taken off it (the scan starts afresh
        for the next), or None while it is incomplete; ValueError as :meth:`end`."""
        stop = self.end(buf, gen)
        if stop < 0:
            return None
        self.reset()
        return _take(buf, stop)

    def end(self, buf: bytearray, gen: int) -> int:
        """Index just past the item at the start of ``buf``, or -1 if it is
        incomplete; ValueError if a header is malformed or nests too deep.
        ``gen`` as for :meth:`_JsonScan.end`."""
        if self.pos and gen != self.gen:
            self.reset()
        self.gen = gen
        while self.pos < len(buf):
            if self.open and self._skip_runs(buf):
                return self.pos
            if self.pos < len(buf):
                done = self._item(buf)
                if done is None:
                    break
                if done:
                    return self.pos
        return -1

    def _skip_runs(self, buf: bytearray) -> bool:
        """Skip runs of fixed-size items inside a container; True if that
        completed the outermost item."""
        for rx, size in _CBOR_RUNS:
            left = self.open[-1]
            run = (rx.match(buf, self.pos).end() - self.pos) // size  # type: ignore[union-attr]
            if not run:
                continue
            if left == _INDEFINITE:
                self.pos += run * size
                continue
            run = min(run, left)
            self.pos += run * size
            self.open[-1] = left - run + 1  # _done counts the last one
            if self._done():
                return True
            if not self.open:
                return False
        return False

    def _item(self, buf: bytearray) -> bool | None:
        """Read one header (and skip its string); True if the outermost item
        is complete, None if the header or string is not all there yet."""
        pos = self.pos
        major, info = buf[pos] >> 5, buf[pos] & 31
        if info >= 28:
            return self._indefinite(major, info)
        size = 1 if info < 24 else 1 + (1 << (info - 24))
        if pos + size > len(buf):
            return None
        arg = info if info < 24 else int.from_bytes(buf[pos + 1:pos + size], "big")
        if major in (2, 3):
            size += arg
            if pos + size > len(buf):
                return None  # wait for the whole string, without rescanning it
        self.pos = pos + size
        if major == 6:
            return False  # a tag: its item follows
        if major in (4, 5) and arg:
            return self._push(arg * (major - 3))
        return self._done()

    def _indefinite(self, major: int, info: int) -> bool:
        if info != 31 or major in (0, 1, 6):
            raise ValueError("CBOR: reserved additional information %d" % info)
        self.pos += 1
        if major != 7:
            return self._push(_INDEFINITE)
        if not self.open or self.open[-1] != _INDEFINITE:
            raise ValueError("CBOR: break outside an indefinite-length item")
        self.open.pop()
        return self._done()

    def _push(self, count: int) -> bool:
        if len(self.open) >= CBOR_MAX_DEPTH:
            raise ValueError("CBOR: nesting deeper than %d" % CBOR_MAX_DEPTH)
        self.open.append(count)
        return False

    def _done(self) -> bool:
        """An item ended: count it in its container; True if none is open."""
        open_ = self.open
        while open_:
            if open_[-1] == _INDEFINITE:
                return False
            open_[-1] -= 1
            if open_[-1]:
                return False
            open_.pop()
        return True


_TLS_RECORD = re.compile(rb"(?:\Z|\x16(\Z|[\x03\x04](?:\Z|.(?:\Z|[\x00-\x40]))))", re.DOTALL)
_SSL2_RECORD = re.compile(
    rb"(?:\Z|[\x80-\xff](?:\Z|.(?:\Z|\x01(\Z|[\x03\x04](?:\Z|.(?:\Z|.))))))", re.DOTALL)


def _take(buf: bytearray, n: int) -> bytes:
    """``bytes(buf[:n])``, taken off the front of ``buf``."""
    data = bytes(buf[:n])
    del buf[:n]
    return data


_take_fast = _take if _speedups is None else _speedups.take  # (one copy, not two)
