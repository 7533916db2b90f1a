"""anyevent.dns against a real dnsmasq, against Perl's AnyEvent::DNS, and against a
scriptable responder for the faults a real server will not produce on demand."""

import json
import socket
import subprocess
import textwrap
import time
from collections import Counter

import dns.flags
import dns.message
import dns.rcode
import pytest

import anyevent.dns as aedns
from anyevent.reactor import CondVar, loop
from fixtures_dns import (ZONE, answer, default_resolver, dns_peers, dnsmasq,  # noqa: F401
                          perl_dns_env, responders)


def collect(start):
    """Run ``start(cb)`` and return the callback's arguments as a list."""
    cv = CondVar()
    start(lambda *args: cv.send(list(args)))
    return cv.recv()


# ---------------------------------------------------------------------------
# a real server
# ---------------------------------------------------------------------------

def test_record_types(default_resolver):
    res = default_resolver
    assert collect(lambda cb: res.resolve("www." + ZONE, "a", cb)) == [
        ("www." + ZONE, "a", "in", 0, "192.0.2.10")]
    assert collect(lambda cb: aedns.a("www." + ZONE, cb)) == ["192.0.2.10"]
    assert collect(lambda cb: aedns.aaaa("www." + ZONE, cb)) == ["2001:db8::10"]
    assert sorted(collect(lambda cb: aedns.a("multi." + ZONE, cb))) == ["192.0.2.31", "192.0.2.32"]
    assert collect(lambda cb: aedns.mx(ZONE, cb)) == ["mx1." + ZONE, "mx2." + ZONE]
    assert collect(lambda cb: aedns.txt("txt." + ZONE, cb)) == ["hello world"]
    assert collect(lambda cb: res.resolve("txt." + ZONE, "txt", cb))[0][4:] == (
        "hello world", "second string")
    assert collect(lambda cb: aedns.ptr("10.2.0.192.in-addr.arpa", cb)) == ["www." + ZONE]
    assert collect(lambda cb: aedns.reverse_lookup("192.0.2.10", cb)) == ["www." + ZONE]
    assert collect(lambda cb: aedns.reverse_lookup("::ffff:192.0.2.10", cb)) == ["www." + ZONE]
    assert collect(lambda cb: aedns.reverse_verify("192.0.2.10", cb)) == ["www." + ZONE]
    assert collect(lambda cb: aedns.reverse_lookup("not an address", cb)) == []
    assert collect(lambda cb: aedns.a("nothing." + ZONE, cb)) == []
    assert {rr[1] for rr in collect(lambda cb: aedns.any("www." + ZONE, cb))} == {"a", "aaaa"}


def test_cname_is_followed(default_resolver):
    assert collect(lambda cb: aedns.a("alias." + ZONE, cb)) == ["192.0.2.10"]
    rrs = collect(lambda cb: default_resolver.resolve("alias." + ZONE, "a", cb, accept=["cname"]))
    assert [rr[1:] for rr in rrs] == [("cname", "in", 0, "www." + ZONE)]


def test_srv_priority_order(default_resolver):
    assert collect(lambda cb: aedns.srv("ldap", "tcp", ZONE, cb)) == [
        (10, 5, 389, "mx1." + ZONE), (20, 5, 389, "mx2." + ZONE)]


def test_srv_weights(default_resolver):
    """RFC 2782: within a priority, weight 90 comes first about 90% of the time."""
    firsts = Counter()
    cv = CondVar()
    n = 300
    cv.begin()
    for _ in range(n):  # all at once: queued behind max_outstanding
        cv.begin()
        aedns.srv("weighted", "tcp", ZONE, lambda *rrs: (firsts.update([rrs[0][3]]), cv.end()))
    cv.end()
    cv.recv()
    assert sum(firsts.values()) == n
    assert 0.8 * n < firsts["heavy." + ZONE] < 0.97 * n


def test_search_and_ndots(dnsmasq):
    res = aedns.Resolver(server=[dnsmasq.server], search=[ZONE, "other.example"], ndots=1)
    assert collect(lambda cb: res.resolve("www", "a", cb))[0][4] == "192.0.2.10"
    assert collect(lambda cb: res.resolve("www.", "a", cb)) == []  # a final dot: no search
    assert collect(lambda cb: res.resolve("www", "a", cb, search=[])) == []
    res2 = aedns.Resolver(server=[dnsmasq.server], search=["test"], ndots=3)
    # fewer than ndots dots: "www.test.example.test" first, then the name as is
    assert collect(lambda cb: res2.resolve("www." + ZONE, "a", cb))[0][0] == "www." + ZONE


