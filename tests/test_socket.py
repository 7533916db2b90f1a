"""anyevent.socket: address helpers (checked against Perl), hosts file, resolve_sockaddr,
tcp_connect / tcp_server / tcp_bind on real sockets."""

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import anyevent.socket as aesock
from anyevent.reactor import CondVar, loop
from conftest import own_loop_only, require_tool, run_until
from fixtures_dns import ZONE, default_resolver, dns_peers, dnsmasq  # noqa: F401 (fixtures)

# t/06_socket.t: (string with "_" for space, default service, host, port); None = no result
HOSTPORT_TABLE = [
    ("", None, None, None),
    ("localhost", None, None, None),
    ("localhost", "443", "localhost", "443"),
    ("localhost:444", "443", "localhost", "444"),
    ("10.0.0.1", "443", "10.0.0.1", "443"),
    ("10.1:80", "443", "10.1", "80"),
    ("::1", "443", "::1", "443"),
    ("::1:80", "443", "::1:80", "443"),
    ("[::1]:80", "443", "::1", "80"),
    ("[::1]_80", "443", "::1", "80"),
    ("[::1]_:", "443", None, None),
    ("[::1]:", "443", None, None),
    ("::1_smtp", "443", "::1", "smtp"),
    ("[www.linux.org]_80", "443", "www.linux.org", "80"),
    ("[10.1]:80", "443", "10.1", "80"),
    ("10.1_80", "443", "10.1", "80"),
]


@pytest.mark.parametrize("text,default,host,port", HOSTPORT_TABLE)
def test_parse_hostport_table(text, default, host, port):
    result = aesock.parse_hostport(text.replace("_", " "), default)
    assert result == (None if host is None else (host, port))


def test_parse_hostport_unix_and_format_round_trip():
    assert aesock.parse_hostport("/tmp/x.sock") == ("unix/", "/tmp/x.sock")
    assert aesock.parse_hostport("unix/:/tmp/x.sock") == ("unix/", "/tmp/x.sock")
    for host, port in [("::1", "80"), ("10.0.0.1", "25"), ("example.org", "https=443")]:
        assert aesock.parse_hostport(aesock.format_hostport(host, port)) == (host, port)
    assert aesock.format_hostport("::1") == "[::1]"


ADDRESSES = ["10.0.0.1", "10.1", "127.1", "0x7f.1", "0377.0.0.1", "1.2.3.256", "256.1",
             "::", "::1", "::2", "1::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "fe80::1:0:0:0",
             "::ffff:1.2.3.4", "::1.2.3.4", "::ffff:0:1.2.3.4", "2002:5345::10.0.0.1",
             "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:0:0:2::3", ":::", "abc", "unix/", "",
             "0:0:0:0:0:0:0:0", "1:0:0:0:0:0:0:0", "0:1:0:0:0:0:0:0", "a::b::c", "12345::"]

PERL_ADDRESSES = textwrap.dedent(r"""
    use AnyEvent::Socket; use JSON::XS;
    my @out;
    for my $text (@ARGV) {
        my $ipn = parse_address $text;
        my $v6 = parse_ipv6 $text;
        push @out, [defined $ipn ? unpack("H*", $ipn) : undef,
                    defined $ipn ? format_address($ipn) : undef,
                    defined $v6 ? format_ipv6($v6) : undef];
    }
    print encode_json \@out;
""")


def test_addresses_match_perl():
    perl = require_tool("perl")
    out = subprocess.run([perl, "-e", PERL_ADDRESSES, "--"] + ADDRESSES, capture_output=True,
                         check=True).stdout
    ours = []
    for text in ADDRESSES:
        ipn = aesock.parse_address(text)
        v6 = aesock.parse_ipv6(text)
        ours.append([ipn.hex() if ipn is not None else None,
                     aesock.format_address(ipn) if ipn is not None else None,
                     aesock.format_ipv6(v6) if v6 is not None else None])
    assert ours == json.loads(out)


