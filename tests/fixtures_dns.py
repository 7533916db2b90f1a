"""DNS test peers: a real dnsmasq with generated records, and a scriptable responder.

Import the fixtures into a test module (``from fixtures_dns import dnsmasq``).
"""

import os
import random
import shutil
import socket
import subprocess
import time

import dns.message
import dns.query
import dns.rcode
import pytest

import anyevent.dns as aedns
from anyevent.reactor import loop
from conftest import free_port, require_tool

ZONE = "test.example"


class Dnsmasq:
    """A running dnsmasq: ``server`` is its ``"ip:port"``; ``ip``, ``port``."""

    def __init__(self, tmpdir, records):
        self.ip, self.port = self._address()
        self.server = "%s:%d" % (self.ip, self.port)
        conf = os.path.join(tmpdir, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "port=%d" % self.port, "listen-address=%s" % self.ip, "bind-interfaces",
                "no-resolv", "no-hosts", "no-negcache", "pid-file=",
                "local=/%s/" % ZONE, "local=/invalid/", "local=/in-addr.arpa/",
            ] + records) + "\n")
        if os.geteuid() == 0:
            extra = ["--user=root"]
        else:
            extra = []
        self.proc = subprocess.Popen([require_dnsmasq(), "--keep-in-foreground",
                                      "--conf-file=" + conf] + extra,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    @staticmethod
    def _address():
        """Port 53 on a private loopback address when we may (so Perl's
        AnyEvent::DNS, which only talks to port 53, can use it), else a high port."""
        if os.geteuid() == 0:
            return "127.53.%d.%d" % (random.randint(0, 255), random.randint(1, 254)), 53
        return "127.0.0.1", free_port(socket.SOCK_DGRAM)

    def _wait_ready(self):
        query = dns.message.make_query("ready." + ZONE, "A")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s" % self.proc.stderr.read().decode())
            try:
                dns.query.udp(query, self.ip, port=self.port, timeout=0.1)
                return
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.proc.stderr.close()


def require_dnsmasq():
    """dnsmasq's path (it lives in /usr/sbin, often not on a user's PATH)."""
    path = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if path is not None:
        return path
    return require_tool("dnsmasq")


class Peers:
    """TCP peers the SRV records point at: one listening, one refusing."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.accept_port = self.listener.getsockname()[1]
        self.refused_port = free_port()

    def close(self):
        self.listener.close()


@pytest.fixture(scope="session")
def dns_peers():
    peers = Peers()
    yield peers
    peers.close()


#: IDN test names under ZONE: Unicode label -> (Perl's spelling, IDNA 2003's).
#: Perl's spelling answers 127.0.0.1, IDNA 2003's 127.0.0.2, so a lookup or a
#: connect shows which one was asked.
IDN_SPELLINGS = {
    "stra\u00dfe": ("xn--strae-oqa", "strasse"),
    "fa\u00df": ("xn--fa-hia", "fass"),
    "\u03c2\u03bf\u03c6\u03b9\u03b1": ("xn--mxaprlv", "xn--mxaprpq"),
    "a\u200db": ("xn--ab-m1t", "ab"),
    "a\u200cb": ("xn--ab-j1t", "ab"),
}
IDN_PERL_ADDRESS, IDN_IDNA2003_ADDRESS = "127.0.0.1", "127.0.0.2"


def idn_records():
    out = []
    for perl, idna2003 in IDN_SPELLINGS.values():
        out.append("host-record=%s.%s,%s" % (perl, ZONE, IDN_PERL_ADDRESS))
        out.append("host-record=%s.%s,%s" % (idna2003, ZONE, IDN_IDNA2003_ADDRESS))
    return sorted(set(out))


def records(peers):
    """The dnsmasq records every test can rely on."""
    return idn_records() + [
        "host-record=www.%s,192.0.2.10,2001:db8::10" % ZONE,
        "host-record=mx1.%s,192.0.2.21" % ZONE,
        "host-record=mx2.%s,192.0.2.22" % ZONE,
        "address=/multi.%s/192.0.2.31" % ZONE,
        "address=/multi.%s/192.0.2.32" % ZONE,
        "cname=alias.%s,www.%s" % (ZONE, ZONE),
        "mx-host=%s,mx2.%s,20" % (ZONE, ZONE),
        "mx-host=%s,mx1.%s,10" % (ZONE, ZONE),
        'txt-record=txt.%s,"hello world","second string"' % ZONE,
        "ptr-record=10.2.0.192.in-addr.arpa,www.%s" % ZONE,
        "srv-host=_ldap._tcp.%s,mx2.%s,389,20,5" % (ZONE, ZONE),
        "srv-host=_ldap._tcp.%s,mx1.%s,389,10,5" % (ZONE, ZONE),
        "srv-host=_weighted._tcp.%s,heavy.%s,1001,10,90" % (ZONE, ZONE),
        "srv-host=_weighted._tcp.%s,light.%s,1002,10,10" % (ZONE, ZONE),
        # tcp_connect via SRV: the first target refuses, the second accepts
        "host-record=refuse.%s,127.0.0.1" % ZONE,
        "host-record=accept.%s,127.0.0.1" % ZONE,
        "srv-host=_echo._tcp.svc.%s,refuse.%s,%d,10,0" % (ZONE, ZONE, peers.refused_port),
        "srv-host=_echo._tcp.svc.%s,accept.%s,%d,20,0" % (ZONE, ZONE, peers.accept_port),
        "host-record=svc.%s,192.0.2.99" % ZONE,
    ]


@pytest.fixture(scope="session")
def dnsmasq(tmp_path_factory, dns_peers):
    server = Dnsmasq(str(tmp_path_factory.mktemp("dnsmasq")), records(dns_peers))
    yield server
    server.stop()


@pytest.fixture
def default_resolver(dnsmasq):
    """Make ``anyevent.dns.resolver()`` use the dnsmasq for this test."""
    old = aedns.RESOLVER
    aedns.RESOLVER = aedns.Resolver(server=[dnsmasq.server], timeout=[1])
    yield aedns.RESOLVER
    aedns.RESOLVER = old


class Responder:
    """A scriptable DNS server on the reactor, UDP and TCP on one port.

    ``udp(query, peer)`` and ``tcp(query)`` decide the reply: a
    :class:`dns.message.Message`, raw ``bytes``, or ``None`` for silence.
    ``queries`` counts UDP queries, ``tcp_queries`` TCP ones.
    """

    def __init__(self, udp=None, tcp=None):
        self.udp_sock, self.tcp_sock = self._bind_pair()
        self.port = self.udp_sock.getsockname()[1]
        self.server = "127.0.0.1:%d" % self.port
        self.udp_sock.setblocking(False)
        self.tcp_sock.listen(8)
        self.tcp_sock.setblocking(False)
        self.udp, self.tcp = udp, tcp
        self.queries = self.tcp_queries = 0
        self._w = [loop.io(self.udp_sock, 0, self._udp_ready), loop.io(self.tcp_sock, 0, self._accept)]

    @staticmethod
    def _bind_pair():
        """A UDP and a TCP socket on the same free port."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket()
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(udp.getsockname())
                return udp, tcp
            except OSError:
                udp.close()
                tcp.close()
        raise RuntimeError("no free port pair")

    def _udp_ready(self):
        data, peer = self.udp_sock.recvfrom(65535)
        self.queries += 1
        reply = self.udp(dns.message.from_wire(data), peer) if self.udp else None
        if reply is not None:
            self.send(reply, peer)

    def send(self, reply, peer, sock=None):
        wire = reply if isinstance(reply, bytes) else reply.to_wire()
        (sock or self.udp_sock).sendto(wire, peer)

    def _accept(self):
        conn, _ = self.tcp_sock.accept()
        conn.setblocking(False)
        buf = bytearray()

        def readable():
            data = conn.recv(65537)
            buf.extend(data)
            size = int.from_bytes(buf[:2], "big") if len(buf) >= 2 else None
            if data and (size is None or len(buf) < 2 + size):
                return
            self._w.remove(watcher)
            watcher.cancel()  # the closure holds it: dropping the list is not enough
            if data:
                self.tcp_queries += 1
                reply = self.tcp(dns.message.from_wire(bytes(buf[2:2 + size]))) if self.tcp else None
                if reply is not None:
                    wire = reply.to_wire()
                    conn.setblocking(True)
                    conn.sendall(len(wire).to_bytes(2, "big") + wire)
            conn.close()
        watcher = loop.io(conn, 0, readable)
        self._w.append(watcher)

    def close(self):
        self._w = []
        self.udp_sock.close()
        self.tcp_sock.close()


def answer(query, *addresses, rcode=dns.rcode.NOERROR, truncated=False):
    """A reply to ``query`` with A records for ``addresses``."""
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    for addr in addresses:
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", addr))
    if truncated:
        reply.flags |= dns.flags.TC
    return reply


@pytest.fixture
def responders():
    """``responders(udp=None, tcp=None)`` makes a :class:`Responder`; all are closed after the test."""
    made = []

    def make(udp=None, tcp=None):
        r = Responder(udp, tcp)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def perl_dns_env(dnsmasq, tmp_path):
    """``(perl, env)`` to run Perl's AnyEvent against ``dnsmasq`` (skips when it cannot)."""
    perl = require_tool("perl")
    if dnsmasq.port != 53:
        pytest.skip("AnyEvent::DNS only talks to port 53: needs root for dnsmasq there")
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver %s\n" % dnsmasq.ip)
    return perl, dict(os.environ, PERL_ANYEVENT_RESOLV_CONF=str(conf))
