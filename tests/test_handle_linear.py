"""Every read type does work linear in the size of a frame, however it is split.

A frame of ``n`` and of ``4n`` bytes is fed in fixed pieces straight into a
Handle's read buffer, and the bytes the read type examines are counted:

* every access of the read buffer (indexing, slicing, ``find``, ``decode``)
  through a ``bytearray`` subclass that meters them;
* every regex search or match (the module's patterns, and any pattern the
  read types compile) through a wrapper counting the span from the start
  position to the end of the match, or of the buffer when it fails;
* the text handed to the JSON decoder and the bytes handed to cbor2.

Linear readers do about 4 times the work for ``4n``; a reader re-scanning the
whole buffer on every arrival does about 16 times.  The line and regex types
with an arbitrary regex are quadratic in the worst case (in Perl as well);
only regexes of bounded width are held to linear time here.
"""

import io
import re
import socket
import types

import cbor2
import pytest

from anyevent.handle import Handle, _stream, _types, _wire, ber_encode

PIECE = 512
N = 32 * 1024
LINEAR = 6  # ratio of work for 4n to work for n: ~4 if linear, ~16 if quadratic


class Meter:
    def __init__(self):
        self.bytes = 0


class MeteredBuffer(bytearray):
    """A read buffer counting the bytes each access examines."""

    meter = None

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.meter.bytes += len(range(*key.indices(len(self))))
        else:
            self.meter.bytes += 1
        return super().__getitem__(key)

    def find(self, sub, start=0, *args):
        pos = super().find(sub, start, *args)
        self.meter.bytes += (len(self) if pos < 0 else pos + len(sub)) - max(0, start)
        return pos

    def decode(self, *args, **kwargs):
        self.meter.bytes += len(self)
        return super().decode(*args, **kwargs)


class MeteredPattern:
    """A compiled regex counting the span each search or match covers."""

    def __init__(self, pattern, meter):
        self._pattern, self._meter = pattern, meter
        self.pattern, self.flags = pattern.pattern, pattern.flags

    def _metered(self, name):
        def call(string, pos=0, endpos=None):
            m = getattr(self._pattern, name)(string, pos, len(string) if endpos is None else endpos)
            self._meter.bytes += (len(string) if m is None else m.end()) - pos
            return m
        return call

    def __getattr__(self, name):
        if name in ("search", "match", "fullmatch"):
            return self._metered(name)
        return getattr(self._pattern, name)


def metered_re(meter):
    def compile(pattern, flags=0):
        if isinstance(pattern, MeteredPattern):
            return pattern
        return MeteredPattern(re.compile(pattern, flags), meter)
    ns = types.SimpleNamespace(**{k: getattr(re, k) for k in dir(re) if not k.startswith("__")})
    ns.compile = compile
    return ns


class MeteredJsonDecoder:
    def __init__(self, decoder, meter):
        self._decoder, self._meter = decoder, meter

    def raw_decode(self, text, idx=0):
        self._meter.bytes += len(text) - idx
        return self._decoder.raw_decode(text, idx)


def metered_cbor2(meter):
    def decoder(fp, *args, **kwargs):
        meter.bytes += len(fp.getbuffer()) - fp.tell()
        return cbor2.CBORDecoder(fp, *args, **kwargs)

    def loads(data, *args, **kwargs):
        meter.bytes += len(data)
        return cbor2.loads(data, *args, **kwargs)
    ns = types.SimpleNamespace(**{k: getattr(cbor2, k) for k in dir(cbor2) if not k.startswith("__")})
    ns.CBORDecoder, ns.loads = decoder, loads
    return ns


def arrive(hdl, data):
    """What the handle does when ``data`` is read from the stream."""
    hdl._rbuf += data
    hdl._rin += len(data)
    hdl._drain_rbuf()


def work(monkeypatch, args, frame, peek=False):
    """Bytes examined reading ``frame`` with ``push_read(*args, cb)`` in PIECE
    pieces; ``peek``: user code looks at ``hdl.rbuf`` after every piece."""
    meter = Meter()
    with monkeypatch.context() as m:
        for module in (_stream, _types, _wire):
            for name, value in list(vars(module).items()):
                if isinstance(value, re.Pattern):
                    m.setattr(module, name, MeteredPattern(value, meter))
            for name, metered in (("re", metered_re), ("cbor2", metered_cbor2)):
                if name in vars(module):
                    m.setattr(module, name, metered(meter))
        m.setattr(_types, "_JSON_DECODER", MeteredJsonDecoder(_wire._JSON_DECODER, meter))
        m.setattr(MeteredBuffer, "meter", meter)
        a, b = socket.socketpair()
        with a, b:
            errors, got = [], []
            hdl = Handle(fh=b, on_error=lambda h, fatal, msg: errors.append(msg))
            hdl._rbuf = MeteredBuffer()
            args = [MeteredPattern(a, meter) if isinstance(a, re.Pattern) else a for a in args]
            hdl.push_read(*args, lambda h, *v: got.append(v))
            for i in range(0, len(frame), PIECE):
                arrive(hdl, frame[i:i + PIECE])
                if peek and not got:
                    assert len(hdl.rbuf) >= len(hdl.rbuf[:1])  # (a log line, say)
            hdl.destroy()
    assert not errors
    assert len(got) == 1, "the frame was not read"
    return meter.bytes


