"""Hostile input for the Handle's parsers.

Malformed frames, lengths no buffer may hold, invalid JSON/CBOR, pickles that
try to run code or allocate gigabytes: each must end in the documented
``on_error(hdl, fatal, message)`` with ``hdl.errno`` set, promptly and with a
bounded read buffer, and the loop must keep serving other handles.  Where
Perl's AnyEvent::Handle has the same rules, the same bytes are fed to it
(subprocess) and the error reports must be identical.
"""

import errno
import json
import os
import pickle
import re
import socket
import subprocess
import time

import pytest

from anyevent import AE
from anyevent.handle import Handle
from conftest import require_tool
from test_handle_props import Reader, encode, run_until


def error(code, fatal):
    return ("error", fatal, code, os.strerror(code))


class Hostile(Reader):
    """A Reader whose on_error destroys the handle, as a careful program does."""

    def _on_error(self, hdl, fatal, message):
        super()._on_error(hdl, fatal, message)
        hdl.destroy()


def chain(reader, kind, args, show):
    """Read ``kind`` messages one after another, recording ``("read", show(...))``."""
    def cb(hdl, *values):
        reader.events.append(("read", show(*values)))
        hdl.push_read(kind, *args, cb)
    reader.hdl.push_read(kind, *args, cb)


def show_bytes(*values):
    return ",".join(v.hex() for v in values)


def show_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def assert_ebadmsg(kind, data):
    """``data`` read as ``kind`` is one non-fatal EBADMSG, nothing read."""
    reader = Hostile()
    reader.hdl.push_read(kind, lambda *a: pytest.fail("read " + kind))
    reader.send(data)
    assert reader.events == [error(errno.EBADMSG, False)]
    reader.finish()


def assert_loop_alive():
    """Another handle on the same loop still exchanges a line."""
    a, b = socket.socketpair()
    with a, b:
        cv = AE.cv()
        hdl = Handle(fh=b, on_error=lambda h, fatal, msg: cv.croak(msg))
        hdl.push_read("line", lambda h, line, eol: cv.send(line))
        a.sendall(b"still here\n")
        assert run_until(cv) == b"still here"
        hdl.destroy()


# -- the same bytes through Perl and Python ----------------------------------------

PERL_FEEDER = r'''
use strict; use AnyEvent; use AnyEvent::Handle; use Socket; use JSON::XS; use CBOR::XS;
$| = 1;
my $js = JSON::XS->new->canonical->allow_nonref;
my %show = (json => sub { $js->encode($_[0]) }, cbor => sub { $js->encode($_[0]) });
while (my $line = <STDIN>) {
    chomp $line;
    my ($type, $hex, $rbuf_max, @args) = split /\|/, $line, -1;
    @args = map { qr/$_/ } @args if $type eq "regex";
    socketpair my $w, my $r, AF_UNIX, SOCK_STREAM, 0 or die;
    my $done = AE::cv;
    my @out;
    my $h = AnyEvent::Handle->new(
        fh => $r, (length $rbuf_max ? (rbuf_max => $rbuf_max) : ()),
        on_error => sub {
            push @out, join " ", "error", ($_[1] ? 1 : 0), $! + 0, $_[2];
            $_[0]->destroy;
            $done->send;
        },
        on_eof => sub { push @out, "eof"; $done->send },
    );
    my $cb; $cb = sub {
        my ($hdl, @v) = @_;
        my $shown = $show{$type} ? $show{$type}->($v[0]) : join ",", map unpack("H*", $_), @v;
        push @out, "read $shown";
        $hdl->push_read($type => @args, $cb);
    };
    $h->push_read($type => @args, $cb);
    syswrite $w, pack "H*", $hex;
    my $settle = AE::cv; my $t1 = AE::timer 0.1, 0, $settle; $settle->recv;
    close $w;
    my $t2 = AE::timer 3, 0, sub { push @out, "timeout"; $done->send };
    $done->recv;
    print join("\t", @out), "\n";
}
'''

