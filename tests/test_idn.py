"""anyevent.util's IDN functions: AnyEvent's t/08_idna.t ported, Perl's
AnyEvent::Util run side by side on the same names, and properties."""

import json
import socket
import subprocess
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anyevent.dns as aedns
import anyevent.socket as aesock
from anyevent.connector import Connector
from anyevent.handle import Handle
from anyevent.reactor import CondVar
from anyevent.util import (idn_nameprep, idn_to_ascii, idn_to_unicode, punycode_decode,
                           punycode_encode)
from conftest import free_port, require_tool
from fixtures_dns import (IDN_IDNA2003_ADDRESS, IDN_PERL_ADDRESS, IDN_SPELLINGS,  # noqa: F401
                          ZONE, default_resolver, dns_peers, dnsmasq, perl_dns_env)

# ---------------------------------------------------------------------------
# t/08_idna.t, test for test
# ---------------------------------------------------------------------------


def test_08_idna_t():
    assert punycode_encode("\u00f6ko") == "ko-eka"                       # ok 2
    assert punycode_encode("\u65e5\u672c") == "wgv71a"                   # ok 3
    assert punycode_decode("ko-eka") == "\u00f6ko"                       # ok 4
    assert punycode_decode("wgv71a") == "\u65e5\u672c"                   # ok 5
    assert idn_to_ascii("www.\u00f6ko.eu") == "www.xn--ko-eka.eu"        # ok 6
    assert idn_to_ascii("\u65e5\u672c1.co.jp") == "xn--1-jn6bt1b.co.jp"  # ok 7
    assert idn_to_ascii("xn--tda.com") == "xn--tda.com"                  # ok 8
    assert idn_to_ascii("xn--a-ecp.ru") == "xn--a-ecp.ru"                # ok 9
    assert idn_to_ascii("\u65e5\u672c\u8a9e\u3002\uff2a\uff30") == "xn--wgv71a119e.jp"  # ok 10


def test_perl_08_idna_t_passes_too():
    """The Perl original, run as is, so the port is checked against a passing original."""
    perl = require_tool("perl")
    out = subprocess.run([perl, "/work/shared/perl-anyevent-t/08_idna.t"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode and "Can't open perl script" in out.stderr:
        pytest.skip("AnyEvent's t/ not available")
    assert "not ok" not in out.stdout and out.stdout.count("\nok ") == 11, out.stdout


# ---------------------------------------------------------------------------
# side by side with Perl's AnyEvent::Util
# ---------------------------------------------------------------------------

# Names where UTS #46 tables of different Unicode versions agree.  Known
# differences (Perl's tables predate UTS #46 15.1; idna's follow the current
# one): U+1E9E maps to "ß" here ("ss" in Perl) and "≠", "≮", "≯" are valid.
NAMES = [
    "stra\u00dfe.de", "fa\u00df.de", "\u03c2\u03bf\u03c6\u03b9\u03b1.gr", "a\u200db.de",
    "a\u200cb.de", "www.\u00f6ko.eu", "Www.\u00d6KO.eu", "\u65e5\u672c\u8a9e\u3002\uff2a\uff30",
    "xn--strae-oqa.de", "xn--fa-hia.de", "xn--a-ecp.ru", "xn--tda.com", "XN--TDA.com", "a..b",
    ".\u00f6ko", "..\u00f6ko.", "\u00f6ko.", "ab--c.de", "xn--zz.de", "\u00f6-.de", "-\u00f6.de",
    "\u0301a.de", "a_b.de", "\u00e4 b.de", "A.B.C", "a\u00adb.de", "i\u0307.de", "\u00df", "-a.de",
    "", ".", "\u00fc.", "a.xn--ko-eka", "\u05d01.il", "\u00fc\U0001f600.de", "\u2163.example",
    "\uff57\uff57\uff57.example", "\u00c5ngstr\u00f6m.se", "\u0130stanbul.tr", "x\u3002y\uff0ez",
    "caf\u00e9.fr", "cafe\u0301.fr", "xn--caf-dma.fr", "\u0440\u0444.ru", "xn--p1ai",
    "\u00e4\u00f6\u00fc-.de", "\u00e4b--c.de", "xn--ab--c.de", "\ufb01le.de", "\u2488.ru",
]

PERL_IDN = r"""
use utf8; use AnyEvent::Util; use JSON::XS;
binmode STDIN, ":utf8";
my @out;
for my $n (@{ JSON::XS->new->decode(join "", <STDIN>) }) {
   push @out, [
      AnyEvent::Util::idn_to_ascii($n),
      AnyEvent::Util::idn_to_unicode($n),
      scalar eval { AnyEvent::Util::idn_nameprep($n) },
   ];
}
print JSON::XS->new->ascii->encode(\@out);
"""


def test_same_as_perl():
    perl = require_tool("perl")
    out = subprocess.run([perl, "-e", PERL_IDN], input=json.dumps(NAMES), capture_output=True,
                         text=True, timeout=30, check=True)
    theirs = json.loads(out.stdout)

    def nameprep(n):
        try:
            return idn_nameprep(n)
        except ValueError:
            return None
    ours = [[idn_to_ascii(n), idn_to_unicode(n), nameprep(n)] for n in NAMES]
    assert list(zip(NAMES, ours)) == list(zip(NAMES, theirs))


PERL_PUNY = r"""
use AnyEvent::Util; use JSON::XS;
binmode STDIN, ":utf8";
print JSON::XS->new->ascii->encode([
   map { my $e = AnyEvent::Util::punycode_encode($_); [$e, /[^\x00-\x7f]/ ? AnyEvent::Util::punycode_decode($e) : undef] }
   @{ JSON::XS->new->decode(join "", <STDIN>) }
]);
"""


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(st.characters(min_codepoint=1, max_codepoint=0x2ffff,
                                      blacklist_categories=("Cs", "Cc")), max_size=12),
                min_size=1, max_size=40))
