"""Split invariance of every Handle read type (hypothesis).

Each test generates messages, encodes them into one byte stream (with the
matching ``push_write`` type where there is one, through a real writer
Handle), cuts the stream at arbitrary points and writes the pieces one by one
into a socketpair, turning the loop after each piece so that the reading
Handle really sees them apart.  The callbacks (and their arguments, in order)
must be the same as for the stream sent whole, and the same as the messages
that went in.  The packstring headers are also checked byte for byte against
Perl's ``pack``.
"""

import decimal
import datetime
import json
import os
import re
import socket
import subprocess
import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from anyevent import AE
from anyevent.handle import Handle
from anyevent.reactor import loop
from conftest import require_tool, run_until

# ANYEVENT_PROPS_EXAMPLES=500 for a longer hunt than the quick default
PROPS = settings(max_examples=int(os.environ.get("ANYEVENT_PROPS_EXAMPLES", 50)), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _nothing():
    pass


def encode(write):
    """The bytes a real writer Handle puts on the wire when ``write(hdl)`` runs."""
    x, y = socket.socketpair()
    with x, y:
        out = bytearray()
        y.setblocking(False)

        def pull():
            try:
                out.extend(y.recv(65536))
            except BlockingIOError:
                pass
        puller = AE.io(y, 0, pull)
        w = Handle(fh=x, close_fh=False, on_error=lambda h, fatal, msg: pytest.fail("writer: " + msg))
        write(w)
        cv = AE.cv()
        w.on_drain(lambda h: cv.send())
        run_until(cv)
        w.destroy()
        x.shutdown(socket.SHUT_WR)
        del puller
        y.setblocking(True)
        while True:
            data = y.recv(65536)
            if not data:
                return bytes(out)
            out += data


class Reader:
    """A Handle on one end of a socketpair, fed by the test from the other end.

    ``events`` collects ``("error", fatal, errno, message)``, ``("eof",)``
    and whatever the read callbacks made with :meth:`record`.
    """

    def __init__(self, **opts):
        self.peer, self.sock = socket.socketpair()
        self.peer.setblocking(False)
        self.events = []
        opts.setdefault("on_error", self._on_error)
        opts.setdefault("on_eof", self._on_eof)
        self.hdl = Handle(fh=self.sock, **opts)

    def _on_error(self, hdl, fatal, message):
        self.events.append(("error", fatal, hdl.errno, message))

    def _on_eof(self, hdl):
        self.events.append(("eof",))

    def record(self, tag, convert=lambda *args: args):
        """A read callback appending ``(tag, *convert(*args))`` to ``events``."""
        return lambda hdl, *args: self.events.append((tag,) + tuple(convert(*args)))

    def unread(self):
        """True while bytes sent by the peer still wait in the kernel."""
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except (BlockingIOError, OSError):
            return False

    def send(self, piece, timeout=5):
        """Write ``piece`` (of any size) and turn the loop until the handle has
        read all of it, or is destroyed."""
        rest = memoryview(piece)
        deadline = time.monotonic() + timeout
        while not self.hdl.destroyed():
            if rest:
                try:
                    rest = rest[self.peer.send(rest):]
                except BlockingIOError:
                    pass
            if not rest and not self.unread():
                return
            assert time.monotonic() < deadline, "handle stopped reading with data pending"
            guard = AE.timer(0.1, 0, _nothing)  # never block in one_event
            loop.one_event()
            del guard

    def finish(self, timeout=5):
        """Close the peer, wait for on_eof or a fatal error; return the events.

        An ``on_read`` that records leftovers keeps the handle reading to EOF.
        """
        self.hdl.on_read(lambda hdl: self.events.append(("leftover", bytes(hdl.rbuf))))
        self.peer.close()
        deadline = time.monotonic() + timeout
        while not self.hdl.destroyed() and ("eof",) not in self.events:
            assert time.monotonic() < deadline, "no eof seen"
            guard = AE.timer(0.1, 0, _nothing)
            loop.one_event()
            del guard
        self.hdl.destroy()
        self.sock.close()
        return self.events


def cut(stream, points):
    """``stream`` split at the given offsets (duplicates and ends give no empty pieces)."""
    bounds = sorted({0, len(stream), *[p % (len(stream) + 1) for p in points]})
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


def feed(stream, pieces, setup, **opts):
    """Events of a Reader set up by ``setup(reader)``, fed ``pieces`` of ``stream``."""
    assert b"".join(pieces) == stream
    reader = Reader(**opts)
    setup(reader)
    for piece in pieces:
        reader.send(piece)
    return reader.finish()


def check_split_invariance(stream, points, setup, expected, **opts):
    """Whole stream, byte-wise-ish cuts: all give ``expected`` then eof."""
    whole = feed(stream, [stream], setup, **opts)
    assert whole == expected + [("eof",)]
    split = feed(stream, cut(stream, points), setup, **opts)
    assert split == whole


splits = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)


