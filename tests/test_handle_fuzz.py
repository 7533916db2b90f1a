"""Seeded fuzzing of every read type: valid streams and mangled ones.

For each read type, ``CASES`` random streams (10,000, shared by the
variants of a type; ``-m soak`` runs ``ANYEVENT_FUZZ_CASES``, default
100,000, per variant with another seed) are fed
to a fresh Handle whole and cut at random points, the second half of them
mangled first (bytes flipped, inserted, dropped, the stream truncated):

* a valid stream must give exactly the values that went in, then EPIPE at
  end-of-file (a read is still queued), however it is cut;
* any stream must give the same reads and the same first error whole and
  cut (up to the first error: some types skip differently after one);
* errors are only EBADMSG, ENOSPC or EPIPE (or end-of-file once a
  storable frame was bad: its callback is not called, so no read follows),
  and nothing raises: no read
  type's own code may fail ("read request failed", reported exceptions);
* for cbor, the reads of a mangled stream are also what cbor2 decodes from
  the whole stream, item after item, and EBADMSG where cbor2 fails.

Streams are fed straight into the read buffer (no socket I/O), so that the
run stays within seconds.
"""

import errno
import io
import json
import os
import pickle
import random
import re
import socket

import cbor2
import pytest

from anyevent import reactor
from anyevent.handle import Handle, _types, _wire

CASES = 10000
SOAK_CASES = int(os.environ.get("ANYEVENT_FUZZ_CASES", 100000))
_ALLOWED = {errno.EBADMSG, errno.ENOSPC, errno.EPIPE}


@pytest.fixture(scope="module")
def sock():
    a, b = socket.socketpair()
    with a, b:
        yield b


def feed(sock, args, pieces, show, reports):
    """The events of a Handle reading ``args`` again and again from ``pieces``."""
    events = []

    def on_error(hdl, fatal, message):
        events.append(("error", hdl.errno, message))

    def cb(hdl, *values):
        events.append(("read",) + show(*values))
        if args[0] != "tls_detect":  # it takes nothing from the buffer
            hdl.push_read(*args, cb)
    hdl = Handle(fh=sock, close_fh=False, on_error=on_error, rbuf_max=1 << 16)
    hdl.push_read(*args, cb)
    for piece in pieces:
        if hdl.destroyed():
            break
        hdl.rbuf.extend(piece)
        hdl._drain_rbuf()
    if not hdl.destroyed():
        hdl._eof = True  # what the Handle does on reading end-of-file
        hdl._drain_rbuf()
    hdl.destroy()
    for event in events:
        if event[0] == "error":
            assert event[1] in _ALLOWED or event[2] == "Unexpected end-of-file", event
            assert not event[2].startswith("read request failed"), event
    assert not reports, reports
    return events


def upto_error(events):
    for i, event in enumerate(events):
        if event[0] == "error":
            return events[:i + 1]
    return events


