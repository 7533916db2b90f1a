"""examples/chat_server.py driven as a subprocess by real clients: ``nc``,
``openssl s_client``, Python sockets, Python ``ssl`` and examples/chat_client.py.

Every client's output is read by a background thread into a queue of
``(arrival time, line)``, so no client ever stalls the server by accident and
latencies are measured where the line arrives.  Waits are ``expect(regex)``
with a deadline, never fixed sleeps.
"""

import os
import queue
import resource
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, require_tool, run_until
from tlsfixtures import certs

ROOT = Path(__file__).resolve().parent.parent
SERVER = str(ROOT / "examples" / "chat_server.py")
CLIENT = str(ROOT / "examples" / "chat_client.py")
WAIT = 10.0  # seconds: generous deadline for things that normally take milliseconds
EOF = None


def wait_for(predicate, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.01)


class Server:
    """A chat_server.py subprocess on a free port (or ``port``); its stderr goes
    to ``log``; ``fd_limit`` sets its RLIMIT_NOFILE; it is started once ``ready``
    is in its log ``count`` times."""

    def __init__(self, tmp_path, *args, cert=True, fd_limit=None, port=None,
                 ready="listening on", count=1):
        self.port = port or free_port()
        self.log = tmp_path / ("server-%d.log" % self.port)
        cmd = [sys.executable, SERVER, "--port", str(self.port), *args]
        if cert:
            cmd += ["--cert", certs().server_pem]
        env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
        limit = None if fd_limit is None else lambda: _limit_fds(fd_limit)
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, env=env, preexec_fn=limit)
        wait_for(lambda: self.log_text().count(ready) >= count or self.proc.poll() is not None,
                 what="server start")
        assert self.proc.poll() is None, self.log_text()

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def log_text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _limit_fds(n):
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


