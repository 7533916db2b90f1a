#!/usr/bin/env python3
"""A line-based chat server on anyevent: tcp_server + Handle, plain and TLS on one port.

Usage: chat_server.py [--host 127.0.0.1] [--port 5555] [--cert server.pem]
                      [--max-line 4096] [--idle-timeout 600] [--wbuf-max 1048576]

Talk to it with ``nc 127.0.0.1 5555`` or ``openssl s_client -connect 127.0.0.1:5555``.
Commands: /nick NAME, /who, /me ACTION, /help, /quit; any other line goes to
everyone else as ``<nick> text``.  Without ``--cert`` a self-signed
certificate is made on first start and kept in the cache directory.
"""

import argparse
import errno
import logging
import os
import re
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anyevent import AE  # noqa: E402
from anyevent.handle import Handle  # noqa: E402
from anyevent.socket import tcp_server  # noqa: E402
from anyevent.tls import TLS  # noqa: E402

log = logging.getLogger("chat")

#: How long a client may stay silent before we decide it speaks plain text.
TLS_SNIFF_DELAY = 0.3
#: How long shutdown waits for goodbyes to be written out (seconds).
SHUTDOWN_GRACE = 5.0
NICK_RE = re.compile(r"[A-Za-z0-9_\-\[\]{}^|]{1,32}\Z")
HELP = (
    "* Commands: /nick NAME (change your name), /who (who is here),",
    "* /me ACTION (say what you do), /help (this text), /quit (leave).",
    "* Anything else is sent to everyone as <yournick> text.",
)


