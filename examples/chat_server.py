#!/usr/bin/env python3
"""A line-based chat server on anyevent: tcp_server + Handle, plain and TLS on one port.

Usage: chat_server.py [--host 127.0.0.1] [--port 5555] [--cert server.pem]
                      [--max-line 4096] [--idle-timeout 600] [--wbuf-max 1048576]
                      [--max-connections N] [--max-per-address 16]
                      [--handshake-timeout 10] [--login-timeout 60] [--line-timeout 30]
                      [--redis redis://HOST:PORT/DB [--node-name NAME] [--cluster-ttl 10]
                       [--workers N]]

Talk to it with ``nc 127.0.0.1 5555`` or ``openssl s_client -connect 127.0.0.1:5555``.
Ctrl-C (SIGINT) or SIGTERM stops it: everyone gets a goodbye line first.
Commands: /nick NAME, /who, /me ACTION, /help, /quit; any other line goes to
everyone else as ``<nick> text``.  Without ``--cert`` a self-signed
certificate is made on first start and kept in the cache directory.

With ``--redis`` the process is a node of a cluster: every node on the same
Redis shares the room (lines, nicks, ``/who``); see examples/chat_cluster.py.
``--workers N`` starts N such nodes serving one port (``SO_REUSEPORT``);
SIGTERM or Ctrl-C to the parent stops them all.

Slow and greedy peers (slowloris) cannot hold the server:

* ``--max-connections`` (default: the descriptor limit, RLIMIT_NOFILE, less
  32) and ``--max-per-address`` (16 connections from one IP address; 0 = no
  limit) cap the connections; one over a cap is told so in one line (plain
  text, to TLS clients too) and closed.  When the server is full but some
  connections have not sent a complete line yet (slow clients from many
  addresses), the oldest of those is dropped to let the new one in, as
  OpenSSH's MaxStartups does; logged once per burst.
* ``--handshake-timeout`` (10 s): from connect until the TLS handshake is done
  (or the client is seen to speak plain text).  A lone TLS record byte or a
  trickled ClientHello is cut then.
* ``--login-timeout`` (60 s): from the greeting until the first complete line.
* ``--line-timeout`` (30 s): once the first byte of a line has arrived, the
  rest of it must follow within this time.  ``--idle-timeout`` restarts on
  every byte; these deadlines do not.
* Should descriptors run out nevertheless, accepting pauses (see
  ``anyevent.socket.ACCEPT_BACKOFF``); that is logged once per burst, as are
  refused connections.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # chat_cluster, beside this file
try:  # the installed package; else the one of the clone this file is in
    import anyevent  # noqa: F401
except ImportError:
    sys.path.insert(1, str(HERE.parent))

from anyevent import AE, debug  # noqa: E402
from chat_cluster import ClusterLink  # noqa: E402
from anyevent.handle import Handle  # noqa: E402
from anyevent.socket import ACCEPT_BACKOFF, tcp_server  # noqa: E402
from anyevent.tls import TLS  # noqa: E402

log = logging.getLogger("chat")

#: How long a client may stay silent before we decide it speaks plain text.
TLS_SNIFF_DELAY = 0.3
#: How long shutdown waits for goodbyes to be written out (seconds).
SHUTDOWN_GRACE = 5.0
#: Descriptors kept free below RLIMIT_NOFILE by the default --max-connections
#: (the listener, the log, lingering closes, refusing one over the cap).
FD_RESERVE = 32
#: A burst of like log events ends after this many quiet seconds.
BURST_QUIET = 1.0
NICK_RE = re.compile(r"[A-Za-z0-9_\-\[\]{}^|]{1,32}\Z")
HELP = (
    "* Commands: /nick NAME (change your name), /who (who is here),",
    "* /me ACTION (say what you do), /help (this text), /quit (leave).",
    "* Anything else is sent to everyone as <yournick> text.",
)


def default_cert() -> str:
    """Path of the cached self-signed certificate+key PEM, creating it if needed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anyevent-chat"
    pem = cache / "selfsigned.pem"
    if not pem.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = pem.with_suffix(".%d.tmp" % os.getpid())  # nodes may start side by side
        tmp.write_bytes(_make_selfsigned())
        os.chmod(tmp, 0o600)
        tmp.replace(pem)
        log.info("generated self-signed certificate %s", pem)
    return str(pem)