def test_punycode_same_as_perl(strings):
    perl = require_tool("perl")
    out = subprocess.run([perl, "-e", PERL_PUNY], input=json.dumps(strings), capture_output=True,
                         text=True, timeout=30, check=True)
    theirs = json.loads(out.stdout)
    ours = [[punycode_encode(s), punycode_decode(punycode_encode(s)) if not s.isascii() else
             theirs[i][1]] for i, s in enumerate(strings)]
    # an all-ASCII string "encodes" to itself, which is not punycode: not decoded
    # (control characters are left out: Perl's /^(.*?)-/ does not cross a newline)
    assert [o[0] for o in ours] == [t[0] for t in theirs]
    assert [o[1] for o, s in zip(ours, strings) if not s.isascii()] == \
        [t[1] for t, s in zip(theirs, strings) if not s.isascii()]


# ---------------------------------------------------------------------------
# errors and properties
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["KO-EKA", "ko-ek\u00e4", "\u00e4-eka", "!!", "zz"])
def test_punycode_decode_rejects_malformed(bad):
    with pytest.raises(ValueError, match="malformed punycode"):
        punycode_decode(bad)


@pytest.mark.parametrize("name, message", [
    ("a_b.\u00e4", r"disallowed characters \(U\+005F\)"),
    ("ab--c.de", "hyphens in 3rd/4th position"),
    ("\u00f6-.de", "invalid hyphens"),
    ("xn--zz.de", "malformed punycode"),
    ("xn--cafe-yvc.fr", "not in NFC"),  # "cafe" + U+0301, a decomposed label
])
def test_nameprep_errors(name, message):
    with pytest.raises(ValueError, match=message):
        idn_nameprep(name)
    assert idn_to_ascii(name) == name  # never raises, returns its argument
    assert idn_to_unicode(name) == name


labels = st.text(st.sampled_from("abz09-\u00e4\u00f6\u00fc\u00df\u03c2\u03c3\u65e5\u672c\u0436"),
                 min_size=1, max_size=10).filter(
    lambda l: not l.startswith("-") and not l.endswith("-") and l[2:4] != "--")


@given(st.lists(labels, min_size=1, max_size=4))
def test_to_ascii_is_idempotent_and_inverted_by_to_unicode(parts):
    name = ".".join(parts)
    ascii_name = idn_to_ascii(name)
    assert ascii_name.isascii()
    assert idn_to_ascii(ascii_name) == ascii_name
    assert idn_to_unicode(ascii_name) == idn_nameprep(name)


# ---------------------------------------------------------------------------
# host names resolved and connected to as Perl does, against a real dnsmasq
# that gives Perl's spelling (UTS #46) and IDNA 2003's different addresses
# ---------------------------------------------------------------------------

IDN_HOSTS = ["%s.%s" % (label, ZONE) for label in IDN_SPELLINGS]


def collect(start):
    cv = CondVar()
    start(lambda *args: cv.send(list(args)))
    return cv.recv()


def test_the_spellings_really_differ():
    """Python's "idna" codec (IDNA 2003) spells every name differently, so
    the addresses below tell which spelling was asked."""
    for label, (perl, idna2003) in IDN_SPELLINGS.items():
        assert idn_to_ascii(label) == perl != label.encode("idna").decode()
        assert label.encode("idna").decode() == idna2003