def default_cert():
    """Path of the cached self-signed certificate+key PEM, creating it if needed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anyevent-chat"
    pem = cache / "selfsigned.pem"
    if not pem.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = pem.with_suffix(".tmp")
        tmp.write_bytes(_make_selfsigned())
        os.chmod(tmp, 0o600)
        tmp.replace(pem)
        log.info("generated self-signed certificate %s", pem)
    return str(pem)


def _make_selfsigned():
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


class Client:
    """One connected user: their handle, nick and address."""
    __slots__ = ("hdl", "nick", "addr", "tls", "joined")

    def __init__(self, hdl, nick, addr):
        self.hdl = hdl
        self.nick = nick
        self.addr = addr
        self.tls = False
        self.joined = False


class ChatServer:
    """The chat room: accepts connections and routes lines between clients."""

    def __init__(self, host, port, tls_ctx, max_line, idle_timeout, wbuf_max):
        self.tls_ctx = tls_ctx
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.wbuf_max = wbuf_max
        self.clients = {}  # Handle -> Client
        self.serial = 0
        self.listener = tcp_server(host, port, self.accept)

    # -- connection life -------------------------------------------------------

    def accept(self, fh, host, port):
        self.serial += 1
        addr = "%s:%s" % (host, port)
        hdl = Handle(
            fh=fh, rbuf_max=self.max_line, wbuf_max=self.wbuf_max,
            timeout=self.idle_timeout, on_timeout=self.on_idle,
            on_error=self.on_error, on_eof=self.on_eof, on_starttls=self.on_starttls,
            linger=SHUTDOWN_GRACE,
        )
        client = self.clients[hdl] = Client(hdl, "guest%d" % self.serial, addr)
        log.info("connect %s", addr)
        # TLS and plain text share the port: look at the first bytes; a
        # client that says nothing for a moment is taken to speak plain text.
        sniff = AE.timer(TLS_SNIFF_DELAY, 0, lambda: self.sniff_expired(client))
        hdl.push_read("tls_detect", lambda h, kind, *version: self.detected(client, sniff, kind))

    def sniff_expired(self, client):
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

    def detected(self, client, sniff, kind):
        sniff.cancel()
        if client.joined:
            return
        if kind:
            client.tls = True
            client.hdl.starttls("accept", self.tls_ctx)
        else:
            self.join(client)

    def on_starttls(self, hdl, ok, message):
        client = self.clients.get(hdl)
        if client is None:
            return
        if ok:
            self.join(client)
        else:
            log.info("TLS failed for %s: %s", client.addr, message)
            self.drop(client, None)

    def join(self, client):
        if client.joined or client.hdl not in self.clients:
            return
        client.joined = True
        self.send(client, "* Welcome to the anyevent chat%s. You are %s. Type /help for commands."
                  % (" (TLS)" if client.tls else "", client.nick))
        self.broadcast("* %s has joined" % client.nick, skip=client)
        client.hdl.push_read("line", self.on_line)

    def drop(self, client, notice):
        """Forget ``client``; tell the others ``notice`` if given."""
        if self.clients.pop(client.hdl, None) is None:
            return
        log.info("disconnect %s (%s)", client.addr, notice or "closed")
        if notice and client.joined:
            self.broadcast(notice)
        client.hdl.destroy()  # queued output still lingers out

    def on_eof(self, hdl):
        client = self.clients.get(hdl)
        if client is not None:
            self.drop(client, "* %s has left" % client.nick)

    def on_idle(self, hdl):
        client = self.clients.get(hdl)
        if client is not None:
            self.send_last(client, "* Idle for %g seconds, disconnecting." % self.idle_timeout)
            self.drop(client, "* %s timed out" % client.nick)

    def line_too_long(self, rbuf):
        """True if ``rbuf`` starts with more than --max-line bytes and no
        newline (rather than holding many short lines not yet answered)."""
        return len(rbuf) > self.max_line and rbuf.find(b"\n", 0, self.max_line + 1) < 0

    def on_error(self, hdl, fatal, message):
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

    def on_line(self, hdl, data, eol):
        client = self.clients.get(hdl)
        if client is None:
            return
        hdl.push_read("line", self.on_line)
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

    def cmd_nick(self, client, name):
        if not NICK_RE.match(name):
            self.send(client, "* Usage: /nick NAME (1-32 letters, digits, _-[]{}^|)")
        elif any(c.nick.lower() == name.lower() for c in self.clients.values() if c is not client):
            self.send(client, "* Nick %s is already taken" % name)
        else:
            old, client.nick = client.nick, name
            log.info("nick %s -> %s (%s)", old, name, client.addr)
            self.send(client, "* You are now known as %s" % name)
            self.broadcast("* %s is now known as %s" % (old, name), skip=client)

    def cmd_who(self, client, arg):
        nicks = sorted(c.nick for c in self.clients.values() if c.joined)
        self.send(client, "* Here: %s" % ", ".join(nicks))

    def cmd_me(self, client, action):
        self.broadcast("* %s %s" % (client.nick, action), skip=client)

    def cmd_help(self, client, arg):
        for line in HELP:
            self.send(client, line)

    def cmd_quit(self, client, arg):
        self.send_last(client, "* Bye, %s!" % client.nick)
        self.drop(client, "* %s has left" % client.nick)

    COMMANDS = {"/nick": cmd_nick, "/who": cmd_who, "/me": cmd_me,
                "/help": cmd_help, "/quit": cmd_quit}

    def send(self, client, text):
        client.hdl.push_write(text.encode("utf-8") + b"\n")

    def send_last(self, client, text):
        """Send the last line before closing; TLS clients then get a close_notify."""
        self.send(client, text)
        if client.tls:
            client.hdl.stoptls()

    def broadcast(self, text, skip=None):
        data = text.encode("utf-8") + b"\n"
        for client in list(self.clients.values()):
            if client is not skip and client.joined:
                client.hdl.push_write(data)

    # -- shutdown ------------------------------------------------------------------

    def shutdown(self, signame):
        """Say goodbye to everyone, wait (bounded) until it is written, then return."""
        log.info("caught SIG%s, shutting down", signame)
        self.listener = None
        # from now on lines, timeouts and errors find no client and are ignored
        clients, self.clients = list(self.clients.values()), {}
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
        done.end()
        limit = AE.timer(SHUTDOWN_GRACE, 0, done.send)
        done.recv()

    @staticmethod
    def _said_goodbye(hdl, done):
        """The goodbye is written (or the client is gone): count it done, once."""
        hdl.on_error(lambda *args: None)
        hdl.push_shutdown()  # also replaces this on_drain callback
        done.end()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--cert", help="PEM file with certificate and key (default: self-signed)")
    parser.add_argument("--max-line", type=int, default=4096, help="longest line in bytes")
    parser.add_argument("--idle-timeout", type=float, default=600, help="seconds")
    parser.add_argument("--wbuf-max", type=int, default=1 << 20,
                        help="bytes queued to a client before it is dropped as too slow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tls_ctx = TLS(cert_file=args.cert or default_cert())
    server = ChatServer(args.host, args.port, tls_ctx, args.max_line, args.idle_timeout,
                        args.wbuf_max)
    log.info("chat server listening on %s:%d (plain and TLS)", args.host, args.port)
    stop = AE.cv()
    sigs = [AE.signal(name, lambda name=name: stop.send(name)) for name in ("INT", "TERM")]
    server.shutdown(stop.recv())
    return 0


if __name__ == "__main__":
    sys.exit(main())