# -- chunk ----------------------------------------------------------------------

@PROPS
@given(st.lists(st.binary(max_size=300), max_size=8), splits)
def test_chunk(chunks, points):
    def setup(r):
        for c in chunks:
            r.hdl.push_read("chunk", len(c), r.record("chunk"))
    expected = [("chunk", c) for c in chunks]
    check_split_invariance(b"".join(chunks), points, setup, expected)


# -- line -----------------------------------------------------------------------

def line_bodies(forbidden):
    """Lines over the bytes not in ``forbidden``."""
    alphabet = [b for b in range(256) if b not in forbidden]
    return st.lists(st.sampled_from(alphabet), max_size=40).map(bytes)


@PROPS
@given(st.lists(st.tuples(line_bodies(b"\r\n"), st.sampled_from([b"\n", b"\r\n"])), max_size=10),
       splits)
def test_line_default_eol(lines, points):
    def setup(r):
        for _ in lines:
            r.hdl.push_read("line", r.record("line"))
    stream = b"".join(body + eol for body, eol in lines)
    check_split_invariance(stream, points, setup, [("line", body, eol) for body, eol in lines])


@PROPS
@given(st.sampled_from([b"\n", b"\r\n", b"\0", b"END", b"||", b"\r\n\r\n"]).flatmap(
    lambda eol: st.tuples(st.just(eol), st.lists(line_bodies(eol), max_size=10))), splits)
def test_line_bytes_eol(eol_lines, points):
    eol, lines = eol_lines

    def setup(r):
        for _ in lines:
            r.hdl.push_read("line", eol, r.record("line"))
    stream = b"".join(body + eol for body in lines)
    check_split_invariance(stream, points, setup, [("line", body, eol) for body in lines])


# eol regexes whose matches cannot grow with more input, each with sample eols
REGEX_EOLS = [
    (re.compile(rb"\r?\n"), [b"\n", b"\r\n"]),
    (re.compile(rb";+\n"), [b";\n", b";;;\n"]),
    (re.compile(rb"<(?:EOL|eol)>"), [b"<EOL>", b"<eol>"]),
    (re.compile(rb"\x00\x01|\xff"), [b"\x00\x01", b"\xff"]),
]


@PROPS
@given(st.sampled_from(REGEX_EOLS).flatmap(lambda rx_eols: st.tuples(
    st.just(rx_eols[0]),
    st.lists(st.tuples(line_bodies(b"\r\n;<>\x00\xff"), st.sampled_from(rx_eols[1])),
             max_size=10))), splits)
def test_line_regex_eol(rx_lines, points):
    rx, lines = rx_lines

    def setup(r):
        for _ in lines:
            r.hdl.push_read("line", rx, r.record("line"))
    stream = b"".join(body + eol for body, eol in lines)
    check_split_invariance(stream, points, setup, [("line", body, eol) for body, eol in lines])


# -- regex with accept and skip ----------------------------------------------------

# an HTTP-style header block: lines ended by CRLF, the block by an empty line
header_blocks = st.lists(line_bodies(b"\r\n").filter(bool), min_size=1, max_size=5).map(
    lambda lines: b"".join(line + b"\r\n" for line in lines) + b"\r\n")


@PROPS
@given(st.lists(header_blocks, max_size=5), st.booleans(), splits)
def test_regex_accept_skip(blocks, use_skip, points):
    accept = re.compile(rb"\r\n\r\n")
    skip = re.compile(rb"^.*[^\r\n]") if use_skip else None

    def setup(r):
        for _ in blocks:
            r.hdl.push_read("regex", accept, None, skip, r.record("regex"))
    check_split_invariance(b"".join(blocks), points, setup, [("regex", b) for b in blocks])


