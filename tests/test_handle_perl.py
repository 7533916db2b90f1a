"""Interop with the real AnyEvent::Handle: a Perl peer (tests/perl/peer.pl)
and a Python Handle exchange line, netstring, packstring (every format),
json (JSON::XS) and cbor (CBOR::XS) frames over TCP on 127.0.0.1.

Perl first writes every frame of a plan, Python decodes them; then Python
writes the same frames, Perl decodes them, prints what it saw and echoes
each value back re-encoded.  Values are compared in a "tagged" form that
keeps the type (text vs bytes, int vs float bits, bool) on both sides.
"""

import hashlib
import json
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from anyevent import AE
from anyevent.handle import Handle
from anyevent.handle._wire import _pack_length, _unpack_length

from conftest import Listener, require_tool

PEER = Path(__file__).with_name("perl") / "peer.pl"
HEX_MAX = 64  # as peer.pl: longer byte strings are compared as (length, md5)


@pytest.fixture(scope="module", autouse=True)
def perl_modules():
    """Skip (or fail with ANYEVENT_REQUIRE_TOOLS=1) without perl and its modules."""
    require_tool("perl")
    probe = subprocess.run(["perl", "-MAnyEvent::Handle", "-MJSON::XS", "-MCBOR::XS", "-e1"],
                           capture_output=True, text=True)
    if probe.returncode:
        message = "perl AnyEvent::Handle/JSON::XS/CBOR::XS missing: " + probe.stderr.strip()
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)


# -- tagged values (the same scheme as tag()/untag() in peer.pl) ----------------

def tag(v):
    """A decoded value as a JSON structure that keeps its exact type."""
    if v is None:
        return None
    if isinstance(v, bool):
        return {"t": v}
    if isinstance(v, int):
        return {"i": str(v)}
    if isinstance(v, float):
        return {"f": struct.pack(">d", v).hex()}
    if isinstance(v, str):
        return {"s": v}
    if isinstance(v, (bytes, bytearray)):
        if len(v) <= HEX_MAX:
            return {"b": bytes(v).hex()}
        return {"bd": [len(v), hashlib.md5(v).hexdigest()]}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {"m": sorted([k, tag(x)] for k, x in v.items())}
    raise TypeError("cannot tag %r" % (v,))


# -- the plan -------------------------------------------------------------------

class Frame:
    """One frame of the plan: type, type arguments and the Python value."""

    def __init__(self, type_, value, term=b"", **args):
        self.type, self.value, self.term, self.args = type_, value, term, args

    def plan(self):
        if isinstance(self.value, bytes) and len(self.value) > HEX_MAX:
            tagged = {"b": self.value.hex()}  # peer.pl needs the bytes themselves
        else:
            tagged = tag(self.value)
        return {"type": self.type, "args": self.args, "value": tagged, "term": self.term.hex()}

    def read_args(self):
        if "eol_re" in self.args:
            return ("line", re.compile(self.args["eol_re"].encode()))
        if "eol" in self.args:
            return ("line", bytes.fromhex(self.args["eol"]))
        if "format" in self.args:
            return ("packstring", self.args["format"])
        return (self.type,)

    def write(self, hdl):
        if self.type == "line":
            hdl.push_write(self.value + self.term)
        else:
            hdl.push_write(*self.read_args(), self.value)

    def expected(self):
        seen = {"value": tag(self.value)}
        if self.type == "line":
            seen["eol"] = self.term.hex()
        return seen


def line(data, term=b"\n", **args):
    return Frame("line", data, term, **{k: v.hex() if isinstance(v, bytes) else v
                                        for k, v in args.items()})


def seen(frame_type, value, eol=None):
    out = {"value": tag(value)}
    if frame_type == "line":
        out["eol"] = eol.hex()
    return out


# -- running an exchange ----------------------------------------------------------