# (read type, bytes, rbuf_max, type arguments): Perl and Python must agree
SAME_AS_PERL = [
    ("netstring", b"abc:", None, ()),                  # not a length
    ("netstring", b"01:a,", None, ()),                 # leading zero
    ("netstring", b"-1:", None, ()),
    ("netstring", b"3:abcX", None, ()),                # missing comma
    ("netstring", b"3:abc,4:ab", None, ()),            # cut short by EOF
    ("netstring", b"5:hello,0:,2:hi;", None, ()),
    ("netstring", b"999999999:" + b"x" * 300, 100, ()),
    ("packstring", b"\xff\xff\xff\xf0" + b"x" * 300, 100, ("N",)),
    ("packstring", b"\x00\x00\x00\x02hi\x00\x00\x00", None, ("N",)),
    ("line", b"x" * 300, 100, ()),
    ("regex", b"12\n34a", None, ("\\n", "[^0-9\\n]")),  # reject
    ("json", b"[1,]", None, ()),
    ("json", b'{"a" 1}', None, ()),
    ("json", b"[1] [tru]", None, ()),
    ("json", b"\xff[1]", None, ()),
    ("json", b'{"a":[1,2,{"b":null}]}[3', None, ()),
    ("json", b"1", None, ()),                          # a number just before EOF
    ("json", b"-5 7.25 -1.5e-1", None, ()),
    ("json", b'"a\\"b" 1"c"[2]', None, ()),
    ("json", b"1x", None, ()),
    ("json", b"-", None, ()),
    ("json", b"1.", None, ()),
    ("json", b"[NaN]", None, ()),
    ("json", b"tru", None, ()),
    ("json", b"true 12 34", None, ()),
    ("cbor", b"\xff", None, ()),
    ("cbor", b"\x1c", None, ()),
    ("cbor", b"\x01\x82\x01", None, ()),
]


def _python_events(kind, data, rbuf_max, args):
    if kind == "regex":
        args = tuple(re.compile(a.encode()) for a in args)
    reader = Hostile(**({} if rbuf_max is None else {"rbuf_max": rbuf_max}))
    chain(reader, kind, args, show_json if kind in ("json", "cbor") else show_bytes)
    reader.send(data)
    events = reader.finish()
    return ["read " + e[1] if e[0] == "read" else
            "error %d %d %s" % e[1:] if e[0] == "error" else e[0] for e in events]


def test_error_reports_match_perl():
    require_tool("perl")
    lines = "".join("%s|%s|%s%s\n" % (kind, data.hex(), "" if rbuf_max is None else rbuf_max,
                                      "".join("|" + a for a in args))
                    for kind, data, rbuf_max, args in SAME_AS_PERL)
    perl = subprocess.run(["perl", "-e", PERL_FEEDER], input=lines, capture_output=True,
                          text=True, timeout=60)
    assert perl.returncode == 0, perl.stderr
    want = [line.split("\t") for line in perl.stdout.splitlines()]
    got = [_python_events(*case) for case in SAME_AS_PERL]
    assert "timeout" not in repr(want)
    assert list(zip(SAME_AS_PERL, got)) == list(zip(SAME_AS_PERL, want))
    assert_loop_alive()


# -- lengths no buffer may hold: ENOSPC before the payload arrives ----------------------

HUGE_HEADERS = [
    ("netstring", (), b"999999999:"),
    ("netstring", (), b"99999999999999999999:"),
    ("packstring", ("N",), b"\x7f\xff\xff\xff"),
    ("packstring", ("Q<",), b"\xff" * 8),
    ("packstring", ("j>",), b"\x7f" + b"\xff" * 7),
    ("packstring", ("w",), b"\xff" * 9 + b"\x7f"),     # ten-byte BER: 2**70 - 1
    ("storable", (), b"\x84\x80\x80\x80\x00"),        # BER 2**30
]


@pytest.mark.parametrize("kind,args,header", HUGE_HEADERS)
def test_length_beyond_rbuf_max_is_prompt_enospc(kind, args, header):
    reader = Hostile(rbuf_max=4096)
    reader.hdl.push_read(kind, *args, lambda *a: pytest.fail("read a message"))
    reader.send(header + b"x" * 10)
    assert reader.events == [error(errno.ENOSPC, True)]  # without waiting for 4 KiB
    assert reader.hdl.destroyed()
    reader.finish()
    assert_loop_alive()


@pytest.mark.parametrize("kind,args,header", [
    ("packstring", ("Q<",), b"\xff" * 8),                 # 2**64 - 1
    ("packstring", ("w",), b"\xff" * 9 + b"\x7f"),       # 2**70 - 1
])
def test_a_length_no_memory_could_hold_is_enospc_without_rbuf_max(kind, args, header):
    """The same on the compiled core and in pure Python (a C size field would
    overflow): no buffer could ever hold it."""
    reader = Hostile()
    reader.hdl.push_read(kind, *args, lambda *a: pytest.fail("read a message"))
    reader.send(header + b"x" * 10)
    assert reader.events == [error(errno.ENOSPC, True)]
    reader.finish()
    assert_loop_alive()