def test_sockaddr_pack_unpack():
    v4 = aesock.parse_address("192.0.2.1")
    assert aesock.pack_sockaddr(80, v4) == ("192.0.2.1", 80)
    assert aesock.unpack_sockaddr(("192.0.2.1", 80)) == (80, v4)
    v6 = aesock.parse_address("2001:db8::1")
    assert aesock.unpack_sockaddr(aesock.pack_sockaddr(443, v6)) == (443, v6)
    assert aesock.unpack_sockaddr("/tmp/s") == ("/tmp/s", aesock.UNIX_TOKEN)
    assert aesock.format_address(aesock.parse_unix("unix/")) == "unix/"
    assert aesock.address_family(aesock.UNIX_TOKEN) == socket.AF_UNIX


def resolved(node, service, family=0):
    cv = CondVar()
    aesock.resolve_sockaddr(node, service, None, family, None, lambda *t: cv.send(list(t)))
    return cv.recv()


def _hosts_file(tmp_path, monkeypatch, text):
    path = tmp_path / "hosts"
    path.write_text(text)
    monkeypatch.setenv("ANYEVENT_HOSTS", str(path))
    return path


def test_hosts_file_like_81_hosts(tmp_path, monkeypatch, default_resolver):
    # t/81_hosts.t: a name DNS does not know comes from the hosts file, twice
    _hosts_file(tmp_path, monkeypatch, "127.9.9.9 test.invalid.tld.\n")
    for _ in range(2):
        assert resolved("test.invalid.tld.", 80) == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.9.9.9", 80))]


def test_dns_wins_over_hosts_and_hosts_reload(tmp_path, monkeypatch, default_resolver):
    path = _hosts_file(tmp_path, monkeypatch, "10.9.9.9 www.%s\n::9 extra.%s\n" % (ZONE, ZONE))
    assert [t[3] for t in resolved("www." + ZONE, 80, 4)] == [("192.0.2.10", 80)]
    assert resolved("extra." + ZONE, 81)[0][3] == ("::9", 81, 0, 0)
    path.write_text("10.8.8.8 extra.%s  # comment\n" % ZONE)
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert resolved("extra." + ZONE, 81)[0][3] == ("10.8.8.8", 81)


def test_resolve_sockaddr_forms(default_resolver, monkeypatch):
    assert [t[3] for t in resolved("localhost", "http=8080")] == [("127.0.0.1", 8080),
                                                                  ("::1", 8080, 0, 0)]
    assert resolved("unix/", "/tmp/sock") == [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "/tmp/sock")]
    assert resolved("unix/", "relative") == []
    assert [t[3] for t in resolved("www." + ZONE, 80)] == [("192.0.2.10", 80),
                                                           ("2001:db8::10", 80, 0, 0)]
    assert resolved("www." + ZONE, 80, 6)[0][3] == ("2001:db8::10", 80, 0, 0)
    monkeypatch.setitem(aesock.PROTOCOL, "ipv6", 2)  # one dict, shared by every module
    monkeypatch.setitem(aesock.PROTOCOL, "ipv4", 1)
    assert [t[0] for t in resolved("www." + ZONE, 80)] == [socket.AF_INET6, socket.AF_INET]
    monkeypatch.delitem(aesock.PROTOCOL, "ipv6")
    assert [t[0] for t in resolved("www." + ZONE, 80)] == [socket.AF_INET]
    with pytest.raises(ValueError):
        aesock.resolve_sockaddr("localhost", "no-such-service", None, 0, None, print)


def test_resolve_sockaddr_srv(default_resolver, dns_peers):
    # both names: the SRV targets in priority order, the host's own A record unused
    targets = resolved("svc." + ZONE, "echo=7")
    assert [t[3] for t in targets] == [("127.0.0.1", dns_peers.refused_port),
                                       ("127.0.0.1", dns_peers.accept_port)]
    # a numeric service skips SRV
    assert [t[3] for t in resolved("svc." + ZONE, 7)] == [("192.0.2.99", 7)]
    assert protocols_env("ipv6,ipv4") == {"ipv6": 2, "ipv4": 1}


def protocols_env(spec):
    from anyevent._sockaddr import _protocols
    return _protocols(spec)