def exchange(frames, tmp_path):
    """Run the plan through peer.pl; return (python_saw, echoes, perl_saw)."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([f.plan() for f in frames]))
    with Listener() as listener:
        with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
            proc = subprocess.Popen(["perl", str(PEER), str(listener.port), str(plan)],
                                    stdout=out, stderr=err)
        try:
            conn = listener.accept(20)
            python_saw, echoes = drive(conn, frames)
            assert proc.wait(timeout=20) == 0, (tmp_path / "err").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    perl_saw = [json.loads(x) for x in (tmp_path / "out").read_bytes().split(b"\n") if x]
    assert [x.pop("index") for x in perl_saw] == list(range(len(frames)))
    return python_saw, echoes, perl_saw


def drive(conn, frames):
    """Read Perl's frames, write ours, read the echoes; all on the loop."""
    cv = AE.cv()
    python_saw, echoes = [], []
    hdl = Handle(fh=conn, on_error=lambda h, fatal, msg: cv.croak("python side: " + msg),
                 on_eof=lambda h: cv.croak("python side: early EOF"))

    def collect(into, frame, last):
        def cb(h, value, eol=None):
            into.append(seen(frame.type, value, eol))
            if last:
                cv.send()
        return cb

    for into in (python_saw, echoes):
        for i, frame in enumerate(frames):
            hdl.push_read(*frame.read_args(),
                          collect(into, frame, into is echoes and i == len(frames) - 1))
    for frame in frames:
        frame.write(hdl)
    timer = AE.timer(30, 0, lambda: cv.croak("exchange timed out"))
    cv.recv()
    del timer
    hdl.destroy()
    return python_saw, echoes


def check(frames, tmp_path):
    python_saw, echoes, perl_saw = exchange(frames, tmp_path)
    expected = [f.expected() for f in frames]
    assert perl_saw == expected      # Perl decoded what Python wrote
    assert python_saw == expected    # Python decoded what Perl wrote
    assert echoes == expected        # Perl's re-encoding decodes to the same


# -- the frames -----------------------------------------------------------------

def test_lines(tmp_path):
    check([
        line(b"plain"),
        line(b"crlf", b"\r\n"),
        line(b""),
        line(b"", b"\r\n"),
        line(b"lone\rCR"),
        line(b"  leading spaces\tand tabs "),
        line(bytes(range(256)).replace(b"\n", b"")),
        line(b"x" * 100000),                  # longer than any read
        line(b"nul-terminated", b"\0", eol=b"\0"),
        line(b"multi-byte eol", b"<<END>>", eol=b"<<END>>"),
        line(b"regex eol a", b";;", eol_re=r";+|\|"),
        line(b"regex eol b", b"|", eol_re=r";+|\|"),
    ], tmp_path)


def test_netstrings(tmp_path):
    check([Frame("netstring", v) for v in (
        b"", b"0:xx,,", b",", b"\0\xff" * 3, b"y" * 700000,
    )], tmp_path)


# Every packstring format Perl's pack accepts as a length (with the !<>
# modifiers where pack allows them), with the largest length the format holds
# (or 70000 where that is out of reach), 0 and 1.
PACK_FORMATS = {
    "c": 127, "C": 255,
    **{"s" + m: 32767 for m in ("", "!", "<", ">", "!<", "!>")},
    **{"S" + m: 65535 for m in ("", "!", "<", ">", "!<", "!>")},
    **{L + m: 70000 for L in "lLiI" for m in ("", "!", "<", ">", "!<", "!>")},
    **{L + m: 70000 for L in "qQjJ" for m in ("", "<", ">")},
    "n": 65535, "n!": 32767, "v": 65535, "v!": 32767,
    "N": 70000, "N!": 70000, "V": 70000, "V!": 70000,
    "w": 70000,
}


