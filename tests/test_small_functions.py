"""The small functions of issue 10: AnyEvent::Socket's getprotobyname,
parse_ip/format_ip, sockaddr_family; AnyEvent::Util's dotted_quad and
inet_aton; AnyEvent::DNS's resolver fields (timeout, max_outstanding,
server, search, ndots), PTR names, SRV order and debug log.  Checked against
Perl's AnyEvent where it has the function, against real servers otherwise."""

import json
import logging
import socket
import subprocess
import time

import dns.rdtypes.util
import pytest

import anyevent.dns as aedns
import anyevent.socket as aesock
import anyevent.util as aeutil
from anyevent.reactor import CondVar, loop
from conftest import require_tool
from fixtures_dns import (ZONE, answer, default_resolver, dns_peers, dnsmasq,  # noqa: F401
                          responders)


def collect(start):
    cv = CondVar()
    start(lambda *args: cv.send(list(args)))
    return cv.recv()


def sleep_on_loop(seconds):
    cv = CondVar()
    w = loop.timer(seconds, 0, cv.send)  # noqa: F841 (kept alive)
    cv.recv()


def perl(script, data):
    out = subprocess.run([require_tool("perl"), "-e", script], input=json.dumps(data),
                         capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


# ---------------------------------------------------------------------------
# AnyEvent::Socket and AnyEvent::Util, side by side with Perl
# ---------------------------------------------------------------------------

PROTOCOLS = ["tcp", "TCP", "udp", "Udp", "icmp", "ipv6-icmp", "sctp", "gre", "ip", "nosuch", ""]


def test_getprotobyname_same_as_perl():
    theirs = perl(r"""
        use AnyEvent::Socket; use JSON::XS;
        print encode_json [map { my @r = AnyEvent::Socket::getprotobyname($_); @r ? \@r : undef }
                           @{ decode_json join "", <STDIN> }];
    """, PROTOCOLS)
    ours = [list(r) if r else None for r in map(aesock.getprotobyname, PROTOCOLS)]
    assert ours == theirs
    assert aesock.getprotobyname("TCP") == ("tcp", "TCP", socket.IPPROTO_TCP)
    assert aesock.getprotobyname("nosuch") is None


def test_resolve_sockaddr_takes_the_protocol_in_any_case():
    targets = collect(lambda cb: aesock.resolve_sockaddr("127.0.0.1", 80, "TCP", 0, None, cb))
    assert targets == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.1", 80))]
    with pytest.raises(ValueError, match="protocol unknown"):
        aesock.resolve_sockaddr("127.0.0.1", 80, "nosuch", 0, None, lambda *t: None)


ADDRESSES = ["127.0.0.1", "10.1", "0x7f.1", "::1", "::ffff:192.0.2.1", "2001:db8::1:0:0:1",
             "::192.0.2.1", "unix/", "1.2.3.256", "::1::", "www.example", ""]


def test_parse_ip_format_ip_are_the_old_names_and_agree_with_perl():
    assert aesock.parse_ip is aesock.parse_address and aesock.format_ip is aesock.format_address
    # Perl 7.17 exports parse_ip/format_ip without defining them: compare with
    # what they were aliases of
    theirs = perl(r"""
        use AnyEvent::Socket; use JSON::XS;
        print encode_json [map { my $n = AnyEvent::Socket::parse_address($_);
                                 defined $n ? [unpack("H*", $n), AnyEvent::Socket::format_address($n)]
                                            : undef } @{ decode_json join "", <STDIN> }];
    """, ADDRESSES)
    ours = []
    for text in ADDRESSES:
        ipn = aesock.parse_ip(text)
        ours.append(None if ipn is None else [ipn.hex(), aesock.format_ip(ipn)])
    assert ours == theirs


def test_sockaddr_family():
    for ip, af in [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]:
        assert aesock.sockaddr_family(aesock.pack_sockaddr(80, aesock.parse_address(ip))) == af
    assert aesock.sockaddr_family(aesock.pack_sockaddr("/tmp/s", aesock.UNIX_TOKEN)) == socket.AF_UNIX
    with socket.socket() as s:  # what the socket module itself hands out
        s.bind(("127.0.0.1", 0))
        assert aesock.sockaddr_family(s.getsockname()) == socket.AF_INET
    with pytest.raises(ValueError):
        aesock.sockaddr_family((1, 2, 3))
    with pytest.raises(ValueError):
        aesock.sockaddr_family(bytearray(b"\x02"))


def test_sockaddr_family_of_raw_sockaddrs_from_perl():
    """Raw C sockaddrs, as Perl's pack_sockaddr builds them."""
    theirs = perl(r"""
        use AnyEvent::Socket; use JSON::XS;
        print encode_json [map { my $sa = AnyEvent::Socket::pack_sockaddr(
                                     $_->[0], AnyEvent::Socket::parse_address($_->[1]));
                                 [unpack("H*", $sa), AnyEvent::Socket::sockaddr_family($sa)] }
                           @{ decode_json join "", <STDIN> }];
    """, [[80, "127.0.0.1"], [443, "2001:db8::1"], ["/tmp/sock", "unix/"]])
    for raw_hex, family in theirs:
        assert aesock.sockaddr_family(bytearray.fromhex(raw_hex)) == family
        assert aesock.sockaddr_family(memoryview(bytes.fromhex(raw_hex))) == family
    assert [f for _, f in theirs] == [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX]


QUADS = ["1.2.3.4", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "0.0.0.0",
         "10.1", "0x7f.0.0.1", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "249.250.199.100", ""]


def test_dotted_quad_same_as_perl():
    theirs = perl(r"""
        use AnyEvent::Util; use JSON::XS;
        print encode_json [map { AnyEvent::Util::dotted_quad($_) ? JSON::XS::true : JSON::XS::false }
                           @{ decode_json join "", <STDIN> }];
    """, QUADS)
    assert [aeutil.dotted_quad(q) for q in QUADS] == theirs


def test_util_inet_aton_forwards(default_resolver):
    assert collect(lambda cb: aeutil.inet_aton("www." + ZONE, cb)) == [
        bytes([192, 0, 2, 10]), socket.inet_pton(socket.AF_INET6, "2001:db8::10")]
    assert collect(lambda cb: aeutil.inet_aton("localhost", cb)) == [
        bytes([127, 0, 0, 1]), b"\0" * 15 + b"\1"]
    assert collect(lambda cb: aeutil.inet_aton("192.0.2.1", cb)) == [bytes([192, 0, 2, 1])]


# ---------------------------------------------------------------------------
# AnyEvent::DNS: the resolver's hash fields take effect (or raise)
# ---------------------------------------------------------------------------

def lookup(res, name="host.test."):
    return collect(lambda cb: res.resolve(name, "a", lambda *rrs: cb(*[rr[4] for rr in rrs])))


def test_resolver_timeout_field_takes_effect(responders, monkeypatch):
    """``resolver().timeout = [0.5]``: one try of 0.5 s, not 2 + 5 + 5 s."""
    silent = responders(lambda q, peer: None)
    monkeypatch.setattr(aedns, "RESOLVER", aedns.Resolver(server=[silent.server]))
    assert aedns.resolver().timeout == (2, 5, 5)
    aedns.resolver().timeout = [0.5]
    assert aedns.resolver().timeout == (0.5,)
    t0 = time.monotonic()
    assert collect(lambda cb: aedns.a("host.test.", cb)) == []
    assert 0.45 < time.monotonic() - t0 < 1.5
    assert silent.queries == 1


def test_resolver_timeout_method_form(responders):
    silent = responders(lambda q, peer: None)
    res = aedns.Resolver(server=[silent.server])
    res.timeout(0.1, 0.2)  # Perl's $res->timeout(0.1, 0.2)
    assert res.timeout == (0.1, 0.2)
    t0 = time.monotonic()
    assert lookup(res) == []
    assert 0.25 < time.monotonic() - t0 < 1.2
    assert silent.queries == 2


@pytest.mark.parametrize("bad, exc", [(5, TypeError), ("2", TypeError), ([], ValueError),
                                      (["1"], ValueError), ([0], ValueError), ([-1], ValueError),
                                      ([True], ValueError)])
def test_resolver_timeout_refuses_nonsense(bad, exc):
    res = aedns.Resolver(server=["127.0.0.1"])
    with pytest.raises(exc):
        res.timeout = bad
    assert res.timeout == (2, 5, 5)
    with pytest.raises(AttributeError):  # Perl's push @{ $res->{timeout} } would be lost: refuse
        res.timeout.append(1)


def test_resolver_max_outstanding_field_takes_effect(responders):
    held = []
    r = responders(lambda q, peer: held.append((q, peer)))
    res = aedns.Resolver(server=[r.server], timeout=[2], max_outstanding=10)
    res.max_outstanding = 2
    assert res.max_outstanding == 2
    got = []
    for i in range(4):
        res.resolve("n%d.test." % i, "a", lambda *rrs: got.append(rrs))
    sleep_on_loop(0.1)
    assert r.queries == 2  # two on the wire, two queued
    res.max_outstanding(3)  # Perl's method form; starts a queued one at once
    sleep_on_loop(0.1)
    assert r.queries == 3
    res.max_outstanding = 10
    sleep_on_loop(0.1)
    assert r.queries == 4
    for q, peer in held:
        r.send(answer(q, "192.0.2.9"), peer)
    sleep_on_loop(0.1)
    assert len(got) == 4 and all(rrs[0][4] == "192.0.2.9" for rrs in got)
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(ValueError):
            res.max_outstanding = bad
    assert res.max_outstanding == 10


def test_resolver_server_search_ndots_fields(dnsmasq):
    res = aedns.Resolver(server=["127.0.0.1:9"], timeout=[0.2])
    res.server = [dnsmasq.server]
    assert [s[1] for s in res.server] == [(dnsmasq.ip, dnsmasq.port)]
    assert lookup(res, "www." + ZONE + ".") == ["192.0.2.10"]
    assert lookup(res, "www") == []
    res.search = [ZONE + "."]
    assert res.search == [ZONE]
    assert lookup(res, "www") == ["192.0.2.10"]
    res.search = []
    res.search.append(ZONE)  # as push @{ $res->{search} }: counts from the next resolve
    assert lookup(res, "www") == ["192.0.2.10"]
    # "www.test" has one dot: with ndots 1 it is asked as is first, with ndots 2 the search
    # list comes first ("www.test.test.example" does not exist either way)
    res.ndots = 2
    assert res.ndots == 2
    with pytest.raises(TypeError):
        res.search = ZONE  # a string would be taken letter by letter
    with pytest.raises(TypeError):
        res.server = dnsmasq.server
    for bad in (-1, "1", 1.0, None):
        with pytest.raises(ValueError):
            res.ndots = bad


def test_resolver_ndots_field_decides_the_order(responders):
    asked = []
    r = responders(lambda q, peer: (asked.append(str(q.question[0].name)), answer(q))[1])
    res = aedns.Resolver(server=[r.server], search=["s.example"])
    lookup(res, "a.b")
    res.ndots = 2
    lookup(res, "a.b")
    assert asked == ["a.b.", "a.b.s.example.", "a.b.s.example.", "a.b."]


# ---------------------------------------------------------------------------
# PTR names and SRV order from dnspython
# ---------------------------------------------------------------------------

PTR_ADDRESSES = ["192.0.2.10", "::ffff:192.0.2.10", "::192.0.2.10", "2001:db8::1",
                 "::ffff:0:1.2.3.4", "::1", "fe80::1", "0.0.0.0", "::"]


def test_ptr_names_same_as_perl():
    theirs = perl(r"""
        use AnyEvent::DNS; use AnyEvent::Socket; use JSON::XS;
        print encode_json [map { AnyEvent::DNS::_munge_ptr(AnyEvent::Socket::parse_address($_)) }
                           @{ decode_json join "", <STDIN> }];
    """, PTR_ADDRESSES)
    ours = [aedns._ptr_name(aesock.parse_address(a)) for a in PTR_ADDRESSES]
    assert ours == theirs


def test_srv_order_comes_from_dnspython(default_resolver, monkeypatch):
    calls = []
    real = dns.rdtypes.util.weighted_processing_order

    def spy(items):
        items = list(items)
        calls.append([(i._processing_priority(), i._processing_weight()) for i in items])
        return real(items)
    monkeypatch.setattr(dns.rdtypes.util, "weighted_processing_order", spy)
    got = collect(lambda cb: aedns.srv("ldap", "tcp", ZONE, cb))
    assert got == [(10, 5, 389, "mx1." + ZONE), (20, 5, 389, "mx2." + ZONE)]
    assert sorted(calls[0]) == [(10, 5), (20, 5)]


# ---------------------------------------------------------------------------
# the debug log
# ---------------------------------------------------------------------------

def test_importing_sets_no_level_on_the_dns_logger():
    assert logging.getLogger("anyevent.dns").level == logging.NOTSET


def test_debug_log_shows_queries_timeouts_and_rcodes(responders, caplog):
    silent = responders(lambda q, peer: None)
    good = responders(lambda q, peer: answer(q, "192.0.2.1"))
    res = aedns.Resolver(server=[silent.server, good.server], timeout=[0.1])
    caplog.set_level(logging.DEBUG, logger="anyevent.dns")
    assert lookup(res, "stra\u00dfe.test.") == ["192.0.2.1"]
    lines = [r.getMessage() for r in caplog.records if r.name == "anyevent.dns"]
    text = "\n".join(lines)
    assert "xn--strae-oqa.test./A to %s, try 1 of 2, timeout 0.1s" % silent.server in text
    assert "no answer from %s within 0.1s" % silent.server in text
    assert "try 2 of 2" in text
    assert "NOERROR from %s, 1 answer records" % good.server in text


def test_debug_log_gives_up_with_the_last_rcode(responders, caplog):
    from dns.rcode import SERVFAIL
    bad = responders(lambda q, peer: answer(q, rcode=SERVFAIL))
    res = aedns.Resolver(server=[bad.server], timeout=[0.5, 0.5])
    caplog.set_level(logging.DEBUG, logger="anyevent.dns")
    assert lookup(res) == []
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "anyevent.dns")
    assert text.count("SERVFAIL from %s" % bad.server) == 2
    assert "no usable answer after 2 tries, giving up (last rcode SERVFAIL)" in text


def test_debug_log_builds_nothing_when_disabled(responders, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="anyevent.dns")
    monkeypatch.setattr(aedns, "_question", lambda q: pytest.fail("formatted a disabled log"))
    good = responders(lambda q, peer: answer(q, "192.0.2.1"))
    assert lookup(aedns.Resolver(server=[good.server])) == ["192.0.2.1"]
    assert not [r for r in caplog.records if r.name == "anyevent.dns"]