class Peer:
    """One chat client; lines it receives are collected by a reader thread."""

    def __init__(self, name, read, write, close):
        self.name = name
        self._write = write
        self._close = close
        self.lines = queue.Queue()
        self.seen = []  # lines skipped over by expect(), for error messages
        self.before_eof = lambda: None
        self.thread = threading.Thread(target=self._reader, args=(read,), daemon=True)
        self.thread.start()

    def _reader(self, read):
        buf = b""
        while True:
            data = read()
            if not data:
                if buf:
                    self.lines.put((time.monotonic(), buf.decode("utf-8", "replace")))
                self.lines.put((time.monotonic(), EOF))
                return
            buf += data
            *complete, buf = buf.split(b"\n")
            now = time.monotonic()
            for line in complete:
                self.lines.put((now, line.rstrip(b"\r").decode("utf-8", "replace")))

    def send(self, text):
        self._write(text.encode("utf-8") + b"\n")

    def expect(self, pattern, timeout=WAIT):
        """Skip lines until one matches regex ``pattern``; return ``(arrival, match)``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                arrival, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("%s: no line matching %r within %gs; last lines: %r"
                                     % (self.name, pattern, timeout, self.seen[-8:])) from None
            if line is EOF:
                raise AssertionError("%s: EOF before a line matching %r; last lines: %r"
                                     % (self.name, pattern, self.seen[-8:]))
            m = rx.search(line)
            if m:
                return arrival, m
            self.seen.append(line)

    def expect_eof(self, timeout=WAIT):
        """Wait until the server closes the connection; return the lines before it."""
        self.before_eof()
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                _, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("%s: still connected after %gs; got %r"
                                     % (self.name, timeout, got)) from None
            if line is EOF:
                return got
            got.append(line)

    def close(self):
        self._close()


# -- the kinds of client ----------------------------------------------------------

def _process_peer(name, cmd):
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)

    def write(data):
        proc.stdin.write(data)
        proc.stdin.flush()

    def close():
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()

    peer = Peer(name, lambda: proc.stdout.read1(65536), write, close)
    peer.proc = proc
    return peer


def nc_peer(port):
    peer = _process_peer("nc", [require_tool("nc"), "127.0.0.1", str(port)])
    # Debian's nc ends (closing its stdout) only once the server closed the
    # connection AND its stdin is at EOF
    peer.before_eof = peer.proc.stdin.close
    return peer


def openssl_peer(port):
    return _process_peer("openssl", [require_tool("openssl"), "s_client", "-quiet",
                                     "-connect", "127.0.0.1:%d" % port])


def client_peer(port, *args):
    """examples/chat_client.py with its stdin and stdout piped."""
    return _process_peer("chat_client", [sys.executable, CLIENT, "--port", str(port), *args])


def _socket_peer(name, sock):
    # One lock serialises reads and writes: an SSL object must not be used by
    # two threads at once.
    lock = threading.Lock()
    sock.settimeout(WAIT)

    def read():
        while True:
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                try:
                    if not select.select([sock], [], [], 0.1)[0]:
                        continue
                except (OSError, ValueError):  # closed by the test
                    return b""
            with lock:
                try:
                    return sock.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    return b""

    def write(data):
        with lock:
            sock.sendall(data)

    peer = Peer(name, read, write, sock.close)
    peer.sock = sock
    return peer


def sock_peer(port, source="127.0.0.1", **sockopts):
    """A plain socket peer connecting from address ``source``."""
    sock = socket.socket()
    for opt, value in sockopts.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, opt), value)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return _socket_peer("socket", sock)


def tls_peer(port, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile or certs().ca_file)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                           server_hostname="localhost")
    return _socket_peer("ssl", sock)


KINDS = {"nc": nc_peer, "openssl": openssl_peer, "socket": sock_peer, "ssl": tls_peer,
         "client": client_peer,
         "client_tls": lambda port: client_peer(port, "--tls", "--cafile", certs().ca_file)}
TLS_KINDS = ("openssl", "ssl", "client_tls")


def join(port, kind, nick):
    """Connect a client of ``kind``, wait for the greeting, take ``nick``."""
    return greet(KINDS[kind](port), nick, kind in TLS_KINDS)


def greet(peer, nick, tls=False):
    """Wait for ``peer``'s greeting (over TLS if ``tls``), take ``nick``."""
    _, m = peer.expect(r"^\* Welcome to the anyevent chat( \(TLS\))?\. "
                       r"You are (guest\d+(?:-[0-9a-f]+)?)\.")
    assert bool(m.group(1)) == tls, m.group(0)
    peer.guest = m.group(2)
    peer.send("/nick " + nick)
    peer.expect(r"^\* You are now known as %s$" % nick)
    peer.nick = nick
    return peer


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    """One server shared by the chat tests (each test uses its own nicks)."""
    server = Server(tmp_path_factory.mktemp("chat"))
    yield server
    server.stop()


@pytest.fixture
def peers():
    """Collects peers and closes them after the test."""
    made = []
    yield made
    for peer in made:
        peer.close()


def test_plain_and_tls_clients_talk_both_ways(chat, peers):
    kinds = ["nc", "openssl", "socket", "ssl"]
    clients = {}
    for kind in kinds:
        newcomer = join(chat.port, kind, "x" + kind)
        for other in clients.values():  # everyone saw the join and the nick change
            other.expect(r"^\* %s has joined$" % newcomer.guest)
            other.expect(r"^\* %s is now known as %s$" % (newcomer.guest, newcomer.nick))
        clients[kind] = newcomer
        peers.append(newcomer)
    for sender in kinds:
        clients[sender].send("hello from %s über alles" % sender)
        for receiver in kinds:
            if receiver != sender:
                clients[receiver].expect(r"^<x%s> hello from %s über alles$" % (sender, sender))
    # a sender does not get its own line back: the next line it sees is /who's answer
    clients["ssl"].send("/who")
    _, m = clients["ssl"].expect(r"^\* ")
    assert m.string.startswith("* Here: ")
    assert {"xnc", "xopenssl", "xsocket", "xssl"} <= set(m.string[8:].split(", "))