def test_fifty_megabytes_of_digits_stay_bounded():
    """A netstring 'length' that never ends: the handle gives up within one
    read past rbuf_max, long before the peer got its 50 MB through."""
    rbuf_max = 65536
    sender, sock = socket.socketpair()
    sender.setblocking(False)
    errors = []
    cv = AE.cv()

    def on_error(hdl, fatal, message):
        errors.append((fatal, hdl.errno, len(hdl.rbuf)))
        if fatal:
            cv.send()
    hdl = Handle(fh=sock, rbuf_max=rbuf_max, on_error=on_error)
    max_read = hdl.max_read_size
    del sock  # the handle's reference is the last: destroying it closes the socket
    hdl.push_read("netstring", lambda *a: pytest.fail("read a netstring"))
    digits = b"1234567890" * 6554
    sent = [0]

    def pump():
        try:
            sent[0] += sender.send(digits)
        except BlockingIOError:
            pass
        except OSError:  # EPIPE/ECONNRESET: the reader is gone
            writer.cancel()
        if sent[0] >= 50 << 20:
            writer.cancel()
    writer = AE.io(sender, 1, pump)
    run_until(cv, 20)
    del writer
    assert errors[-1][:2] == (True, errno.ENOSPC)
    # the first complaint comes as soon as the digits cannot be a length
    assert errors[0][:2] == (False, errno.EBADMSG)
    assert all(size <= rbuf_max + max_read for _, _, size in errors)
    assert hdl.destroyed()
    assert sent[0] < 8 << 20  # nowhere near 50 MB went in
    with pytest.raises(OSError):  # the reading side is closed
        for _ in range(100):
            sender.send(digits)
    sender.close()
    assert_loop_alive()


# -- malformed lengths -------------------------------------------------------------

@pytest.mark.parametrize("kind,args,data", [
    ("packstring", ("w",), b"\xff" * 10),       # ten BER bytes, not the last: too long
    ("packstring", ("w",), b"\x80" * 10),       # even when padded with zero digits
    ("storable", (), b"\xff" * 10),
    ("packstring", ("c",), b"\xff"),                    # negative lengths
    ("packstring", ("n!",), b"\x80\x00"),
    ("packstring", ("l<",), b"\x00\x00\x00\x80"),
    ("packstring", ("q>",), b"\xff" * 8),
])
def test_impossible_length_is_fatal_ebadmsg(kind, args, data):
    reader = Hostile()
    reader.hdl.push_read(kind, *args, lambda *a: pytest.fail("read a message"))
    for i in range(len(data)):  # one byte at a time: the error comes when it is certain
        reader.send(data[i:i + 1])
        assert reader.events == ([] if i < len(data) - 1 else [error(errno.EBADMSG, True)])
    reader.finish()
    assert_loop_alive()


def test_netstring_with_more_than_twenty_digits_is_bad_at_once():
    """Perl waits for a ':' forever (until rbuf_max); no length that long can
    be met, so the port reports EBADMSG (non-fatal, as for other violations)."""
    reader = Reader()
    reader.hdl.push_read("netstring", lambda *a: pytest.fail("read a netstring"))
    reader.send(b"9" * 20)
    assert reader.events == []
    reader.send(b"9")
    assert reader.events == [error(errno.EBADMSG, False)]
    assert not reader.hdl.destroyed()
    reader.hdl.destroy()
    reader.finish()


def test_netstring_error_is_not_fatal():
    """As in Perl: on_error gets fatal=False and the handle lives on."""
    reader = Reader()
    reader.hdl.push_read("netstring", lambda *a: pytest.fail("read a netstring"))
    reader.send(b"x:")
    assert reader.events == [error(errno.EBADMSG, False)]
    assert not reader.hdl.destroyed()
    reader.hdl.rbuf.clear()  # the program may resync by dropping the garbage
    reader.hdl.unshift_read("line", reader.record("line"))
    reader.send(b"resync\n")
    assert reader.events[1:] == [("line", b"resync", b"\n")]
    reader.hdl.destroy()
    reader.finish()


# -- json and cbor -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"[" * 100000 + b"]" * 100000,     # nesting deeper than any parser allows
    b"[1" + b"0" * 5000 + b"]",        # more digits than int() takes
    b'["\xff"]',                       # not UTF-8
    b"[1,]",
])
def test_invalid_json_is_ebadmsg(data):
    assert_ebadmsg("json", data)
    assert_loop_alive()


def test_unclosed_json_hits_rbuf_max():
    reader = Hostile(rbuf_max=65536)
    reader.hdl.push_read("json", lambda *a: pytest.fail("read json"))
    chunk = b"[" + b'"x",' * 16384
    while not reader.hdl.destroyed():
        reader.send(chunk)
    assert reader.events == [error(errno.ENOSPC, True)]
    reader.finish()