def fill(n):
    """n bytes that vary, so that a shifted or cut payload shows."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def test_packstring_every_format(tmp_path):
    frames = []
    for fmt, longest in PACK_FORMATS.items():
        for n in (0, 1, longest):
            frames.append(Frame("packstring", fill(n), format=fmt))
    check(frames, tmp_path)


def test_packstring_ber_boundaries(tmp_path):
    # BER lengths change size at 2**7, 2**14 and 2**21.
    sizes = (127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21)
    check([Frame("packstring", fill(n), format="w") for n in sizes], tmp_path)


def test_json(tmp_path):
    # JSON::XS writes floats with 15 significant digits (so DBL_MAX comes out
    # as 1.79769313486232e+308, beyond DBL_MAX), reads some tiny subnormals
    # inexactly and decodes -2**63 as a string: the values below are the ones
    # both ends carry exactly.
    check([Frame("json", v) for v in (
        [], {}, [[[]]], [None, True, False],
        [0, 1, -1, 2 ** 31, -2 ** 31, 2 ** 63 - 1, -2 ** 63 + 1, 2 ** 64 - 1],
        [0.5, -2.25, 0.1, 1e300, -1.5e-300, 123456.789, 1e-07, 1.5e308],
        ["", "plain", "\u00e9", "\u65e5\u672c", "\U0001f600", "\0", "\"\\/\b\f\n\r\t",
         "\u2028\u2029", "x" * 70000],
        {"key": [1, {"nested": {"deeper": None}}], "\u00e9": "", "": 0},
    )], tmp_path)


def test_cbor(tmp_path):
    check([Frame("cbor", v) for v in (
        0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 64 - 1,
        -1, -24, -25, -256, -257, -2 ** 32, -2 ** 63,
        1.5, 0.1, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"),
        float("nan"), 1 / 3,
        True, False, None,
        b"", b"\0\xff", bytes(range(256)) * 3000,
        "", "text", "\u00e9\U0001f600", "t" * 70000,
        [], [1, [2, [3]]], {}, {"a": 1, "\u00e9": [b"x", "y"], "": {"k": None}},
    )], tmp_path)


def test_cbor_integral_floats_come_back_as_integers(tmp_path):
    # CBOR::XS decodes them as floats, but stores a float with an integral
    # value as a CBOR integer when it encodes (losing the sign of -0.0).
    floats = [0.0, -0.0, 2.0, 65536.0]
    frames = [Frame("cbor", v) for v in floats]
    python_saw, echoes, perl_saw = exchange(frames, tmp_path)
    assert perl_saw == [f.expected() for f in frames]
    assert python_saw == echoes == [{"value": tag(int(v))} for v in floats]


def test_mixed_frames_back_to_back(tmp_path):
    # different framings running into each other, as a real protocol does
    check([
        Frame("json", ["hello", 1]),
        line(b"  after json"),
        Frame("cbor", {"k": [1.5, b"\x01"]}),
        Frame("packstring", b"p" * 300, format="N"),
        Frame("netstring", b"n"),
        Frame("json", {"z": "\u00e9"}),
        Frame("cbor", "\n"),
        line(b"last", b"\r\n"),
    ], tmp_path)


# -- the length headers over each format's whole range ----------------------------

def _edges(fmt):
    if fmt == "w":
        return [0, 127, 128, 2 ** 32 - 1, 2 ** 63, 2 ** 64 - 1]
    letter = fmt[0]
    bits = struct.calcsize("=" + {"c": "b", "s": "h", "l": "i", "q": "q", "i": "i", "j": "q",
                                  "n": "h", "v": "h", "N": "i", "V": "i"}[letter.lower()]) * 8
    if letter in "lL" and "!" in fmt:
        bits = struct.calcsize("@l") * 8
    signed = letter.islower() if letter not in "nNvV" else "!" in fmt
    if signed:
        return [-2 ** (bits - 1), -1, 0, 2 ** (bits - 1) - 1]
    return [0, 1, 2 ** bits - 1]


def test_length_headers_match_perl_pack():
    """Python's packstring headers are byte for byte Perl's pack at the edges
    of every format's range, and decode back to the same value.
    """
    cases = [(fmt, n) for fmt in PACK_FORMATS for n in _edges(fmt)]
    script = "print unpack('H*', pack($ARGV[$_*2], $ARGV[$_*2+1])), qq{\\n} for 0..$#ARGV/2"
    args = [str(x) for case in cases for x in case]
    out = subprocess.run(["perl", "-e", script, *args], capture_output=True, text=True, check=True)
    perl = out.stdout.split()
    assert len(perl) == len(cases)
    for (fmt, n), perl_hex in zip(cases, perl):
        header = bytes.fromhex(perl_hex)
        if n >= 0:
            assert _pack_length(fmt, n) == header, (fmt, n)
        assert _unpack_length(fmt, header + b"rest") == (n, len(header)), (fmt, n)


def test_format_validity_matches_perl():
    """A length format is accepted exactly when Perl's pack accepts it."""
    candidates = [L + m for L in "cCsSlLqQiInNvVjJw" for m in ("", "!", "<", ">", "!<", "<>")]
    script = "for (@ARGV) { print eval { pack qq{$_/a*}, 'x'; 1 } ? 1 : 0 }"
    out = subprocess.run(["perl", "-e", script, *candidates], capture_output=True, text=True,
                         check=True).stdout
    perl_ok = {fmt: ok == "1" for fmt, ok in zip(candidates, out)}
    python_ok = {}
    for fmt in candidates:
        try:
            _pack_length(fmt, 1)
        except ValueError:
            python_ok[fmt] = False
        else:
            python_ok[fmt] = True
    assert python_ok == perl_ok