# -- netstring --------------------------------------------------------------------

@PROPS
@given(st.lists(st.binary(max_size=300), max_size=8), splits)
def test_netstring(strings, points):
    def setup(r):
        for _ in strings:
            r.hdl.push_read("netstring", r.record("netstring"))
    stream = encode(lambda w: [w.push_write("netstring", s) for s in strings])
    assert stream == b"".join(b"%d:%s," % (len(s), s) for s in strings)
    check_split_invariance(stream, points, setup, [("netstring", s) for s in strings])


# -- packstring ---------------------------------------------------------------------

def _perl_formats():
    """Every single-integer format Perl's pack accepts for packstring, with its
    largest value (as on x86_64 Linux, where ``l!``/``L!`` are 8 bytes)."""
    out = {"c": 127, "C": 255, "w": 1 << 62}
    for letter, bits in (("s", 16), ("l", 32), ("i", 32)):
        for mod in ("", "!", "<", ">", "!<", "!>"):
            width = 64 if letter == "l" and "!" in mod else bits
            out[letter + mod] = (1 << (width - 1)) - 1
            out[letter.upper() + mod] = (1 << width) - 1
    for letter in "qj":
        for mod in ("", "<", ">"):
            out[letter + mod] = (1 << 63) - 1
            out[letter.upper() + mod] = (1 << 64) - 1
    for letter, bits in (("n", 16), ("N", 32), ("v", 16), ("V", 32)):
        out[letter] = (1 << bits) - 1
        out[letter + "!"] = (1 << (bits - 1)) - 1
    return out


PACK_MAX = _perl_formats()
FORMATS = sorted(PACK_MAX)


def test_packstring_format_list_is_what_perl_accepts():
    require_tool("perl")
    script = r'''
        for my $l (split //, "cCsSlLqQiInNvVjJw") {
            for my $m ("", "!", "<", ">", "!<", "!>") {
                print "$l$m\n" if eval { my $x = pack "$l$m", 1; 1 };
            }
        }'''
    perl = subprocess.run(["perl", "-e", script], capture_output=True, text=True, check=True)
    assert sorted(perl.stdout.split()) == FORMATS


def test_packstring_headers_match_perl_pack():
    require_tool("perl")
    sizes = [0, 1, 100, 127, 128, 255, 256, 16383, 16384, 32767, 32768, 65535, 65536, 70000]
    cases = [(f, n) for f in FORMATS for n in sizes if n <= PACK_MAX[f]]
    script = 'while (<STDIN>) { my ($f, $n) = split; print unpack("H*", pack $f, $n), "\\n" }'
    perl = subprocess.run(["perl", "-e", script], capture_output=True, text=True, check=True,
                          input="".join("%s %d\n" % c for c in cases))
    stream = encode(lambda w: [w.push_write("packstring", f, b"x" * n) for f, n in cases])
    want = b"".join(bytes.fromhex(h) + b"x" * n for h, (f, n) in zip(perl.stdout.split(), cases))
    assert stream == want


def test_packstring_length_the_format_cannot_count_is_refused():
    # Perl's pack wraps the length (with a warning) and the frame is corrupt
    require_tool("perl")
    perl = subprocess.run(["perl", "-we", 'print unpack("H*", pack "C", 300)'],
                          capture_output=True, text=True, check=True)
    assert perl.stdout == "2c" and "wrapped" in perl.stderr

    def write(w):
        for fmt in ("C", "c", "n!", "v"):
            with pytest.raises(ValueError, match="does not fit format"):
                w.push_write("packstring", fmt, b"x" * (PACK_MAX[fmt] + 1))
        w.push_write("packstring", "C", b"y" * 255)
    assert encode(write) == b"\xff" + b"y" * 255  # nothing of the refused ones


def packstring_messages():
    return st.sampled_from(FORMATS).flatmap(
        lambda f: st.tuples(st.just(f), st.binary(max_size=min(PACK_MAX[f], 300))))


def _packstring_setup(msgs):
    def setup(r):
        for fmt, _ in msgs:
            r.hdl.push_read("packstring", fmt, r.record("packstring"))
    return setup


