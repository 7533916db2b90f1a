"""examples/chat_server.py against slowloris (issue 13, item 4).

The server runs with 256 descriptors (RLIMIT_NOFILE) and short deadlines.
340 hostile connections from ten source addresses (127.0.0.2-11) -- plain
text trickled a byte every 2 s, with or without a first line, a TLS
ClientHello trickled after its record header, a lone 0x16 byte -- would
exhaust the descriptors; the per-address cap refuses the excess with one line,
the deadlines cut the rest, and meanwhile real clients from 127.0.0.1 join and
chat within a second.  Smaller tests show the caps one by one and the
once-per-burst log when descriptors run out nevertheless.
"""

import re
import selectors
import socket
import ssl
import time

import pytest

from test_chat import WAIT, Server, greet, join, peers, sock_peer, wait_for  # noqa: F401

FD_LIMIT = 256
SOURCES = ["127.0.0.%d" % i for i in range(2, 12)]
PER_SOURCE = 34  # 340 connections in all
PER_ADDRESS = 16  # the server's default --max-per-address
TRICKLE = 2.0  # seconds between two bytes of a slow connection
HANDSHAKE, LOGIN, LINE = 3.0, 4.0, 4.0  # the deadlines given to the server
DEADLINES = ["--handshake-timeout", str(HANDSHAKE), "--login-timeout", str(LOGIN),
             "--line-timeout", str(LINE)]