@pytest.mark.parametrize("host", IDN_HOSTS)
def test_dns_asks_perls_spelling(default_resolver, host):
    assert collect(lambda cb: aedns.a(host, cb)) == [IDN_PERL_ADDRESS]
    rrs = collect(lambda cb: default_resolver.resolve(host, "a", cb))
    assert [rr[0] for rr in rrs] == [idn_to_ascii(host)]
    # the Unicode name with a final dot, and the full-width dot, too
    assert collect(lambda cb: aedns.a(host + ".", cb)) == [IDN_PERL_ADDRESS]
    assert collect(lambda cb: aedns.a(host.replace(".", "\u3002", 1), cb)) == [IDN_PERL_ADDRESS]


@pytest.mark.parametrize("host", IDN_HOSTS)
def test_resolve_sockaddr_gives_perls_address(default_resolver, host):
    targets = collect(lambda cb: aesock.resolve_sockaddr(host, 80, "tcp", 0, None, cb))
    assert [t[3] for t in targets] == [(IDN_PERL_ADDRESS, 80)]


@pytest.fixture
def two_listeners():
    """Listeners on 127.0.0.1:port (Perl's spelling) and 127.0.0.2:port (IDNA 2003's)."""
    port = free_port()
    socks = {}
    for ip in (IDN_PERL_ADDRESS, IDN_IDNA2003_ADDRESS):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(8)
        s.setblocking(False)
        socks[ip] = s
    yield port, socks
    for s in socks.values():
        s.close()


def accepted_on(socks):
    """Which listener has a connection waiting (accepts and closes it)."""
    got = []
    for ip, s in socks.items():
        try:
            conn, _ = s.accept()
        except BlockingIOError:
            continue
        conn.close()
        got.append(ip)
    return got


@pytest.mark.parametrize("host", IDN_HOSTS)
def test_tcp_connect_reaches_perls_host(default_resolver, two_listeners, host):
    port, socks = two_listeners
    guards = []
    got = collect(lambda cb: guards.append(aesock.tcp_connect(host, port, cb)))
    assert got and got[1] == IDN_PERL_ADDRESS
    got[0].close()
    assert accepted_on(socks) == [IDN_PERL_ADDRESS]


def test_handle_connect_reaches_perls_host(default_resolver, two_listeners):
    port, socks = two_listeners
    cv = CondVar()
    hdl = Handle(connect=(IDN_HOSTS[0], port), on_connect=lambda h, host, p, retry: cv.send(host),
                 on_connect_error=lambda h, m: cv.send("error: %s" % m),
                 on_error=lambda h, f, m: None)
    assert cv.recv() == IDN_PERL_ADDRESS
    hdl.destroy()
    assert accepted_on(socks) == [IDN_PERL_ADDRESS]


def test_connector_reaches_perls_host(default_resolver, two_listeners):
    port, socks = two_listeners
    cv = CondVar()
    conn = Connector(host=IDN_HOSTS[1], service=port, family=4,  # noqa: F841 (kept alive)
                     on_connected=lambda sock: cv.send(sock),
                     on_connect_error=lambda syscall, err: cv.send(err),
                     on_resolve_error=lambda msg: cv.send(msg))
    sock = cv.recv()
    assert isinstance(sock, socket.socket) and sock.getpeername() == (IDN_PERL_ADDRESS, port)
    sock.close()
    assert accepted_on(socks) == [IDN_PERL_ADDRESS]


PERL_RESOLVE = textwrap.dedent(r"""
    use utf8; use AnyEvent; use AnyEvent::Socket; use JSON::XS;
    binmode STDIN, ":utf8";
    my @out;
    for my $host (@{ JSON::XS->new->decode(join "", <STDIN>) }) {
        my $cv = AE::cv;
        AnyEvent::Socket::resolve_sockaddr $host, 80, "tcp", 0, undef, sub {
            $cv->send([map { my ($p, $h) = AnyEvent::Socket::unpack_sockaddr $_->[3];
                             AnyEvent::Socket::format_address $h } @_]);
        };
        push @out, $cv->recv;
    }
    print JSON::XS->new->encode(\@out);
""")


def test_same_addresses_as_perl(dnsmasq, default_resolver, tmp_path):
    """Perl's resolve_sockaddr and ours, same dnsmasq, same Unicode names."""
    perl, env = perl_dns_env(dnsmasq, tmp_path)
    theirs = json.loads(subprocess.run([perl, "-e", PERL_RESOLVE], input=json.dumps(IDN_HOSTS),
                                       env=env, capture_output=True, text=True, check=True,
                                       timeout=30).stdout)
    ours = [[t[3][0] for t in collect(lambda cb: aesock.resolve_sockaddr(h, 80, "tcp", 0, None, cb))]
            for h in IDN_HOSTS]
    assert ours == theirs == [[IDN_PERL_ADDRESS]] * len(IDN_HOSTS)
