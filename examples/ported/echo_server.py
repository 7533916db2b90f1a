#!/usr/bin/env python3
# A line echo server on tcp_server and AnyEvent::Handle.  Twin: echo_server.pl.
# usage: python3 echo_server.py [HOST [PORT]]   (default 127.0.0.1, any free port)
# Prints "listening on HOST:PORT" first; SIGTERM or SIGINT stops it.
from __future__ import annotations

import socket
import sys
from typing import Any

from anyevent import AE
from anyevent.socket import tcp_server
from anyevent.handle import Handle

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = sys.argv[2] if len(sys.argv) > 2 else 0

clients: set[Handle] = set()  # the open connections: this set is what keeps each handle alive
served = 0

# a client is done: say why, forget it
# (a handle is typed Any where we keep our own data in it, as Perl does in its hash)
def gone(hdl: Any, why: str) -> None:

    print("%s: %s after %d lines" % (hdl.name, why, hdl.lines))
    clients.discard(hdl)
    hdl.destroy()

# one line arrived: answer it, or say goodbye
def got_line(hdl: Any, line: bytes, eol: bytes) -> None:

    if line == b"quit":
        hdl.push_write(b"bye\015\012")
        hdl.push_shutdown()  # EOF to the client once "bye" is written
        return
    hdl.lines += 1
    hdl.push_write(b"%d: %s\015\012" % (hdl.lines, line))

def accepted(fh: socket.socket, peerhost: str, peerport: int) -> None:
    global served

    hdl: Any = Handle(
        fh=fh,
        rbuf_max=1024,  # a longer line is a fatal error (ENOSPC)
        on_error=lambda hdl, fatal, message: gone(hdl, "error (%s)" % message),
        on_eof=lambda hdl: gone(hdl, "eof"))
    served += 1; hdl.name = "client %d" % served  # our own data, kept in the handle
    hdl.lines = 0
    clients.add(hdl)
    print("%s: connected" % hdl.name)

    hdl.push_write(b"hello %s\015\012" % hdl.name.encode())

    # whenever data arrives, put a line read at the front of the queue
    hdl.on_read(lambda hdl: hdl.unshift_read("line", got_line))

def prepare(fh: socket.socket, thishost: str, thisport: int) -> int:
    global host, port; host, port = thishost, thisport  # the address really bound (port 0: any free one)
    return 0  # the default listen queue
server: Any = tcp_server(host, port, accepted, prepare)
print("listening on %s:%s" % (host, port))

# run until a signal asks us to stop
stop = AE.cv()
sigterm = AE.signal("TERM", lambda: stop.send("TERM"))
sigint = AE.signal("INT", lambda: stop.send("INT"))
signal = stop.recv()

server = None  # stop listening
print("SIG%s: stopping, %d clients still connected" % (signal, len(clients)))