def _cbor_array(n):
    return cbor2.dumps([1000 + i % 50000 for i in range(n // 3)])


def _cbor_nested(n):
    # maps of arrays of byte strings and tagged items, definite and indefinite
    item = b"\xa1\x61k\x9f\x43abc\xc1\x1a\x00\x01\x00\x00\xff"
    count = n // len(item)
    return b"\x9b" + count.to_bytes(8, "big") + item * count


FRAMES = {
    "line default": (("line",), lambda n: b"x" * n + b"\r\n"),
    "line bytes eol": (("line", b"<END>"), lambda n: b"x<EN" * (n // 4) + b"<END>"),
    "line regex \\r?\\n": (("line", re.compile(rb"\r?\n")), lambda n: b"x\r" * (n // 2) + b"\n"),
    "line regex \\r\\n|\\n": (("line", re.compile(rb"\r\n|\n")), lambda n: b"x" * n + b"\n"),
    "line regex literals": (("line", re.compile(rb"<EOL>|<eol>|\x00\x01")),
                            lambda n: b"<EO" * (n // 3) + b"<eol>"),
    "regex accept": (("regex", re.compile(rb"\r\n\r\n")), lambda n: b"ab\r\n" * (n // 4) + b"\r\n"),
    "regex accept reject": (("regex", re.compile(rb"\r\n\r\n"), re.compile(rb"\x00")),
                            lambda n: b"ab\r\n" * (n // 4) + b"\r\n"),
    "chunk": (("chunk", N * 4 + 8), lambda n: b"x" * (N * 4 + 8)),
    "netstring": (("netstring",), lambda n: b"%d:%s," % (n, b"x" * n)),
    "packstring": (("packstring", "w"), lambda n: ber_encode(n) + b"x" * n),
    "storable": (("storable",), lambda n: _types._write_storable(None, b"x" * n)),
    "json string": (("json",), lambda n: b'"' + b'x\\"' * (n // 3) + b'"'),
    "json array": (("json",), lambda n: b"[" + b'"a",' * (n // 4) + b"1]"),
    "json number": (("json",), lambda n: b"-0." + b"1" * n + b"e-5 "),
    "cbor array": (("cbor",), _cbor_array),
    "cbor nested": (("cbor",), _cbor_nested),
    "cbor bytes": (("cbor",), lambda n: cbor2.dumps(b"x" * n)),
    "cbor small ints": (("cbor",), lambda n: cbor2.dumps(list(range(20)) * (n // 20))),
}


@pytest.mark.parametrize("peek", [False, True], ids=["", "peeking"])
@pytest.mark.parametrize("name", list(FRAMES))
def test_work_is_linear_in_frame_size(monkeypatch, name, peek):
    """(``peeking``: reading ``hdl.rbuf`` between arrivals, e.g. its length
    in a log line, is no reason to scan the frame again)"""
    args, make = FRAMES[name]
    small = work(monkeypatch, args, make(N), peek)
    big = work(monkeypatch, args, make(4 * N), peek)
    print("%s: n %d, 4n %d, ratio %.2f" % (name, small, big, big / small))
    assert big / small < LINEAR, "work for 4n is %.1f times the work for n" % (big / small)



# (read args, what the waiting reader has scanned, what arrives while a
# chunk(16) unshifted in front waits for its 16th byte, expected value)
_STALE_SCANS = [
    (("line",), b"1234567abcdefgh", b"X\n" + b"Y" * 20, b""),
    (("line", re.compile(rb"\r?\n")), b"1234567abcdefgh", b"X\n" + b"Y" * 20, b""),
    (("json",), b'["abcdefghijklm', b'n[1]' + b" " * 14, [1]),
    (("cbor",), b"\x94" + b"\x00" * 14, b"\x00\x82\x01\x02" + b"\x00" * 12, [1, 2]),
]


@pytest.mark.parametrize("args,scanned,arrives,expected", _STALE_SCANS)
def test_a_reader_unshifted_in_front_does_not_leave_a_stale_scan(args, scanned, arrives,
                                                                  expected):
    """A waiting reader scanned the buffer; a chunk reader unshifted in front
    of it takes 16 bytes once more data came; the buffer is then no shorter
    than the scan saw it, but its bytes moved: the waiting reader must scan
    again rather than resume where it was (it would miss its frame)."""
    a, b = socket.socketpair()
    got = []
    hdl = Handle(fh=a, on_error=lambda h, f, m: got.append(("error", m)))
    hdl.push_read(*args, lambda h, value, *eol: got.append(value))
    arrive(hdl, scanned)  # scans it all, nothing complete yet
    hdl.unshift_read("chunk", 16, lambda h, data: got.append(data))
    arrive(hdl, arrives)
    assert got == [(scanned + arrives)[:16], expected]
    hdl.destroy()
    b.close()


@pytest.mark.parametrize("args,scanned,arrives,expected", _STALE_SCANS)
def test_user_code_taking_from_rbuf_restarts_a_waiting_scan(args, scanned, arrives, expected):
    """The same, with user code (a timer, say) deleting 16 bytes through
    ``hdl.rbuf`` while the reader waits; or replacing the buffer by assigning."""
    for take in (lambda hdl: hdl.rbuf.__delitem__(slice(0, 16)),
                 lambda hdl: setattr(hdl, "rbuf", hdl.rbuf[16:])):
        a, b = socket.socketpair()
        got = []
        hdl = Handle(fh=a, on_error=lambda h, f, m: got.append(("error", m)))
        hdl.push_read(*args, lambda h, value, *eol: got.append(value))
        arrive(hdl, scanned + arrives[:1])
        take(hdl)
        arrive(hdl, arrives[1:])
        assert got == [expected]
        hdl.destroy()
        b.close()