def test_parse_resolv_conf():
    res = aedns.Resolver()
    res.parse_resolv_conf(textwrap.dedent("""\
        # comment
        nameserver 192.0.2.53
        nameserver 2001:db8::53
        search a.example b.example
        options ndots:3 timeout:1 attempts:2 edns0
        """))
    assert [s[1][:2] for s in res.server] == [("192.0.2.53", 53), ("2001:db8::53", 53)]
    assert (res.search, res.ndots, res.edns0) == (["a.example", "b.example"], 3, True)
    assert [t for _, t in res._retry] == [1, 1, 1, 1]
    res.parse_resolv_conf("domain d.example\nnameserver 192.0.2.1\n")
    assert res.search == ["d.example"] and [t for _, t in res._retry] == [1, 1]


def test_env_resolv_conf(dnsmasq, tmp_path, monkeypatch):
    if dnsmasq.port != 53:
        pytest.skip("resolv.conf cannot name a port: needs root for dnsmasq on port 53")
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver %s\n" % dnsmasq.ip)
    monkeypatch.setenv("ANYEVENT_RESOLV_CONF", str(conf))
    monkeypatch.setenv("ANYEVENT_MAX_OUTSTANDING_DNS", "3")
    monkeypatch.setattr(aedns, "RESOLVER", None)
    assert collect(lambda cb: aedns.a("www." + ZONE, cb)) == ["192.0.2.10"]
    assert aedns.RESOLVER._max == 3


PERL_QUERIES = textwrap.dedent(r"""
    use AnyEvent; use AnyEvent::DNS; use JSON::XS;
    my @out;
    for my $q (@ARGV) {
        my ($type, $name) = split / /, $q;
        my $cv = AE::cv;
        AnyEvent::DNS::resolver->resolve($name, $type, sub { $cv->send([@_]) });
        push @out, $cv->recv;
    }
    print JSON::XS->new->canonical->encode(\@out);
""")

QUERIES = ["a www.%s" % ZONE, "aaaa www.%s" % ZONE, "mx %s" % ZONE, "txt txt.%s" % ZONE,
           "srv _ldap._tcp.%s" % ZONE, "ptr 10.2.0.192.in-addr.arpa", "a alias.%s" % ZONE,
           "a nothing.%s" % ZONE, "* www.%s" % ZONE, "a multi.%s" % ZONE]


def test_same_answers_as_perl(dnsmasq, default_resolver, tmp_path):
    """The differential test: Perl's AnyEvent::DNS and ours, same server, same queries."""
    perl, env = perl_dns_env(dnsmasq, tmp_path)
    perl_out = json.loads(subprocess.run([perl, "-e", PERL_QUERIES, "--"] + QUERIES, env=env,
                                         capture_output=True, check=True, timeout=20).stdout)
    ours = []
    for q in QUERIES:
        qtype, name = q.split(" ")
        ours.append(sorted([list(rr) for rr in collect(
            lambda cb: default_resolver.resolve(name, qtype, cb))]))
    assert ours == [sorted(rrs) for rrs in perl_out]


# ---------------------------------------------------------------------------
# faults, with a scriptable responder
# ---------------------------------------------------------------------------

def lookup(res, name="host.test"):
    return collect(lambda cb: res.resolve(name + ".", "a", lambda *rrs: cb(*[rr[4] for rr in rrs])))


def test_timeout_then_next_server(responders):
    silent = responders(lambda q, peer: None)
    good = responders(lambda q, peer: answer(q, "192.0.2.1"))
    res = aedns.Resolver(server=[silent.server, good.server], timeout=[0.2, 1])
    t0 = time.monotonic()
    assert lookup(res) == ["192.0.2.1"]
    assert 0.15 < time.monotonic() - t0 < 1
    assert (silent.queries, good.queries) == (1, 1)


def test_servfail_moves_on_at_once(responders):
    bad = responders(lambda q, peer: answer(q, rcode=dns.rcode.SERVFAIL))
    good = responders(lambda q, peer: answer(q, "192.0.2.2"))
    res = aedns.Resolver(server=[bad.server, good.server], timeout=[5])
    t0 = time.monotonic()
    assert lookup(res) == ["192.0.2.2"]
    assert time.monotonic() - t0 < 1


def test_all_servers_failing_gives_nothing(responders):
    bad = responders(lambda q, peer: answer(q, rcode=dns.rcode.SERVFAIL))
    silent = responders(lambda q, peer: None)
    res = aedns.Resolver(server=[bad.server, silent.server], timeout=[0.05, 0.05])
    assert lookup(res) == []
    assert (bad.queries, silent.queries) == (2, 2)
    got = collect(lambda cb: res.request(dns.message.make_query("x.test.", "A"), cb))
    assert got[0].rcode() == dns.rcode.SERVFAIL  # request() hands over the last bad answer


