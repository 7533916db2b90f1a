#!/usr/bin/env python3
# A parallel finger client on tcp_connect and an io watcher.  Twin: finger.pl.
# usage: python3 finger.py HOST PORT USER...
from __future__ import annotations

import signal
import socket
import sys
from typing import Any

from anyevent import AE
from anyevent.socket import tcp_connect, last_error

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

def finger(user: str, host: str, port: str) -> Any:

    # use a condvar to return results
    cv = AE.cv()

    # connect, keeping the guard until the callback has run
    connecting: Any
    read_watcher: Any

    def connected(fh: socket.socket | None = None, *rest: object) -> None:
        nonlocal connecting
        connecting = None  # the attempt is over, one way or the other

        # the callback receives the socket - or nothing, and the reason in last_error()
        if fh is None:
            return cv.send("%s: %s\n" % (host, last_error().strerror))  # type: ignore[union-attr]

        # now write the user name
        fh.send(user.encode() + b"\015\012")

        response = b""

        # register a read watcher
        def readable() -> None:
            nonlocal response, read_watcher
            try: data = fh.recv(1024)
            except BlockingIOError: return  # spurious wake-up: wait more
            except OSError: data = b""  # an error: treat it like EOF
            response += data
            if not data:
                # we are done, or an error occurred, lets ignore the latter
                read_watcher = None  # no longer interested
                cv.send(response.decode())  # send results
        read_watcher = AE.io(fh, 0, readable)
    connecting = tcp_connect(host, port, connected)

    # pass cv to the caller
    return cv

host, port, *users = sys.argv[1:]

# start all requests at once ...
requests = [(user, finger(user, host, port)) for user in users]

# ... then wait for the answers in turn
for user, cv in requests:
    response = cv.recv()
    response = response.replace("\015\012", "\n")
    print("== %s\n%s" % (user, response), end="")