def test_nick_clash_is_refused_case_insensitively(chat, peers):
    a = join(chat.port, "socket", "Clash")
    b = join(chat.port, "ssl", "clashb")
    peers += [a, b]
    b.send("/nick clash")
    b.expect(r"^\* Nick clash is already taken$")
    b.send("/nick bad nick!")
    b.expect(r"^\* Usage: /nick NAME")
    b.send("/who")
    _, m = b.expect(r"^\* Here: ")
    assert "Clash" in m.string.split(": ")[1].split(", ")
    assert "clashb" in m.string.split(": ")[1].split(", ")
    a.send("still me")
    b.expect(r"^<Clash> still me$")


def test_me_help_unknown_command_and_quit(chat, peers):
    a = join(chat.port, "nc", "meA")
    b = join(chat.port, "openssl", "meB")
    peers += [a, b]
    a.send("/me waves at everyone")
    b.expect(r"^\* meA waves at everyone$")
    b.send("/help")
    _, first = b.expect(r"^\* Commands: ")
    text = " ".join([first.string] + [b.expect(r"^\* ")[1].string for _ in range(2)])
    for command in ("/nick NAME", "/who", "/me ACTION", "/help", "/quit"):
        assert command in text
    b.send("/frobnicate now")
    b.expect(r"^\* Unknown command /frobnicate; try /help$")
    b.send("/quit")
    b.expect(r"^\* Bye, meB!$")
    b.expect_eof()
    assert b.proc.wait(WAIT) == 0
    a.expect(r"^\* meB has left$")
    a.send("/who")
    _, m = a.expect(r"^\* Here: ")
    assert "meB" not in m.string


def test_leaving_without_quit_is_announced(chat, peers):
    a = join(chat.port, "ssl", "stayer")
    b = join(chat.port, "socket", "goer")
    c = join(chat.port, "openssl", "goer2")
    peers += [a, b, c]
    b.sock.shutdown(socket.SHUT_WR)  # a polite EOF
    a.expect(r"^\* goer has left$")
    b.expect_eof()
    c.proc.kill()  # the process dies: the kernel closes the socket
    a.expect(r"^\* goer2 has left")


def test_silent_plain_client_gets_greeting_after_a_short_wait(chat, peers):
    start = time.monotonic()
    quiet = sock_peer(chat.port)
    peers.append(quiet)
    arrival, _ = quiet.expect(r"^\* Welcome to the anyevent chat\. You are guest\d+\.")
    assert arrival - start < 2.0


def _send_without_newline(sock, size):
    """Send ``size`` bytes of 'x' and no newline; the server may cut us off midway."""
    try:
        sock.sendall(b"x" * size)
    except OSError:
        pass


def test_megabyte_line_cuts_only_that_client(chat, peers):
    a = join(chat.port, "socket", "longA")
    b = join(chat.port, "ssl", "longB")
    hog = join(chat.port, "socket", "hog")
    peers += [a, b, hog]
    sender = threading.Thread(target=_send_without_newline, args=(hog.sock, 1 << 20))
    sender.start()
    hog.expect(r"^\* Error: line longer than \d+ bytes, disconnecting\.$")
    hog.expect_eof()
    sender.join(WAIT)
    a.expect(r"^\* hog was disconnected \(line too long\)$")
    b.expect(r"^\* hog was disconnected \(line too long\)$")
    a.send("business as usual")
    b.expect(r"^<longA> business as usual$")
    b.send("indeed")
    a.expect(r"^<longB> indeed$")