def test_port_unreachable_moves_on_at_once(responders):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_server = "127.0.0.1:%d" % closed.getsockname()[1]
    closed.close()
    good = responders(lambda q, peer: answer(q, "192.0.2.3"))
    res = aedns.Resolver(server=[closed_server, good.server], timeout=[5])
    t0 = time.monotonic()
    assert lookup(res) == ["192.0.2.3"]
    assert time.monotonic() - t0 < 1


def test_truncated_answer_is_asked_again_over_tcp(responders):
    many = ["10.0.%d.%d" % (i // 250, i % 250) for i in range(300)]  # > 4096 bytes
    r = responders(lambda q, peer: answer(q, truncated=True), lambda q: answer(q, *many))
    res = aedns.Resolver(server=[r.server], timeout=[1])
    assert lookup(res) == many
    assert (r.queries, r.tcp_queries) == (1, 1)


def test_wrong_id_and_wrong_source_are_ignored(responders):
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))

    def udp(q, peer):
        forged = answer(q, "6.6.6.6")
        forged.id = (q.id + 1) % 65536
        r.send(forged, peer)                                 # wrong id
        r.send(answer(q, "6.6.6.7"), peer, sock=stranger)    # wrong source port
        other = answer(q, "6.6.6.8")
        other.question[0] = dns.rrset.RRset(dns.name.from_text("other.test."), 1, 1)
        r.send(other, peer)                                  # wrong question
        return answer(q, "192.0.2.4")
    r = responders(udp)
    res = aedns.Resolver(server=[r.server], timeout=[1])
    assert lookup(res) == ["192.0.2.4"]
    stranger.close()


def test_edns0_advertised_only_when_enabled(responders):
    seen = []
    r = responders(lambda q, peer: (seen.append((q.edns, q.payload)), answer(q, "192.0.2.5"))[1])
    for edns0 in (False, True):
        assert lookup(aedns.Resolver(server=[r.server], edns0=edns0)) == ["192.0.2.5"]
    assert seen == [(-1, seen[0][1]), (0, aedns.MAX_PKT)]


def test_random_ids_and_source_ports(responders):
    seen = []
    r = responders(lambda q, peer: (seen.append((q.id, peer[1])), answer(q, "192.0.2.6"))[1])
    res = aedns.Resolver(server=[r.server])
    for i in range(20):
        assert lookup(res, "h%d.test" % i) == ["192.0.2.6"]
    assert len({i for i, _ in seen}) >= 18 and len({p for _, p in seen}) >= 18


def test_thousand_queries_with_max_outstanding_10(responders):
    """At most 10 queries ever wait at the server; all 1000 are answered."""
    pending = []
    peak = [0]

    def udp(q, peer):
        pending.append((q, peer))
        peak[0] = max(peak[0], len(pending))

    waiting = [0]

    def flush():
        # answer once all ten are in, or when no more came for a tick (the
        # last few): on the asyncio models a tick may fall between arrivals
        if len(pending) < 10 and len(pending) != waiting[0]:
            waiting[0] = len(pending)
            return
        waiting[0] = 0
        while pending:
            q, peer = pending.pop()
            r.send(answer(q, "192.0.2.7"), peer)
    r = responders(udp)
    ticker = loop.timer(0.001, 0.001, flush)
    res = aedns.Resolver(server=[r.server], timeout=[2], max_outstanding=10)
    cv = CondVar()
    answers = []
    cv.begin()
    for i in range(1000):
        cv.begin()
        res.resolve("n%d.test." % i, "a", lambda *rrs: (answers.append(rrs), cv.end()))
    cv.end()
    cv.recv()
    del ticker
    assert sum(1 for rrs in answers if not rrs) == 0
    assert len(answers) == 1000 and {rr[4] for rrs in answers for rr in rrs} == {"192.0.2.7"}
    assert peak[0] == 10
    assert r.queries == 1000


def test_numeric_qtype_and_accept(default_resolver):
    assert collect(lambda cb: default_resolver.resolve("www." + ZONE, 1, cb))[0][1:] == (
        "a", "in", 0, "192.0.2.10")
    rrs = collect(lambda cb: default_resolver.resolve("www." + ZONE, "*", cb, accept=[28]))
    assert [rr[4] for rr in rrs] == ["2001:db8::10"]