@pytest.mark.parametrize("data", [
    b"\x81" * 100000 + b"\x00",              # nesting
    b"\x1c",                                 # reserved additional information
    b"\x61\xff",                             # text string that is not UTF-8
    b"\xc2\x01",                             # bignum tag on an integer
    b"\xd8\x23\x61(",                         # regex tag on a pattern re refuses
    b"\xff",                                 # break outside an indefinite item
])
def test_invalid_cbor_is_ebadmsg(data):
    assert_ebadmsg("cbor", data)
    assert_loop_alive()


def test_cbor_declaring_huge_string_waits_then_enospc():
    reader = Hostile(rbuf_max=65536)
    reader.hdl.push_read("cbor", lambda *a: pytest.fail("read cbor"))
    reader.send(b"\x5b" + (1 << 62).to_bytes(8, "big"))   # 2**62-byte string: wait
    assert reader.events == []
    while not reader.hdl.destroyed():
        reader.send(b"z" * 32768)
    assert reader.events == [error(errno.ENOSPC, True)]
    reader.finish()


# -- storable: pickles that try to do more than describe data -------------------------

class _Call:
    """Pickles as ``func(*args)``: what a hostile peer would send."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _storable(payload):
    return encode(lambda w: w.push_write("storable", payload))


def _ber_framed(raw):
    return encode(lambda w: w.push_write("packstring", "w", raw))


def _hostile_pickles(marker):
    command = "touch " + marker
    return {
        "os.system": _storable(_Call(os.system, command)),
        "subprocess.call": _storable(_Call(subprocess.call, ["touch", marker])),
        "builtins.eval": _storable(_Call(eval, "__import__('os').system(%r)" % command)),
        "builtins.exec": _storable(_Call(exec, "open(%r, 'w')" % marker)),
        "builtins.getattr": _storable(_Call(getattr, 1, "real")),
        "protocol 0 GLOBAL": _ber_framed(b"cposix\nsystem\n(S'%s'\ntR." % command.encode()),
        "protocol 0 INST": _ber_framed(b"(S'%s'\niposix\nsystem\n." % command.encode()),
        "open() a file": _storable(_Call(open, marker, "w")),
    }


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    for name, frame in _hostile_pickles(marker).items():
        reader = Reader()
        reader.hdl.push_read("storable", lambda *a: pytest.fail("unpickled " + name))
        reader.hdl.push_read("storable", reader.record("read"))  # the stream goes on
        reader.send(frame + _storable({"after": [1, 2]}))
        assert reader.events == [error(errno.EBADMSG, False), ("read", {"after": [1, 2]})], name
        assert not os.path.exists(marker), name
        reader.hdl.destroy()
        reader.finish()
    assert_loop_alive()


@pytest.mark.parametrize("payload", [  # sizes a test box survives if this regresses
    _Call(set, range(2 * 10 ** 6)),
    _Call(frozenset, range(2 * 10 ** 6)),
    _Call(bytearray, 1 << 28),
])
def test_small_pickle_cannot_allocate_much(payload):
    frame = _storable(payload)
    assert len(frame) < 100
    reader = Reader()
    reader.hdl.push_read("storable", lambda *a: pytest.fail("built the object"))
    started = time.monotonic()
    reader.send(frame)
    assert reader.events == [error(errno.EBADMSG, False)]
    assert time.monotonic() - started < 1
    reader.hdl.destroy()
    reader.finish()


def test_plain_data_still_round_trips_through_storable():
    values = [bytearray(b"ab"), {1, 2}, frozenset({3}), (1, "x"), b"\0", None, 2 ** 100]
    reader = Reader()
    chain(reader, "storable", (), lambda value: value)
    reader.send(encode(lambda w: [w.push_write("storable", v) for v in values]))
    assert reader.events == [("read", v) for v in values]
    assert [type(e[1]) for e in reader.events] == [type(v) for v in values]
    reader.hdl.destroy()
    reader.finish()


def test_truncated_pickle_is_ebadmsg():
    raw = pickle.dumps({"k": "v" * 100}, protocol=4)
    assert_ebadmsg("storable", _ber_framed(raw[:len(raw) // 2]))


def _plain_values():
    import collections
    import datetime
    import decimal
    return [set([1, "a"]), frozenset([2]), b"ab", b"", bytearray(b"x"), {"k": (1, [2.5])},
            None, True, 2 ** 100, "text", complex(1, 2), decimal.Decimal("1.25"),
            collections.OrderedDict(a=1), datetime.date(2024, 2, 29),
            datetime.datetime(2024, 2, 29, 1, 2, 3, 4, datetime.timezone.utc),
            datetime.timedelta(days=3), frozenset([frozenset([1])])]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_of_every_protocol_is_read(protocol):
    values = _plain_values()
    reader = Hostile()
    chain(reader, "storable", (), lambda value: value)
    reader.send(b"".join(_ber_framed(pickle.dumps(v, protocol=protocol)) for v in values))
    assert reader.events == [("read", v) for v in values]
    assert [type(e[1]) for e in reader.events] == [type(v) for v in values]
    reader.finish()


def _nested_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _deep_through_memo(depth):
    """Protocol 0: a ``depth``-deep list built with a stack never deeper than 3."""
    ops = [b"(lp0\n0"]
    for i in range(1, depth + 1):
        ops.append(b"(lp%d\ng%d\na0" % (i, i - 1))
    return b"".join(ops) + b"g%d\n." % depth


def _deep_linked_later(depth):
    """Protocol 2: ``depth`` empty lists memoized, then each appended to the one before."""
    ops = [b"\x80\x02"] + [b"]q%s0" % bytes([i % 256]) if i < 256 else
                          b"]r%s0" % i.to_bytes(4, "little") for i in range(depth)]
    ops += [_get(i) + _get(i + 1) + b"a0" for i in range(depth - 1)]
    return b"".join(ops) + _get(0) + b"."


def _get(i):
    return b"h" + bytes([i]) if i < 256 else b"j" + i.to_bytes(4, "little")


@pytest.mark.parametrize("make,depth", [
    (lambda d: pickle.dumps(_nested_list(d), protocol=4), 401),
    (lambda d: pickle.dumps(_nested_list(d), protocol=0), 401),
    (lambda d: b"\x80\x04" + b"]" * d + b"a" * (d - 1) + b".", 10 ** 6),  # a 2 MB frame
    (_deep_through_memo, 10 ** 5),
    (lambda d: b"\x80\x04" + b"(" * d + b")" + b"t" * d + b".", 10 ** 5),  # mark-deep tuples
    (_deep_linked_later, 10 ** 5),
])
def test_nesting_beyond_the_limit_is_refused_before_building(make, depth):
    from anyevent.handle import STORABLE_MAX_DEPTH
    assert STORABLE_MAX_DEPTH == 400
    import tracemalloc
    frame = _ber_framed(make(depth))
    reader = Hostile()
    reader.hdl.push_read("storable", lambda *a: pytest.fail("built the object"))
    tracemalloc.start()
    try:
        reader.send(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reader.events == [error(errno.EBADMSG, False)]
    assert peak < 20 * len(frame) + (1 << 20)  # a 1e6-deep list of lists would be ~100 MB
    reader.finish()


def test_nesting_up_to_the_limit_is_read():
    value = _nested_list(399)
    reader = Hostile()
    chain(reader, "storable", (), lambda v: v)
    reader.send(b"".join(_ber_framed(pickle.dumps(value, protocol=p)) for p in (0, 2, 5)))
    assert [e[0] for e in reader.events] == ["read"] * 3
    reader.finish()


@pytest.mark.parametrize("raw", [
    b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00utf-7\x86R.",
    b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x10\x85R.",
    b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.",
    b"\x80\x02ccopy_reg\n_reconstructor\n.",
    b"\x80\x02a.",  # stack underflow
    b"\x80\x02]q\x00h\x00a.",  # a list in itself
    b"\x80\x02]q\x00]q\x01h\x00ah\x01a.",  # two lists in each other
])
def test_compat_names_stay_restricted(raw):
    assert_ebadmsg("storable", _ber_framed(raw))


@pytest.mark.parametrize("data", [
    b"\x81" * 401 + b"\x01",            # deeper than CBOR_MAX_DEPTH
    b"\x9f" * 100000,                   # a deep indefinite nest, refused before its end
    b"\x1c", b"\x3d", b"\x7e\x01",      # reserved additional information
    b"\x1f", b"\xdf\x01",               # no indefinite integers or tags
    b"\x82\x01\xff",                    # break inside a definite array
    b"\x5f\x01\xff",                    # not a string chunk (cbor2 refuses it)
])
def test_malformed_cbor_header_is_ebadmsg(data):
    assert_ebadmsg("cbor", data)


def test_cbor_nesting_up_to_the_limit_is_read():
    from anyevent.handle import CBOR_MAX_DEPTH
    data = b"\x81" * (CBOR_MAX_DEPTH - 1) + b"\x01"
    reader = Hostile()
    chain(reader, "cbor", (), lambda v: v)
    reader.send(data)
    assert len(reader.events) == 1 and reader.events[0][0] == "read"
    reader.finish()