@PROPS
@given(st.lists(packstring_messages(), max_size=10), splits)
def test_packstring_mixed_formats(msgs, points):
    stream = encode(lambda w: [w.push_write("packstring", f, d) for f, d in msgs])
    check_split_invariance(stream, points, _packstring_setup(msgs),
                           [("packstring", d) for _, d in msgs])


def test_packstring_every_format_byte_by_byte():
    msgs = [(f, bytes(range(i % 7, 100 + i % 7))) for i, f in enumerate(FORMATS)]
    msgs.append(("w", b"w" * 20000))  # three-byte BER header
    stream = encode(lambda w: [w.push_write("packstring", f, d) for f, d in msgs])
    check_split_invariance(stream, range(len(stream) - 20000), _packstring_setup(msgs),
                           [("packstring", d) for _, d in msgs])


# -- json ------------------------------------------------------------------------

def containers(kids):
    """Small lists and str-keyed dicts of ``kids``."""
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)


json_scalars = (st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    containers,
    max_leaves=12)
json_texts = containers(json_values)


def _canon_json(value):
    return (json.dumps(value, sort_keys=True),)


@PROPS
@given(st.lists(json_texts, max_size=5), st.sampled_from([b"", b" ", b"\n", b"\r\n\t "]), splits)
def test_json(values, gap, points):
    def setup(r):
        for _ in values:
            r.hdl.push_read("json", r.record("json", _canon_json))

    def write(w):
        for v in values:
            w.push_write(gap)  # whitespace before a text is skipped, after it is left
            w.push_write("json", v)
    stream = encode(write)
    assert b"\n" not in stream.replace(gap, b"")  # the json write type never writes newlines
    check_split_invariance(stream, points, setup, [("json",) + _canon_json(v) for v in values])


# top-level scalars: a number or literal needs whitespace (or a bracket/quote)
# after it, else it runs into the next; the last text may end the stream
json_top_texts = json_texts | json_scalars


def _json_stream(values, gaps):
    """The texts, each after its gap: whitespace after the last would stay in
    the buffer (and make the Reader's finish an EPIPE)."""
    return b"".join(gap + json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
                    for value, gap in zip(values, gaps))


@PROPS
@given(st.lists(json_top_texts, max_size=6),
       st.lists(st.sampled_from([b" ", b"\n", b"\r\n\t "]), min_size=6, max_size=6),
       splits)
def test_json_top_level_scalars(values, gaps, points):
    def setup(r):
        for _ in values:
            r.hdl.push_read("json", r.record("json", _canon_json))
    stream = _json_stream(values, gaps)
    check_split_invariance(stream, points, setup, [("json",) + _canon_json(v) for v in values])


NUMBERS = b"-5 0 -0 1.5e+3 -0.25E-2 1E5 12345678901234567890 -1.0e-0 3.25"


@pytest.mark.parametrize("tail", [b"", b" true null false \"a\\\"b\" 7"])
def test_json_numbers_cut_anywhere(tail):
    """Every single cut of a stream of numbers (and then literals, a string,
    a number just before EOF) gives the same values."""
    stream = NUMBERS + tail
    texts = stream.decode().split()
    expected = [("json",) + _canon_json(json.loads(t)) for t in texts]

    def setup(r):
        for _ in texts:
            r.hdl.push_read("json", r.record("json", _canon_json))
    for point in range(1, len(stream)):
        assert feed(stream, cut(stream, [point]), setup) == expected + [("eof",)], point


# -- cbor ------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.binary(max_size=40)
    | st.text(max_size=12) | st.floats(allow_nan=False),
    containers,
    max_leaves=12)


def _canon_cbor(value):
    return (cbor2.dumps(value),)


@PROPS
@given(st.lists(cbor_values, max_size=6), splits)
def test_cbor(values, points):
    def setup(r):
        for _ in values:
            r.hdl.push_read("cbor", r.record("cbor", _canon_cbor))
    stream = encode(lambda w: [w.push_write("cbor", v) for v in values])
    assert stream == b"".join(cbor2.dumps(v) for v in values)
    check_split_invariance(stream, points, setup, [("cbor",) + _canon_cbor(v) for v in values])


# -- storable --------------------------------------------------------------------