def test_client_that_never_reads_is_dropped_without_delaying_others(chat, peers):
    a = join(chat.port, "socket", "fastA")
    b = join(chat.port, "ssl", "fastB")
    flooder = join(chat.port, "socket", "flooder")
    peers += [a, b, flooder]
    # a tiny receive window and never a read: its backlog piles up in the server
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", chat.port))
    peers.append(slow)
    for newcomer in (b, flooder):
        a.expect(r"^\* %s has joined$" % newcomer.guest)
    _, m = a.expect(r"^\* (guest\d+) has joined$")
    dropped = r"^\* %s was dropped \(not reading, too far behind\)$" % m.group(1)
    stop = threading.Event()

    def flood():
        lines = (b"F" * 4000 + b"\n") * 16
        while not stop.is_set():
            flooder.sock.sendall(lines)
            time.sleep(0.005)

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    worst, checked = 0.0, 0
    try:
        for i in range(2000):
            sent = time.monotonic()
            a.send("ping %d" % i)
            arrival, _ = b.expect(r"^<fastA> ping %d$" % i)
            worst = max(worst, arrival - sent)
            if any(re.search(dropped, line) for line in b.seen[checked:]):
                break
            checked = len(b.seen)
        else:
            raise AssertionError("the slow client was never dropped")
    finally:
        stop.set()
        flooding.join(WAIT)
    assert worst < 0.5, "a message took %.3fs during the flood" % worst
    a.expect(dropped)
    b.send("after the flood")
    a.expect(r"^<fastB> after the flood$")


def test_connections_are_logged_to_stderr(chat, peers):
    a = join(chat.port, "socket", "logged")
    peers.append(a)
    a.send("/quit")
    a.expect_eof()
    port = a.sock.getsockname()[1]
    wait_for(lambda: "disconnect 127.0.0.1:%d" % port in chat.log_text(), what="log line")
    log = chat.log_text()
    assert "connect 127.0.0.1:%d" % port in log
    assert "-> logged (127.0.0.1:%d)" % port in log


@pytest.mark.parametrize("kind", ["client", "client_tls"])
def test_chat_client_example_with_piped_stdin(chat, peers, kind):
    me = join(chat.port, kind, "cli" + kind[-3:])
    other = join(chat.port, "nc", "other" + kind[-3:])
    peers += [me, other]
    me.expect(r"^\* %s has joined$" % other.guest)
    other.send("hi client")
    me.expect(r"^<%s> hi client$" % other.nick)
    me.send("hi back")
    other.expect(r"^<%s> hi back$" % me.nick)
    me.proc.stdin.close()  # end of input: the client says /quit for us
    me.expect(r"^\* Bye, %s!$" % me.nick)
    me.expect_eof()
    assert me.proc.wait(WAIT) == 0
    other.expect(r"^\* %s has left$" % me.nick)


def test_idle_client_is_timed_out(tmp_path, peers):
    server = Server(tmp_path, "--idle-timeout", "0.5")
    try:
        sleepy = join(server.port, "nc", "sleepy")
        last_word = time.monotonic()
        busy = join(server.port, "ssl", "busy")
        peers += [sleepy, busy]
        for _ in range(int(WAIT / 0.1)):
            busy.send("/who")  # keeps busy from idling out itself
            try:
                busy.expect(r"^\* sleepy timed out$", timeout=0.1)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("sleepy was never timed out")
        arrival, _ = sleepy.expect(r"^\* Idle for 0\.5 seconds, disconnecting\.$")
        assert arrival - last_word >= 0.45
        sleepy.expect_eof()
        busy.send("/who")
        busy.expect(r"^\* Here: busy$")
    finally:
        server.stop()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_says_goodbye_to_every_client_then_exits_0(tmp_path, peers, signame):
    server = Server(tmp_path)
    try:
        clients = [join(server.port, kind, "bye_" + kind) for kind in KINDS]
        peers += clients
        server.proc.send_signal(getattr(signal, signame))
        for peer in clients:
            peer.expect(r"^\* Server is shutting down\. Goodbye!$")
            peer.expect_eof()
        assert server.proc.wait(WAIT) == 0
        assert "caught %s, shutting down" % signame in server.log_text()
        for peer in clients:
            if hasattr(peer, "proc"):  # nc, openssl, chat_client end cleanly too
                assert peer.proc.wait(WAIT) == 0, peer.name
    finally:
        server.stop()