def client_hello():
    """The first flight of a real TLS client: a ClientHello record."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def slow_kinds():
    """kind -> (bytes sent at once, bytes trickled, the deadline that cuts it)."""
    hello = client_hello()
    return {
        "trickle": (b"h", b"ello, is anybody there?", LOGIN),
        "line_trickle": (b"/nick slow\nh", b"ello, is anybody there?", LINE),
        "tls_trickle": (hello[:5], hello[5:], HANDSHAKE),
        "lone_0x16": (b"\x16", b"", HANDSHAKE),
    }


class Slow:
    """One slowloris connection: what it sends, what it got, when it ended."""

    def __init__(self, port, source, kind, first, rest):
        self.kind, self.source, self.rest = kind, source, rest
        self.got = b""
        self.closed = None
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.opened = time.monotonic()
        # bytes go out a while before or after a deadline ends: a byte the
        # server has not read when it closes makes the close a reset, and a
        # reset may throw away last words not yet read
        self.next_byte = self.opened + TRICKLE / 4
        self.sock.setblocking(False)
        self.sock.sendall(first)

    def trickle(self, now):
        if now < self.next_byte:
            return
        self.next_byte += TRICKLE
        if self.rest:
            try:
                self.sock.send(self.rest[:1])
                self.rest = self.rest[1:]
            except OSError:
                pass  # the server cut us: the reader notes when

    def readable(self):
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # a reset
            data = b""
        self.got += data
        if not data:
            self.closed = time.monotonic()
            self.sock.close()


class Slowloris:
    """Opens the slow connections and keeps trickling until all are closed."""

    def __init__(self, port):
        kinds = slow_kinds()
        names = list(kinds)
        self.conns = []
        for i in range(len(SOURCES) * PER_SOURCE):
            kind = names[i % len(names)]
            first, rest = kinds[kind][:2]
            self.conns.append(Slow(port, SOURCES[i // PER_SOURCE], kind, first, rest))
        self.sel = selectors.DefaultSelector()
        for conn in self.conns:
            self.sel.register(conn.sock, selectors.EVENT_READ, conn)

    def open(self):
        return [c for c in self.conns if c.closed is None]

    def run(self, until, sample=lambda: None):
        """Trickle and read until ``until()`` or everything is closed."""
        while self.open() and not until():
            for key, _ in self.sel.select(timeout=0.05):
                key.data.readable()
                if key.data.closed is not None:
                    self.sel.unregister(key.fileobj)
            sample()
            now = time.monotonic()
            for conn in self.open():
                conn.trickle(now)


def chat_pair(port):
    """Two real clients (plain and TLS) join; one line goes from one to the
    other.  Returns the seconds it all took."""
    began = time.monotonic()
    alice = join(port, "socket", "alice")
    bob = join(port, "ssl", "bob")
    alice.send("hello bob, anyone else here?")
    arrival, _ = bob.expect(r"^<alice> hello bob, anyone else here\?$")
    return arrival - began, [alice, bob]


REFUSED = re.compile(rb"^\* Too many connections from (127\.0\.0\.\d+), try again later\.\n\Z")
CUT = b"* No complete line within %g seconds, disconnecting.\n"


def check_slow(conns, kinds):
    """Per source PER_ADDRESS connections were admitted and the rest refused
    in one line; each admitted one was cut by its deadline."""
    refused = [c for c in conns if REFUSED.match(c.got)]
    for source in SOURCES:
        assert sum(c.source == source for c in refused) == PER_SOURCE - PER_ADDRESS, source
    for conn in conns:
        if conn in refused:
            continue
        deadline = kinds[conn.kind][2]
        lived = conn.closed - conn.opened
        assert deadline - 0.1 < lived < deadline + 1.5, (conn.kind, lived)
        if conn.kind in ("trickle", "line_trickle"):
            assert conn.got.endswith(CUT % deadline), (conn.kind, conn.got[-200:])


def check_log(log):
    """No tracebacks, descriptors never ran out, refusals logged per burst."""
    assert "Traceback" not in log, log[-3000:]
    assert "out of descriptors" not in log
    first = log.count("chat WARNING refuse ")
    more = sum(int(n) for n in re.findall(r"refused (\d+) more connections", log))
    assert first + more == len(SOURCES) * (PER_SOURCE - PER_ADDRESS)
    assert first <= 3, "refusals are logged once per burst"


def test_slowloris_mix_is_refused_or_cut_while_real_clients_chat(tmp_path, peers):
    server = Server(tmp_path, *DEADLINES, fd_limit=FD_LIMIT)
    try:
        began = time.monotonic()
        attack = Slowloris(server.port)
        took, chatters = chat_pair(server.port)
        peers += chatters
        assert took < 1.0, "joining and chatting took %.2fs under attack" % took
        assert len(attack.open()) > 100, "the real clients came too late to prove anything"
        fds = [server.fd_count()]
        attack.run(until=lambda: time.monotonic() - began > 3 * WAIT,
                   sample=lambda: fds.append(server.fd_count()))
        assert not attack.open(), "slow connections still open: %r" % (
            sorted({c.kind for c in attack.open()}),)
        assert max(fds) < FD_LIMIT - 32
        check_slow(attack.conns, slow_kinds())
        chatters[1].send("still here")  # the deadlines spared the real clients
        chatters[0].expect(r"^<bob> still here$")
        check_log(server.log_text())
    finally:
        server.stop()


def test_over_cap_connections_get_one_line_and_are_closed(tmp_path, peers):
    server = Server(tmp_path, "--max-connections", "3", "--max-per-address", "2")
    try:
        a = greet(sock_peer(server.port), "capA")
        peers.append(a)
        peers.append(greet(sock_peer(server.port), "capB"))
        third = sock_peer(server.port)
        peers.append(third)
        assert third.expect_eof() == ["* Too many connections from 127.0.0.1, try again later."]
        peers.append(greet(sock_peer(server.port, source="127.0.0.2"), "capC"))
        full = sock_peer(server.port, source="127.0.0.3")
        peers.append(full)
        assert full.expect_eof() == ["* Server full (3 connections), try again later."]
        a.send("/quit")
        a.expect_eof()
        peers.append(greet(sock_peer(server.port, source="127.0.0.3"), "capD"))
    finally:
        server.stop()


def test_out_of_descriptors_is_logged_once_per_burst(tmp_path, peers):
    """Caps above the descriptor limit: accepting pauses, logged once; every
    waiting connection is served once the login deadline frees descriptors."""
    server = Server(tmp_path, "--max-connections", "1000", "--max-per-address", "0",
                    "--login-timeout", "1.5", fd_limit=64)
    try:
        waiting = [sock_peer(server.port) for _ in range(100)]
        peers += waiting
        for peer in waiting:
            assert peer.expect_eof(timeout=3 * WAIT)[-1] == (
                "* No complete line within 1.5 seconds, disconnecting.")
        wait_for(lambda: "accepting paused" in server.log_text(), what="end of the burst")
        log = server.log_text()
        assert log.count("out of descriptors (Too many open files): accepting paused") == 1, log
        assert "Traceback" not in log
        peers.append(join(server.port, "socket", "afterwards"))
    finally:
        server.stop()


def test_a_full_server_drops_the_oldest_silent_connection_to_let_a_client_in(tmp_path, peers):
    """Slow connections from many addresses fill the server (the per-address
    cap does not stop them): each real client still gets in, in place of the
    oldest connection that has not sent a line (OpenSSH's MaxStartups)."""
    server = Server(tmp_path, "--max-connections", "20", "--max-per-address", "3")
    try:
        silent = [sock_peer(server.port, source="127.0.0.%d" % (20 + i // 3)) for i in range(20)]
        peers += silent
        for peer in silent:
            peer.expect(r"^\* Welcome to the anyevent chat\.")
        alice = join(server.port, "socket", "alice")
        bob = join(server.port, "ssl", "bob")
        peers += [alice, bob]
        alice.send("made it")
        bob.expect(r"^<alice> made it$")
        for peer in silent[:2]:  # the oldest two made room
            assert peer.expect_eof()[-1] == (
                "* Server full: dropping connections that said nothing yet.")
        carol = join(server.port, "socket", "carol")  # past the cap again: alice and bob stay
        peers.append(carol)
        silent[2].expect_eof()
        carol.send("me too")
        alice.expect(r"^<carol> me too$")
        bob.expect(r"^<carol> me too$")
        wait_for(lambda: "dropped 2 more connections without a line" in server.log_text(),
                 what="the end of the burst")
        log = server.log_text()
        assert log.count("server full: dropping") == 1, log  # once per burst
        assert "Traceback" not in log
    finally:
        server.stop()