def _make_selfsigned() -> bytes:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)


def default_max_connections() -> int:
    """The soft descriptor limit less FD_RESERVE."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(1, soft - FD_RESERVE)


class BurstLog:
    """Logs the first of a burst of like events at once and how many more
    there were once none came for BURST_QUIET seconds."""

    def __init__(self, summary: str) -> None:
        self.summary = summary  # format with the count of the rest
        self.more = 0
        self.quiet: Any = None

    def note(self, message: str, *args: object) -> None:
        if self.quiet is None:
            log.warning(message, *args)
        else:
            self.more += 1
        self.quiet = AE.timer(BURST_QUIET, 0, self.end)

    def end(self) -> None:
        if self.more:
            log.warning(self.summary, self.more)
        self.more = 0
        self.quiet = None


class Client:
    """One connected user: their handle, nick and address; ``deadline`` is the
    timer of the handshake, login or line deadline running, if any."""
    __slots__ = ("hdl", "nick", "host", "addr", "tls", "joined", "deadline", "claiming")
    deadline: Any
    claiming: str | None  # a nick being claimed cluster-wide

    def __init__(self, hdl: Handle, nick: str, host: str, port: int) -> None:
        self.hdl = hdl
        self.nick = nick
        self.host = host
        self.addr = "%s:%s" % (host, port)
        self.tls = False
        self.joined = False
        self.deadline = None
        self.claiming = None


class ChatServer:
    """The chat room: accepts connections and routes lines between clients."""

    def __init__(self, options: argparse.Namespace, tls_ctx: TLS) -> None:
        """``options``: the parsed command line (see :func:`parse_args`)."""
        self.opt = options
        self.tls_ctx = tls_ctx
        self.max_line: int = options.max_line
        self.clients: dict[Handle, Client] = {}
        # the clients without a complete line yet, oldest first
        self.unlogged: dict[Handle, Client] = {}
        self.per_host: dict[str, int] = {}  # source address -> number of clients
        self.serial = 0
        self.refusals = BurstLog("refused %d more connections over the caps")
        self.backoffs = BurstLog("accepting paused %d more times (out of descriptors)")
        self.evictions = BurstLog("dropped %d more connections without a line to make room")
        self.link_errors = BurstLog("cluster link: %d more errors")
        self.listener: Any = tcp_server(options.host, options.port, self.accept,
                                        backoff_cb=self.accept_paused,
                                        reuse_port=options.worker is not None)
        self.link: ClusterLink | None = None
        self.guest_tag = ""
        if options.redis:
            self.link = ClusterLink(self, options.redis, options.node_name, options.cluster_ttl,
                                    on_error=partial(self.link_errors.note, "cluster link: %s"))
            self.guest_tag = "-" + self.link.id[-4:]

    # -- connection life -------------------------------------------------------

    def accept_paused(self, exc: OSError) -> None:
        self.backoffs.note("out of descriptors (%s): accepting paused for %gs", exc.strerror,
                           ACCEPT_BACKOFF)

    def over_cap(self, host: str) -> str | None:
        """The refusal for a new connection from ``host``, or None (having
        made room for it if need be)."""
        if self.opt.max_per_address and self.per_host.get(host, 0) >= self.opt.max_per_address:
            return "* Too many connections from %s, try again later." % host
        if len(self.clients) >= self.opt.max_connections and self.unlogged:
            self.make_room(host)
        if len(self.clients) >= self.opt.max_connections:
            return "* Server full (%d connections), try again later." % len(self.clients)
        return None

    def make_room(self, host: str) -> None:
        """Drop the oldest connection that has not sent a complete line (MaxStartups)."""
        victim = next(iter(self.unlogged.values()))
        self.evictions.note("server full: dropping %s (no complete line yet) to let %s in",
                            victim.addr, host)
        if victim.joined:
            self.send_last(victim, "* Server full: dropping connections that said nothing yet.")
        self.drop(victim, None, "dropped to make room")

    def refuse(self, fh: socket.socket, host: str, port: int, refusal: str) -> None:
        """One line and close: a new socket's send buffer takes it at once."""
        self.refusals.note("refuse %s:%s: %s", host, port, refusal[2:])
        try:
            fh.send(refusal.encode("utf-8") + b"\n")
        except OSError:
            pass
        fh.close()

    def accept(self, fh: socket.socket, host: str, port: int) -> None:
        refusal = self.over_cap(host)
        if refusal:
            return self.refuse(fh, host, port, refusal)
        self.serial += 1
        hdl = Handle(
            fh=fh, rbuf_max=self.max_line, wbuf_max=self.opt.wbuf_max,
            timeout=self.opt.idle_timeout, on_timeout=self.on_idle,
            on_error=self.on_error, on_eof=self.on_eof, on_starttls=self.on_starttls,
            linger=SHUTDOWN_GRACE,
        )
        client = self.clients[hdl] = Client(hdl, "guest%d%s" % (self.serial, self.guest_tag),
                                            host, port)
        self.unlogged[hdl] = client
        self.per_host[host] = self.per_host.get(host, 0) + 1
        log.info("connect %s", client.addr)
        self.set_deadline(client, self.opt.handshake_timeout, "no TLS handshake or plain text")
        # TLS and plain text share the port: look at the first bytes; a
        # client that says nothing for a moment is taken to speak plain text.
        sniff = AE.timer(TLS_SNIFF_DELAY, 0, lambda: self.sniff_expired(client))
        hdl.push_read("tls_detect", lambda h, kind, *version: self.detected(client, sniff, kind))

    def sniff_expired(self, client: Client) -> None:
        """The client said nothing for TLS_SNIFF_DELAY: greet it in plain text,
        unless its first bytes are in fact waiting.  A busy loop runs overdue
        timers before reading, and greeting a TLS client in the clear would
        break its handshake.
        """
        hdl = client.hdl
        if hdl.fh is None or hdl.rbuf:  # gone, or a partial TLS record header
            return
        try:
            hdl.fh.recv(1, socket.MSG_PEEK)  # data or EOF: the read watcher handles it
        except (BlockingIOError, InterruptedError):
            self.join(client)
        except OSError:
            pass  # a connection error: the read watcher reports it

    def detected(self, client: Client, sniff: Any, kind: str | None) -> None:
        sniff.cancel()
        if client.joined:
            return
        if kind:
            client.tls = True
            client.hdl.starttls("accept", self.tls_ctx)
        else:
            self.join(client)

    def on_starttls(self, hdl: Handle, ok: bool, message: str) -> None:
        client = self.clients.get(hdl)
        if client is None:
            return
        if ok:
            self.join(client)
        else:
            log.info("TLS failed for %s: %s", client.addr, message)
            self.drop(client, None)

    def join(self, client: Client) -> None:
        if client.joined or client.hdl not in self.clients:
            return
        client.joined = True
        self.send(client, "* Welcome to the anyevent chat%s. You are %s. Type /help for commands."
                  % (" (TLS)" if client.tls else "", client.nick))
        if self.link is not None:
            if not self.link.up:
                self.send(client, "* The cluster link is down: until it is back, only users "
                          "of this node (%s) see what you say." % self.link.name)
            self.link.claim(client.nick, None, partial(self.guest_claimed, client))
        self.broadcast("* %s has joined" % client.nick, skip=client)
        self.set_deadline(client, self.opt.login_timeout, "no first line")
        self.want_line(client)

    def want_line(self, client: Client) -> None:
        """Read the next line; its deadline starts with its first byte."""
        client.hdl.push_read(lambda hdl: self.line_begun(client))
        client.hdl.push_read("line", self.on_line)

    def line_begun(self, client: Client) -> bool:
        """A reader that is done once the line's first byte is in the buffer."""
        if not client.hdl.rbuf:
            return False
        if client.deadline is None:  # else the login deadline runs
            self.set_deadline(client, self.opt.line_timeout, "no end of line")
        return True

    def set_deadline(self, client: Client, seconds: float, what: str) -> None:
        """Drop ``client`` unless the deadline is cleared (or replaced) within
        ``seconds`` (0: none); unlike the idle timeout, data does not restart it."""
        client.deadline = None
        if seconds:
            client.deadline = AE.timer(seconds, 0,
                                       lambda: self.deadline_passed(client, seconds, what))

    def deadline_passed(self, client: Client, seconds: float, what: str) -> None:
        if client.joined:
            self.send_last(client, "* No complete line within %g seconds, disconnecting."
                           % seconds)
        self.drop(client, "* %s timed out" % client.nick, "%s within %gs" % (what, seconds))

    def drop(self, client: Client, notice: str | None, reason: str | None = None) -> None:
        """Forget ``client``; tell the others ``notice`` if given; log ``reason``
        (default ``notice``)."""
        if self.clients.pop(client.hdl, None) is None:
            return
        self.unlogged.pop(client.hdl, None)
        client.deadline = None
        if self.link is not None and client.joined:
            self.link.release(client.nick)
        self.forget_host(client.host)
        log.info("disconnect %s (%s)", client.addr, reason or notice or "closed")
        if notice and client.joined:
            self.broadcast(notice)
        client.hdl.destroy()  # queued output still lingers out

    def forget_host(self, host: str) -> None:
        """Count one connection from ``host`` less."""
        left = self.per_host.pop(host) - 1
        if left:
            self.per_host[host] = left

    def on_eof(self, hdl: Handle) -> None:
        client = self.clients.get(hdl)
        if client is not None:
            self.drop(client, "* %s has left" % client.nick)

    def on_idle(self, hdl: Handle) -> None:
        client = self.clients.get(hdl)
        if client is not None:
            self.send_last(client, "* Idle for %g seconds, disconnecting."
                           % self.opt.idle_timeout)
            self.drop(client, "* %s timed out" % client.nick)

    def line_too_long(self, rbuf: bytearray) -> bool:
        """True if ``rbuf`` starts with more than --max-line bytes and no
        newline (rather than holding many short lines not yet answered)."""
        return len(rbuf) > self.max_line and rbuf.find(b"\n", 0, self.max_line + 1) < 0

    def on_error(self, hdl: Handle, fatal: bool, message: str) -> None:
        client = self.clients.get(hdl)
        if client is None:
            return
        if hdl.errno == errno.ENOSPC and self.line_too_long(hdl.rbuf):
            # the line is too long: say so, then cut only this client
            self.send_last(client, "* Error: line longer than %d bytes, disconnecting."
                           % self.max_line)
            self.drop(client, "* %s was disconnected (line too long)" % client.nick)
        elif hdl.errno == errno.ENOSPC:
            self.drop(client, "* %s was dropped (not reading, too far behind)" % client.nick)
        elif hdl.errno == errno.EPIPE:  # end-of-file while a line read is queued
            self.drop(client, "* %s has left" % client.nick)
        else:
            self.drop(client, "* %s has left (%s)" % (client.nick, message))

    # -- chatting ------------------------------------------------------------------

    def on_line(self, hdl: Handle, data: bytes, eol: bytes) -> None:
        client = self.clients.get(hdl)
        if client is None:
            return
        client.deadline = None
        self.unlogged.pop(hdl, None)
        self.want_line(client)
        text = data.decode("utf-8", "replace").strip()
        if not text:
            return
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            handler = self.COMMANDS.get(cmd.lower())
            if handler is None:
                self.send(client, "* Unknown command %s; try /help" % cmd)
            else:
                handler(self, client, arg.strip())
        else:
            self.broadcast("<%s> %s" % (client.nick, text), skip=client)

    def cmd_nick(self, client: Client, name: str) -> None:
        if not NICK_RE.match(name):
            self.send(client, "* Usage: /nick NAME (1-32 letters, digits, _-[]{}^|)")
        elif self.nick_in_use(name, client):
            self.send(client, "* Nick %s is already taken" % name)
        elif self.link is None:
            self.rename(client, name)
        elif not self.link.up or client.claiming:
            self.send(client, "* The cluster link is down (or a /nick is under way): "
                      "try again in a moment.")
        else:
            client.claiming = name
            self.link.claim(name, client.nick, partial(self.nick_claimed, client, name))

    def nick_in_use(self, name: str, client: Client) -> bool:
        """True if another local user has (or is claiming) ``name``."""
        name = name.lower()
        return any(c.nick.lower() == name or (c.claiming or "").lower() == name
                   for c in self.clients.values() if c is not client)

    def nick_claimed(self, client: Client, name: str, ok: bool | None) -> None:
        client.claiming = None
        if client.hdl not in self.clients:
            if ok and self.link is not None:
                self.link.release(name)
        elif ok:
            self.rename(client, name)
        elif ok is None:
            self.send(client, "* The cluster link broke: try /nick again in a moment.")
        else:
            self.send(client, "* Nick %s is already taken" % name)

    def rename(self, client: Client, name: str) -> None:
        old, client.nick = client.nick, name
        log.info("nick %s -> %s (%s)", old, name, client.addr)
        self.send(client, "* You are now known as %s" % name)
        self.broadcast("* %s is now known as %s" % (old, name), skip=client)

    def guest_claimed(self, client: Client, ok: bool | None) -> None:
        if ok is False:  # another node's guest drew the same name
            self.nick_lost(client.nick)

    def cmd_who(self, client: Client, arg: str) -> None:
        if self.link is None:
            return self.send(client, "* Here: %s" % ", ".join(self.nicks(False)))
        if not self.link.up:
            return self.send(client, "* Here (cluster link down, this node only): %s"
                             % ", ".join(self.nicks(False)))
        self.link.who(partial(self.cluster_who, client))

    def cluster_who(self, client: Client, everyone: list[tuple[str, str]] | None) -> None:
        if client.hdl not in self.clients:
            return
        if everyone is None:
            return self.send(client, "* The cluster link broke: try /who again in a moment.")
        self.send(client, "* Here: %s" % ", ".join(
            "%s (%s)" % pair for pair in sorted(everyone, key=lambda p: p[0].lower())))

    def cmd_me(self, client: Client, action: str) -> None:
        self.broadcast("* %s %s" % (client.nick, action), skip=client)

    def cmd_help(self, client: Client, arg: str) -> None:
        for line in HELP:
            self.send(client, line)

    def cmd_quit(self, client: Client, arg: str) -> None:
        self.send_last(client, "* Bye, %s!" % client.nick)
        self.drop(client, "* %s has left" % client.nick)

    COMMANDS: dict[str, Callable[[ChatServer, Client, str], None]] = {
        "/nick": cmd_nick, "/who": cmd_who, "/me": cmd_me,
        "/help": cmd_help, "/quit": cmd_quit}

    def send(self, client: Client, text: str) -> None:
        client.hdl.push_write(text.encode("utf-8") + b"\n")

    def send_last(self, client: Client, text: str) -> None:
        """Send the last line before closing; TLS clients then get a close_notify."""
        self.send(client, text)
        if client.tls:
            client.hdl.stoptls()

    def broadcast(self, text: str, skip: Client | None = None) -> None:
        """Say ``text`` to everyone of the cluster but ``skip``."""
        data = text.encode("utf-8") + b"\n"
        self.deliver(data, skip)
        if self.link is not None:
            self.link.publish(data)

    # -- what the cluster link calls (chat_cluster.Node) ---------------------------------

    def deliver(self, data: bytes, skip: Client | None = None) -> None:
        """Write ``data`` to every local user but ``skip``."""
        for client in list(self.clients.values()):
            if client is not skip and client.joined:
                client.hdl.push_write(data)

    def notice(self, text: str) -> None:
        log.warning("%s", text[2:])
        self.deliver(text.encode("utf-8") + b"\n")

    def nicks(self, settled_only: bool) -> list[str]:
        return sorted(c.nick for c in self.clients.values()
                      if c.joined and not (settled_only and c.claiming))

    def nick_lost(self, nick: str) -> None:
        """Another node's user holds ``nick``, claimed while this node was cut
        off: ours becomes a guest (told here only: for the other nodes that
        nick is someone else)."""
        for client in list(self.clients.values()):
            if client.nick == nick and client.joined:
                self.serial += 1
                guest = "guest%d%s" % (self.serial, self.guest_tag)
                self.send(client, "* Your nick %s was taken on another node while this "
                          "node was cut off from the cluster; you are now %s." % (nick, guest))
                client.nick = guest
                self.deliver(("* %s is now known as %s\n" % (nick, guest)).encode("utf-8"),
                             skip=client)
                if self.link is not None:
                    self.link.claim(guest, None, partial(self.guest_claimed, client))

    # -- shutdown ------------------------------------------------------------------

    def shutdown(self, why: str) -> None:
        """Say goodbye to everyone, wait (bounded) until it is written, then return."""
        log.info("caught %s, shutting down", why)
        self.listener = None
        # from now on lines, timeouts and errors find no client and are ignored
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            client.deadline = None
        done = AE.cv()
        done.begin()
        for client in clients:
            if not client.joined:
                client.hdl.destroy()
                continue
            done.begin()
            client.hdl.on_error(lambda h, fatal, message: self._said_goodbye(h, done))
            self.send_last(client, "* Server is shutting down. Goodbye!")
            client.hdl.on_drain(lambda h: self._said_goodbye(h, done))
        if self.link is not None:  # the other nodes see this node's users leave
            for client in clients:
                if client.joined:
                    self.link.publish(("* %s has left (server shutting down)\n"
                                       % client.nick).encode("utf-8"))
            done.begin()
            self.link.close(done.end)
        done.end()
        limit = AE.timer(SHUTDOWN_GRACE, 0, done.send)
        done.recv()

    @staticmethod
    def _said_goodbye(hdl: Handle, done: Any) -> None:
        """The goodbye is written (or the client is gone): count it done, once."""
        hdl.on_error(lambda *args: None)
        hdl.push_shutdown()  # also replaces this on_drain callback
        done.end()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--cert", help="PEM file with certificate and key (default: self-signed)")
    parser.add_argument("--max-line", type=int, default=4096, help="longest line in bytes")
    parser.add_argument("--idle-timeout", type=float, default=600,
                        help="seconds of silence before a client is dropped (default %(default)g)")
    parser.add_argument("--wbuf-max", type=int, default=1 << 20,
                        help="bytes queued to a client before it is dropped as too slow")
    parser.add_argument("--max-connections", type=int, default=default_max_connections(),
                        help="connections at once (default: RLIMIT_NOFILE less %d, here "
                        "%%(default)d)" % FD_RESERVE)
    parser.add_argument("--max-per-address", type=int, default=16,
                        help="connections at once from one IP address, 0 = no limit "
                        "(default %(default)d)")
    parser.add_argument("--handshake-timeout", type=float, default=10,
                        help="seconds from connect to a finished TLS handshake or plain "
                        "text (default %(default)g; 0 = none)")
    parser.add_argument("--login-timeout", type=float, default=60,
                        help="seconds from the greeting to the first complete line "
                        "(default %(default)g; 0 = none)")
    parser.add_argument("--line-timeout", type=float, default=30,
                        help="seconds from a line's first byte to its end "
                        "(default %(default)g; 0 = none)")
    parser.add_argument("--debug-shell", metavar="PATH",
                        help="serve anyevent.debug's shell on this unix socket (connect with "
                        "socat readline unix:PATH or nc -U PATH; it runs any code it gets)")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--redis", metavar="URL",
                         help="redis://[:PASSWORD@]HOST[:PORT][/DB]: be a node of the cluster "
                         "on this Redis")
    cluster.add_argument("--node-name", help="this node's name in /who (default HOST:PORT, "
                         "and /N for worker N)")
    cluster.add_argument("--cluster-ttl", type=float, default=10,
                         help="seconds a node that stopped answering keeps its users "
                         "(default %(default)g; its heartbeat runs every third of it)")
    cluster.add_argument("--workers", type=int, default=0,
                         help="start N nodes serving one port (needs --redis)")
    cluster.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # N: I am worker N
    cluster.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)  # EOF: parent gone
    args = parser.parse_args(argv)
    if args.workers and not (args.redis and args.port):
        # one line (parser.error would print the whole usage first)
        sys.exit("chat_server.py: --workers needs --redis and a fixed --port: workers "
                 "that cannot see each other would split the room")
    if args.node_name is None:
        args.node_name = "%s:%d" % (socket.gethostname(), args.port)
        if args.worker is not None:
            args.node_name += "/%d" % args.worker
    return args