def test_without_cert_a_selfsigned_one_is_made_once_and_kept(tmp_path, peers):
    pem = tmp_path / "cache" / "anyevent-chat" / "selfsigned.pem"
    made = None
    for _ in range(2):
        server = Server(tmp_path, cert=False)
        try:
            assert pem.stat().st_mode & 0o777 == 0o600
            made = made or pem.read_bytes()
            assert pem.read_bytes() == made  # the second start reuses it
            peer = tls_peer(server.port, cafile=str(pem))  # verified: localhost
            peers.append(peer)
            peer.expect(r"^\* Welcome to the anyevent chat \(TLS\)\.")
        finally:
            server.stop()


def test_sniff_timeout_leaves_a_waiting_tls_hello_to_tls_detect():
    """A busy loop runs the overdue sniff timer before reading the socket: the
    server must not greet in plain text a client whose first bytes are waiting."""
    sys.path.insert(0, str(ROOT / "examples"))
    import chat_server
    from anyevent import AE
    from anyevent.tls import TLS

    AE.now_update()  # the loop has not run for a while: its cached time is old
    port = free_port()
    options = chat_server.parse_args(["--port", str(port), "--idle-timeout", "60"])
    server = chat_server.ChatServer(options, TLS(cert_file=certs().server_pem))
    hello = socket.create_connection(("127.0.0.1", port))
    silent = socket.create_connection(("127.0.0.1", port))
    accepted = AE.cv()
    poll = AE.timer(0, 0.01, lambda: len(server.clients) == 2 and accepted.send())
    run_until(accepted, WAIT)
    del poll
    by_port = {int(c.addr.rpartition(":")[2]): c for c in server.clients.values()}
    hello.sendall(b"\x16\x03\x01\x02\x00")  # a TLS record header, not read by the loop yet
    client = by_port[hello.getsockname()[1]]
    assert select.select([client.hdl.fh], [], [], WAIT)[0]
    for c in by_port.values():  # as if both timers were overdue
        server.sniff_expired(c)
    assert not client.joined
    assert by_port[silent.getsockname()[1]].joined
    assert silent.recv(100).startswith(b"* Welcome to the anyevent chat. You are guest")
    for c in by_port.values():
        c.hdl.destroy()
    server.listener = None
    hello.close()
    silent.close()


def _flood_help_without_reading(sock, stop):
    lines = b"/help\n" * 2000
    try:
        while not stop.is_set():
            sock.sendall(lines)
    except OSError:
        pass  # dropped by the server: what the test waits for


@pytest.mark.parametrize("kind", ["socket", "ssl"])
def test_help_flooder_that_never_reads_is_dropped_quietly(tmp_path, peers, kind):
    """Replies written from the flooder's own read callbacks count against
    --wbuf-max too; over TLS its on_error (a last word) runs once."""
    server = Server(tmp_path, "--wbuf-max", str(256 << 10))
    try:
        watcher = join(server.port, "socket", "watcher")
        peers.append(watcher)
        raw = socket.create_connection(("127.0.0.1", server.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if kind == "ssl":
            ctx = ssl.create_default_context(cafile=certs().ca_file)
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
        peers.append(raw)
        _, m = watcher.expect(r"^\* (guest\d+) has joined$")
        stop = threading.Event()
        flooding = threading.Thread(target=_flood_help_without_reading, args=(raw, stop),
                                    daemon=True)
        flooding.start()
        try:
            watcher.expect(r"^\* %s was dropped \(not reading, too far behind\)$" % m.group(1),
                           timeout=3 * WAIT)
        finally:
            stop.set()
            flooding.join(WAIT)
        log = server.log_text()
        assert "Traceback" not in log and len(log.splitlines()) < 20, log[-2000:]
    finally:
        server.stop()