def test_inet_aton(default_resolver):
    cv = CondVar()
    aesock.inet_aton("www." + ZONE, cv)
    assert [aesock.format_address(a) for a in cv.recv()] == ["192.0.2.10", "2001:db8::10"]
    cv = CondVar()
    aesock.inet_aton("10.1", cv)
    assert cv.recv() == bytes([10, 0, 0, 1])


# ---------------------------------------------------------------------------
# tcp_server / tcp_connect
# ---------------------------------------------------------------------------

def echo_round_trip(host, service):
    """tcp_server on host/service, tcp_connect to it, exchange a line."""
    accepted = []
    bound = []

    got = CondVar()

    def on_accept(fh, peer_host, peer_port):
        accepted.append((peer_host, peer_port))
        got.send(fh)

    server = aesock.tcp_server(host, service, on_accept,
                               lambda fh, h, p: bound.append((h, p)) or 16)
    lhost, lport = bound[0]
    cv = CondVar()
    guard = aesock.tcp_connect(lhost, lport if host != "unix/" else service, cv)
    sock, peer_host, peer_port, retry = cv.recv()
    conn = got.recv()
    for s in sock, conn:
        s.setblocking(True)
    sock.sendall(b"world")
    conn.sendall(b"hello " + conn.recv(100))
    assert sock.recv(100) == b"hello world"
    sock.close()
    conn.close()
    del guard, server
    return lhost, lport, peer_host, peer_port, accepted


def test_tcp_round_trip_ipv4():
    lhost, lport, peer_host, peer_port, accepted = echo_round_trip("127.0.0.1", 0)
    assert (lhost, peer_host, peer_port) == ("127.0.0.1", "127.0.0.1", lport)
    assert accepted[0][0] == "127.0.0.1"


def test_tcp_round_trip_ipv6():
    lhost, lport, peer_host, _, accepted = echo_round_trip("::1", 0)
    assert (lhost, peer_host, accepted[0][0]) == ("::1", "::1", "::1")


def test_tcp_round_trip_unix(tmp_path):
    path = str(tmp_path / "s.sock")
    open(path, "w").close()  # a stale file is replaced
    lhost, lport, peer_host, peer_port, accepted = echo_round_trip("unix/", path)
    assert (lhost, lport, peer_host) == ("unix/", path, "unix/")
    assert accepted[0][0] == "unix/"
    assert not os.path.exists(path)  # dropping the guard unlinked it


def test_server_guard_closes_listener():
    bound = []
    g = aesock.tcp_server("127.0.0.1", None, lambda *a: None, lambda fh, h, p: bound.append(p))
    with socket.create_connection(("127.0.0.1", bound[0]), timeout=2):
        pass
    del g
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", bound[0]), timeout=2)


def test_tcp_bind_passes_listening_socket():
    got = []
    g = aesock.tcp_bind("127.0.0.1", 0, got.append)
    port = got[0].getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        conn, _ = got[0].accept()
        conn.close()
    del g
    assert got[0].fileno() == -1


def test_tcp_connect_refused_sets_errno():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    refused = port.getsockname()[1]
    port.close()
    cv = CondVar()
    g = aesock.tcp_connect("127.0.0.1", refused, lambda *args: cv.send(args))
    assert cv.recv() == ()
    assert aesock.last_error().errno == errno.ECONNREFUSED
    assert aesock.last_error().strerror == os.strerror(errno.ECONNREFUSED)
    del g


def test_tcp_connect_unknown_name_is_enxio(default_resolver):
    cv = CondVar()
    g = aesock.tcp_connect("nothing." + ZONE, 80, lambda *args: cv.send(args))
    assert cv.recv() == ()
    assert aesock.last_error().errno == errno.ENXIO
    del g


def test_tcp_connect_srv_ends_on_second_target(default_resolver, dns_peers):
    """SRV: the first target (priority 10) refuses, the second (20) accepts."""
    cv = CondVar()
    g = aesock.tcp_connect("svc." + ZONE, "echo=7", cv)
    sock, host, port, retry = cv.recv()
    assert (host, port) == ("127.0.0.1", dns_peers.accept_port)
    conn, _ = dns_peers.listener.accept()
    conn.close()
    sock.close()
    # retry(): no target left, so the failure callback runs
    cv2 = CondVar()
    g2 = aesock.tcp_connect("svc." + ZONE, "echo=7", lambda *a: cv2.send(a))
    first = cv2.recv()
    cv2 = CondVar()
    first[3]()
    assert cv2.recv() == ()
    first[0].close()
    dns_peers.listener.accept()[0].close()
    del g, g2