storable_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=30) | st.text(max_size=12)
    | st.floats(allow_nan=False) | st.decimals(allow_nan=False, places=3)
    | st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)) | st.dates()
    | st.frozensets(st.integers(), max_size=4) | st.binary(max_size=10).map(bytearray),
    lambda kids: (st.lists(kids, max_size=4) | st.tuples(kids, kids)
                  | st.dictionaries(st.text(max_size=6), kids, max_size=4)
                  | st.sets(st.integers(), max_size=4)),
    max_leaves=12)


def _canon_storable(value):
    """A hashable, order-independent, type-preserving image of ``value``."""
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, tuple(sorted(map(_canon_storable, value), key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(map(_canon_storable, value)))
    if isinstance(value, dict):
        return ("dict", tuple((k, _canon_storable(v)) for k, v in value.items()))
    if isinstance(value, decimal.Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, repr(value))


@PROPS
@given(st.lists(storable_values, max_size=5), splits)
def test_storable(values, points):
    def setup(r):
        for _ in values:
            r.hdl.push_read("storable", r.record("storable", lambda v: (_canon_storable(v),)))
    stream = encode(lambda w: [w.push_write("storable", v) for v in values])
    check_split_invariance(stream, points, setup,
                           [("storable", _canon_storable(v)) for v in values])


# -- tls_detect --------------------------------------------------------------------

def _tls_model(data):
    """What tls_detect reports for a stream starting with ``data`` (>= 6 bytes),
    written from Perl's description of the check."""
    b = data
    if b[0] == 0x16:
        if b[1] in (3, 4) and b[3] <= 0x40:
            return ("accept", b[1], b[2])
    elif b[0] >= 0x80 and b[2] == 1 and b[3] in (3, 4):
        return ("accept", b[3], b[4])
    return (None,)


byte = st.integers(0, 255)
tls_heads = st.one_of(
    st.tuples(st.just(0x16), st.sampled_from([2, 3, 4, 5]), byte, st.sampled_from([0, 0x40, 0x41]),
              byte),
    st.tuples(st.integers(0x7f, 0xff), byte, st.sampled_from([0, 1, 2]),
              st.sampled_from([2, 3, 4, 5]), byte),
).map(bytes)
tls_parts = st.tuples(tls_heads | st.binary(min_size=5, max_size=5),
                      st.binary(min_size=1, max_size=20)).map(b"".join)


@PROPS
@given(st.lists(tls_parts, min_size=1, max_size=5), splits)
def test_tls_detect(parts, points):
    def setup(r):
        for part in parts:
            r.hdl.push_read("tls_detect", r.record("detect"))
            r.hdl.push_read("chunk", len(part), r.record("chunk"))
    expected = []
    for part in parts:
        expected += [("detect",) + _tls_model(part), ("chunk", part)]
    check_split_invariance(b"".join(parts), points, setup, expected)


def test_tls_detect_agrees_with_perl():
    require_tool("perl")
    samples = [bytes.fromhex(h) for h in (
        "160301020001", "160303004001", "160400410000", "160201000000",  # TLS records
        "802e01030100", "ff0001040909", "802e02030100", "000000000000")] + [b"GET / "]
    script = r'''
        use AnyEvent; use AnyEvent::Handle; use Socket;
        while (my $hex = <STDIN>) {
            chomp $hex;
            socketpair my $a, my $b, AF_UNIX, SOCK_STREAM, 0 or die;
            my $cv = AE::cv;
            my $h = AnyEvent::Handle->new(fh => $b, on_error => sub { $cv->send("error") });
            $h->push_read(tls_detect => sub { shift; $cv->send(join ",", map $_ // "-", @_) });
            syswrite $a, pack "H*", $hex;
            print $cv->recv, "\n";
        }'''
    perl = subprocess.run(["perl", "-e", script], capture_output=True, text=True, check=True,
                          input="".join(s.hex() + "\n" for s in samples), timeout=20)
    ours = []
    for sample in samples:
        events = feed(sample, [sample], lambda r: r.hdl.push_read("tls_detect", r.record("d")))
        detect = events[0][1:]
        ours.append(",".join("-" if v is None else str(v) for v in detect))
    assert ours == perl.stdout.split()
    assert [_tls_model(s) for s in samples] == [
        tuple(None if v == "-" else int(v) if v.isdigit() else v for v in line.split(","))
        for line in perl.stdout.split()]
