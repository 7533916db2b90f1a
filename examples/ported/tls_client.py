#!/usr/bin/env python3
# A TLS client on AnyEvent::Handle that checks the server's certificate.
# Twin: tls_client.pl.
# usage: python3 tls_client.py HOST PORT [CA_FILE]   (no CA_FILE: the system's CAs)
from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from anyevent import AE
from anyevent.handle import Handle

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

host, port, ca_file = (sys.argv[1:] + [None])[:3]

done = AE.cv()

def on_connect(hdl: Handle, peerhost: str, peerport: int, retry: Callable[[], None]) -> None:

    print("connected to %s:%s" % (peerhost, peerport))

def on_starttls(hdl: Handle, success: bool, message: str) -> None:

    if not success:
        print("tls_client: %s" % message, file=sys.stderr)  # the TLS library's words: not compared
        print("TLS handshake failed")
        hdl.destroy()
        return done.send()
    # hdl.tls is the TLS session: ask it for the server's certificate
    cert = hdl.tls.get_peer_certificate(as_cryptography=True)
    print("TLS established, server certificate for",
          "".join("/%s=%s" % (a.rfc4514_attribute_name, a.value) for a in cert.subject))

def on_error(hdl: Handle, fatal: bool, message: str) -> None:

    print("error: %s" % os.strerror(hdl.errno))
    hdl.destroy()
    done.send()

def on_eof(hdl: Handle) -> None:

    print("the server closed the connection")
    hdl.destroy()
    done.send()

hdl = Handle(
    connect=(host, port),  # type: ignore[arg-type]  # HOST and PORT are given
    tls="connect",
    # Perl's defaults check nothing (the port's default checks the system's
    # CAs and the host); this is the secure setting (plus our CA)
    tls_ctx={"verify": 1, "verify_peername": "https", "ca_file": ca_file},
    on_connect=on_connect,
    on_starttls=on_starttls,
    on_error=on_error,
    on_eof=on_eof)

# the request goes out as soon as the handshake is done
hdl.push_write(b"hello server\015\012")

# print each line the server sends (a read still queued at EOF would be
# an EPIPE error instead of on_eof, so queue one only when data is there)
def print_line(hdl: Handle, line: bytes, eol: bytes) -> None:

    print("server says: %s" % line.decode())
hdl.on_read(lambda hdl: hdl.push_read("line", print_line))

done.recv()