def cut(rng, stream):
    if rng.random() < 0.1:
        return [stream[i:i + 1] for i in range(len(stream))]
    points = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randint(1, 6)))
    bounds = [0] + points + [len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


def mangle(rng, stream):
    data = bytearray(stream)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and pos < len(data):
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2:
            del data[pos:pos + rng.randint(1, 3)]
        else:
            del data[pos:]
    return bytes(data)


# -- random values ------------------------------------------------------------------

def text(rng):
    return "".join(rng.choice('ab"\\\n\u00e9\u20ac\U0001f600 \x01/') for _ in range(rng.randrange(8)))


def scalar(rng):
    return rng.choice([
        lambda: rng.randint(-2 ** 70, 2 ** 70), lambda: rng.randint(-30, 30),
        lambda: rng.uniform(-1e6, 1e6), lambda: rng.random() * 10 ** rng.randint(-300, 300),
        lambda: text(rng), lambda: True, lambda: False, lambda: None])()


def value(rng, depth=0):
    r = rng.random()
    if depth < 3 and r < 0.2:
        return [value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if depth < 3 and r < 0.3:
        return {text(rng): value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return scalar(rng)


def storable_value(rng, depth=0):
    r = rng.random()
    if depth < 3 and r < 0.1:
        return tuple(storable_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    if depth < 3 and r < 0.15:
        return {rng.randint(0, 9) for _ in range(rng.randrange(4))}
    if r < 0.2:
        return rng.randbytes(rng.randrange(10))
    if depth < 3 and r < 0.35:
        return [storable_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return scalar(rng)


# -- the read types -------------------------------------------------------------------

def _json_show(v):
    return (json.dumps(v, sort_keys=True),)


def json_stream(rng):
    values = [value(rng) for _ in range(rng.randint(1, 4))]
    out = b""
    for v in values:
        t = json.dumps(v, ensure_ascii=rng.random() < 0.5).encode()
        if out and (out[-1:].isalnum() and (t[:1].isalnum() or t[:1] == b"-")) or rng.random() < 0.5:
            t = rng.choice([b" ", b"\n", b"\r\n\t "]) + t
        out += t
    return values, out, [_json_show(v) for v in values]


def cbor_stream(rng):
    values = [value(rng) for _ in range(rng.randint(1, 4))]
    values += [rng.randbytes(rng.randrange(30))] * rng.randint(0, 1)
    return values, b"".join(cbor2.dumps(v) for v in values), [(cbor2.dumps(v),) for v in values]


def storable_stream(rng):
    values = [storable_value(rng) for _ in range(rng.randint(1, 3))]
    frames = [_types._write_storable(None, v) if rng.random() < 0.5 else
              _types._write_packstring(None, "w", pickle.dumps(v, protocol=rng.randrange(6)))
              for v in values]
    return values, b"".join(frames), [(repr(v),) for v in values]


_BLOB_BYTES = bytes(b"ab\r\n,:0123456789\x00\xff" * 16)[:256]


def blobs(rng):
    return [rng.randbytes(rng.randrange(20)).translate(_BLOB_BYTES)
            for _ in range(rng.randint(1, 4))]


def line_stream(rng, eol):
    lines = [b.replace(b"\n", b"").replace(b"\r", b"").replace(b"<", b"") for b in blobs(rng)]
    eols = [eol or rng.choice([b"\n", b"\r\n"]) for _ in lines]
    return lines, b"".join(l + e for l, e in zip(lines, eols)), [(l, e) for l, e in zip(lines, eols)]


def netstring_stream(rng):
    parts = blobs(rng)
    return parts, b"".join(b"%d:%s," % (len(p), p) for p in parts), [(p,) for p in parts]


def packstring_stream(rng, fmt):
    parts = blobs(rng)
    return parts, b"".join(_types._write_packstring(None, fmt, p) for p in parts), \
        [(p,) for p in parts]


def chunk_stream(rng):
    data = rng.randbytes(rng.randrange(1, 40))
    return None, data, [(data[i:i + 5],) for i in range(0, len(data) - len(data) % 5, 5)]


def regex_stream(rng):
    blocks = [b"".join((l.replace(b"\n", b"") or b"x") + b"\r\n" for l in blobs(rng)) + b"\r\n"
              for _ in range(rng.randint(1, 3))]
    return blocks, b"".join(blocks), [(b,) for b in blocks]


def tls_detect_stream(rng):
    data = rng.choice([b"\x16\x03\x01\x02\x00", b"\x80\x2e\x01\x03\x01", b"GET /"])
    data += rng.randbytes(rng.randrange(4))
    return None, data, None


def _show_bytes(*values):
    return tuple(bytes(v) if isinstance(v, (bytes, bytearray)) else v for v in values)


TYPES = {
    "json": (("json",), json_stream, _json_show),
    "cbor": (("cbor",), cbor_stream, lambda v: (cbor2.dumps(v),)),
    "storable": (("storable",), storable_stream, lambda v: (repr(v),)),
    "line": (("line",), lambda rng: line_stream(rng, None), _show_bytes),
    "line bytes": (("line", b"<E>"), lambda rng: line_stream(rng, b"<E>"), _show_bytes),
    "line regex": (("line", re.compile(rb"\r?\n")), lambda rng: line_stream(rng, None),
                   _show_bytes),
    "regex": (("regex", re.compile(rb"\r\n\r\n")), regex_stream, _show_bytes),
    "netstring": (("netstring",), netstring_stream, _show_bytes),
    "packstring w": (("packstring", "w"), lambda rng: packstring_stream(rng, "w"), _show_bytes),
    "packstring n": (("packstring", "n"), lambda rng: packstring_stream(rng, "n"), _show_bytes),
    "chunk": (("chunk", 5), chunk_stream, _show_bytes),
    "tls_detect": (("tls_detect",), tls_detect_stream, _show_bytes),
}


def cbor_reference(stream):
    """What cbor2 makes of the whole stream: the items read, then EBADMSG
    where it fails, or EPIPE where the stream ends inside an item (also
    when cbor2 fails on the content of an item that is cut short: the read
    type waits for an item's end before decoding it)."""
    fp = io.BytesIO(stream)
    out = []
    while fp.tell() < len(stream):
        start = fp.tell()
        try:
            out.append(("read", cbor2.dumps(cbor2.CBORDecoder(fp).decode())))
        except cbor2.CBORDecodeEOF:
            return out, errno.EPIPE
        except Exception:  # noqa: BLE001 - any cbor2 failure is a bad message
            return out, errno.EPIPE if _cut_short(stream[start:]) else errno.EBADMSG
    return out, errno.EPIPE


def _cut_short(data):
    try:
        return _wire._CborScan().end(data, 0) < 0
    except ValueError:
        return False


def run_cases(sock, name, cases, seed, monkeypatch):
    args, make, show = TYPES[name]
    reports = []
    monkeypatch.setattr(reactor, "_report", lambda exc, *a: reports.append(exc))
    rng = random.Random("%s-%d" % (name, seed))
    valid = mangled = 0
    for case in range(cases):
        _, stream, expected = make(rng)
        bad = case % 2 == 1
        if bad:
            stream = mangle(rng, stream)
        whole = feed(sock, args, [stream], show, reports)
        split = feed(sock, args, cut(rng, stream), show, reports)
        assert upto_error(split) == upto_error(whole), (name, stream)
        if not bad and expected is not None:
            assert whole[:-1] == [("read",) + e for e in expected], (name, stream)
            assert whole[-1][:2] == ("error", errno.EPIPE), (name, stream)
            valid += 1
        elif bad:
            mangled += 1
            if name == "cbor":
                reads, err = cbor_reference(stream)
                first = upto_error(whole)
                assert first[:-1] == reads and first[-1][1] == err, stream
    return valid, mangled


# variants of one read type share its cases
_VARIANTS = {"line": 3, "line bytes": 3, "line regex": 3, "packstring w": 2, "packstring n": 2}


@pytest.mark.parametrize("name", list(TYPES))
def test_fuzz(sock, monkeypatch, name):
    cases = -(-CASES // _VARIANTS.get(name, 1))
    valid, mangled = run_cases(sock, name, cases, 0, monkeypatch)
    print("%s: %d valid, %d mangled" % (name, valid, mangled))


@pytest.mark.soak
@pytest.mark.parametrize("name", list(TYPES))
def test_fuzz_soak(sock, monkeypatch, name):
    run_cases(sock, name, SOAK_CASES, 1, monkeypatch)
