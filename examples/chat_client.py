#!/usr/bin/env python3
"""A terminal client for chat_server.py: stdin through one Handle, the server through another.

Usage: chat_client.py [--host 127.0.0.1] [--port 5555] [--tls [--cafile PEM | --insecure]]

With ``--tls`` the server's certificate is verified, for the name given to ``--host``:
against the system's CAs by default (a Handle without ``tls_ctx``), or against
``--cafile``: the server's own certificate file for a self-signed one (chat_server.py
keeps the one it makes in ``~/.cache/anyevent-chat/selfsigned.pem``), or the CA that
signed it.  ``--insecure`` accepts any certificate (Perl's AnyEvent::TLS default):
encrypted, but anyone in the middle can read along.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any, Sequence

try:  # the installed package; else the one of the clone this file is in
    import anyevent  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anyevent import AE  # noqa: E402
from anyevent.handle import Handle  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--tls", action="store_true",
                        help="talk TLS, verifying the server's certificate")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="PEM",
                       help="trust the certificates in PEM (the server's own certificate "
                            "file, or its CA) instead of the system's CAs")
    trust.add_argument("--insecure", action="store_true",
                       help="accept any server certificate (no verification)")
    args = parser.parse_args(argv)
    if (args.cafile or args.insecure) and not args.tls:
        parser.error("--cafile and --insecure need --tls")
    tls_ctx: dict[str, Any] | None
    if args.insecure:
        tls_ctx = {"verify": 0}                # Perl's default: encrypted, not authenticated
    elif args.cafile:
        tls_ctx = {"verify": 1, "verify_peername": "https", "ca_file": args.cafile}
    else:
        tls_ctx = None                         # the default: the system's CAs, the host name

    done = AE.cv()
    out = sys.stdout.buffer

    def show(hdl: Handle, line: bytes, eol: bytes) -> None:
        out.write(line + b"\n")
        out.flush()
        hdl.push_read("line", show)

    def server_error(hdl: Handle, fatal: bool, msg: str) -> None:
        # a line read is always queued, so the server closing the connection
        # shows up as EPIPE rather than on_eof (as in Perl)
        done.send(None if hdl.errno == errno.EPIPE else "connection error: %s" % msg)

    server = Handle(
        connect=(args.host, args.port),
        tls="connect" if args.tls else None,
        tls_ctx=tls_ctx,
        on_connect_error=lambda hdl, msg: done.send("cannot connect: %s" % msg),
        on_error=server_error,
    )
    server.push_read("line", show)

    def typed(hdl: Handle, line: bytes, eol: bytes) -> None:
        server.push_write(line + b"\n")
        hdl.push_read("line", typed)

    def stdin_closed(hdl: Handle) -> None:
        server.push_write(b"/quit\n")

    keyboard = Handle(fh=sys.stdin.fileno(), close_fh=False, on_eof=stdin_closed,
                      on_error=lambda hdl, fatal, msg: stdin_closed(hdl))
    keyboard.push_read("line", typed)
    ctrl_c = AE.signal("INT", lambda: done.send(None))  # Ctrl-C quits, no traceback
    problem = done.recv()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