def test_tcp_connect_prepare_timeout_and_callback_not_synchronous(blackhole):
    port = blackhole  # (its accept queue is full: the next SYN goes unanswered)
    prepared, result = [], []
    cv = CondVar()
    g = aesock.tcp_connect("127.0.0.1", port, lambda *a: (result.append(a), cv.send()),
                           lambda fh: prepared.append(fh) or 0.2)
    assert result == []  # never before tcp_connect returns
    t0 = time.monotonic()
    cv.recv()
    assert result == [()] and len(prepared) == 1
    assert aesock.last_error().errno == errno.ETIMEDOUT
    assert 0.15 < time.monotonic() - t0 < 2
    del g


def test_tcp_nodelay_and_congestion():
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as a:
        assert aesock.tcp_nodelay(a, True)
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert aesock.tcp_nodelay(a, False)
        assert not a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert aesock.tcp_congestion(a, "reno")
        assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
        assert not aesock.tcp_congestion(a, "no-such-algorithm")


EMFILE_SCRIPT = textwrap.dedent("""
    import errno, resource, socket, sys, time
    import anyevent.socket as aesock
    from anyevent.reactor import loop
    accepted = []
    bound = []
    backoffs = []
    g = aesock.tcp_server("127.0.0.1", 0, lambda fh, h, p: accepted.append(fh),
                          lambda fh, h, p: bound.append(p), backoffs.append)
    clients = []
    for _ in range(6):
        c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", bound[0]))
        clients.append(c)
    import os
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 1, hard))
    t = loop.timer(1.0, 0, loop.stop)
    cpu0, wall0 = time.process_time(), time.monotonic()
    loop.run()
    print(len(accepted), time.process_time() - cpu0, len(backoffs),
          {exc.errno == errno.EMFILE for exc in backoffs})
""")


@own_loop_only("uvloop opens a signal wake-up socket pair whenever its loop starts: the "
               "test's one spare fd goes there, none is left to accept", models=("uvloop",))
def test_emfile_does_not_spin_and_reports_each_pause_to_backoff_cb():
    out = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT], capture_output=True, text=True,
                         timeout=20, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    accepted, cpu, backoffs, emfile = out.stdout.split()
    assert 0 < int(accepted) < 6
    assert float(cpu) < 0.5  # a spinning accept loop burns the whole second
    # one call per ACCEPT_BACKOFF pause in the second, each with the EMFILE error
    assert 5 <= int(backoffs) <= 1.0 / aesock.ACCEPT_BACKOFF + 1
    assert emfile == "{True}"


def test_reuse_port_lets_two_listeners_share_a_port_and_both_accept():
    accepted: dict = {1: [], 2: []}
    done = CondVar()
    ports: list = []

    def accept(which):
        def cb(fh, host, port):
            accepted[which].append(fh)
            if len(accepted[1]) + len(accepted[2]) == 40:
                done.send()
        return cb
    server1 = aesock.tcp_server("127.0.0.1", 0, accept(1), lambda fh, h, p: ports.append(p),
                                reuse_port=True)
    with pytest.raises(OSError) as refused:  # without the option, the port is taken
        aesock.tcp_server("127.0.0.1", ports[0], accept(2))
    assert refused.value.errno == errno.EADDRINUSE
    server2 = aesock.tcp_server("127.0.0.1", ports[0], accept(2), reuse_port=True)
    # the kernel hashes each connection's addresses onto one of the listeners
    clients = [socket.create_connection(("127.0.0.1", ports[0])) for _ in range(40)]
    run_until(done)
    del server1, server2
    assert accepted[1] and accepted[2]
    for fh in accepted[1] + accepted[2] + clients:
        fh.close()