def cannot_listen(args: argparse.Namespace, exc: OSError) -> int:
    """EADDRINUSE, EACCES, EADDRNOTAVAIL: one line, no traceback."""
    print("chat_server.py: cannot listen on %s:%d: %s"
          % (args.host, args.port, exc.strerror or exc), file=sys.stderr)
    return 1


def supervise(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``args.workers`` nodes on one port until SIGINT/SIGTERM, then stop
    them (each says goodbye to its clients); 0 if they all ended well."""
    try:  # one error line here rather than one per worker
        tcp_server(args.host, args.port, lambda fh, host, port: None, reuse_port=True)
    except OSError as exc:
        return cannot_listen(args, exc)
    if not args.cert:
        default_cert()  # made once, here, not raced by the workers
    gone_r, gone_w = os.pipe()  # the workers see EOF on it should this process die
    workers: dict[int, subprocess.Popen[bytes]] = {}
    for n in range(args.workers):  # (later options win: --workers 0 makes a node)
        proc = subprocess.Popen([sys.executable, __file__, *argv, "--workers", "0",
                                 "--worker", str(n), "--parent-fd", str(gone_r)],
                                pass_fds=(gone_r,))
        workers[proc.pid] = proc
    os.close(gone_r)
    log.info("started %d workers on %s:%d: %s", args.workers, args.host, args.port,
             " ".join(map(str, workers)))
    stop, finished = AE.cv(), AE.cv()
    status: dict[int, int] = {}

    def ended(pid: int, wait_status: int) -> None:
        status[pid] = os.waitstatus_to_exitcode(wait_status)
        if not stop.ready():
            log.warning("worker %d ended (status %d) before the server was stopped", pid,
                        status[pid])
        if len(status) == len(workers):
            stop.send("the end of every worker")
            finished.send()
    children = [AE.child(pid, ended) for pid in workers]
    sigs = [AE.signal(name, partial(stop.send, "SIG" + name)) for name in ("INT", "TERM")]
    log.info("caught %s, stopping the workers", stop.recv())
    for pid in workers:
        if pid not in status:
            os.kill(pid, signal.SIGTERM)
    limit = AE.timer(2 * SHUTDOWN_GRACE, 0, finished.send)
    finished.recv()
    for pid, proc in workers.items():
        if pid not in status:
            proc.kill()
            status[pid] = proc.wait()
    os.close(gone_w)
    return 0 if not any(status.values()) else 1


def watch_parent(fd: int, stop: Any) -> Any:
    """The parent process holds the pipe's other end: EOF means it is gone."""
    return AE.io(fd, 0, lambda: stop.send("the end of the parent process"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.workers:
        return supervise(args, argv)
    tls_ctx = TLS(cert_file=args.cert or default_cert())
    try:
        server = ChatServer(args, tls_ctx)
    except OSError as exc:
        return cannot_listen(args, exc)
    log.info("chat server listening on %s:%d (plain and TLS)%s", args.host, args.port,
             " as cluster node %s" % args.node_name if args.redis else "")
    stop = AE.cv()
    sigs = [AE.signal(name, partial(stop.send, "SIG" + name)) for name in ("INT", "TERM")]
    parent = watch_parent(args.parent_fd, stop) if args.parent_fd is not None else None
    shell = debug.shell("unix/", args.debug_shell) if args.debug_shell else None
    server.shutdown(stop.recv())
    return 0


if __name__ == "__main__":
    sys.exit(main())
