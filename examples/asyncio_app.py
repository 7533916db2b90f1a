#!/usr/bin/env python3
"""The chat server (examples/chat_server.py) and an asyncio HTTP status
endpoint in one process, on one asyncio loop.

Usage: asyncio_app.py [chat_server.py's options] [--status-port 8080]

The chat server is unchanged anyevent code (tcp_server, Handle, TLS, timers,
signals); it is created inside a coroutine, so its first watcher finds the
running asyncio loop and anyevent picks the ``asyncio`` model (or uvloop's
loop with ``ANYEVENT_MODEL=uvloop``).  Next to it, stdlib asyncio streams
serve ``GET /status`` on ``--status-port`` as JSON::

    {"model": "asyncio", "clients": 2, "nicks": ["ann", "bob"], "uptime": 12.5}

A coroutine waits for SIGINT/SIGTERM with ``await stop`` (an anyevent
condvar fed by ``AE.signal``); then the status server closes and the chat
server says goodbye to everyone: ``ChatServer.shutdown`` blocks in
``cv.recv()``, which on the asyncio model runs the asyncio loop until the
goodbyes are out (allowed because the loop is not running at that moment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # chat_server, beside this file
try:  # the installed package; else the one of the clone this file is in
    import anyevent  # noqa: F401
except ImportError:
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import chat_server  # noqa: E402
from anyevent import AE, AnyEvent  # noqa: E402
from anyevent.tls import TLS  # noqa: E402

log = logging.getLogger("chat")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """chat_server.py's options plus ``--status-port``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    status_port = 8080
    if "--status-port" in argv:
        at = argv.index("--status-port")
        status_port = int(argv[at + 1])
        del argv[at:at + 2]
    args = chat_server.parse_args(argv)
    args.status_port = status_port
    return args


class StatusEndpoint:
    """``GET /status``: the chat room as JSON; anything else is a 404."""

    def __init__(self, chat: chat_server.ChatServer) -> None:
        self.chat = chat
        self.started = time.monotonic()

    def status(self) -> dict[str, Any]:
        nicks = sorted(c.nick for c in self.chat.clients.values() if c.joined)
        return {"model": AnyEvent.MODEL, "clients": len(self.chat.clients), "nicks": nicks,
                "uptime": round(time.monotonic() - self.started, 3)}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path = request.split(b" ", 2)[:2]
            if method == b"GET" and path == b"/status":
                code, body = "200 OK", json.dumps(self.status()).encode() + b"\n"
            else:
                code, body = "404 Not Found", b"not found\n"
            writer.write(("HTTP/1.0 %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\nConnection: close\r\n\r\n"
                          % (code, len(body))).encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError,
                ConnectionError) as exc:
            log.info("status request failed: %s", exc)
        finally:
            writer.close()


async def serve(args: argparse.Namespace) -> tuple[chat_server.ChatServer, str]:
    """Start both servers; return the chat server and the signal's name once
    SIGINT or SIGTERM arrives (the status server is closed by then)."""
    tls_ctx = TLS(cert_file=args.cert or chat_server.default_cert())
    chat = chat_server.ChatServer(args, tls_ctx)  # the first watcher: the asyncio model
    status = await asyncio.start_server(StatusEndpoint(chat).serve, args.host,
                                        args.status_port)
    log.info("chat server listening on %s:%d (plain and TLS), status on http://%s:%d/status"
             " (model %s)", args.host, args.port, args.host, args.status_port,
             AnyEvent.MODEL)
    stop = AE.cv()
    sigs = [AE.signal(name, partial(stop.send, "SIG" + name)) for name in ("INT", "TERM")]
    signame: str = await stop
    del sigs
    status.close()
    await status.wait_closed()
    return chat, signame


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    aio: asyncio.AbstractEventLoop
    if os.environ.get("ANYEVENT_MODEL") == "uvloop":
        import uvloop
        aio = uvloop.new_event_loop()
    else:
        aio = asyncio.new_event_loop()
    asyncio.set_event_loop(aio)
    try:
        chat, signame = aio.run_until_complete(serve(args))
        chat.shutdown(signame)  # cv.recv() inside runs `aio` until the goodbyes are out
    finally:
        aio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
