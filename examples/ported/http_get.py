#!/usr/bin/env python3
# HTTP/1.0 GET requests on AnyEvent::Handle's read queue.  Twin: http_get.pl.
# usage: python3 http_get.py HOST PORT PATH...
from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any, Callable

from anyevent import AE
from anyevent.handle import Handle

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

handles: set[Handle] = set()  # open connections: this set is what keeps each handle alive

def http_get(host: str, port: str, uri: str, cb: Callable[..., object]) -> None:

    # store results here
    response, header, body = b"", b"", b""

    def on_error(handle: Handle, fatal: bool, message: str) -> None:
        cb(b"HTTP/1.0 500 " + os.strerror(handle.errno).encode())  # hdl.errno is $!
        handles.discard(handle)
        handle.destroy()  # explicitly destroy handle
    def on_eof(handle: Handle) -> None:
        cb(response, header, body)
        handles.discard(handle)
        handle.destroy()  # explicitly destroy handle
    handle = Handle(
        connect=(host, port),
        on_error=on_error,
        on_eof=on_eof)
    handles.add(handle)

    handle.push_write(b"GET " + uri.encode() + b" HTTP/1.0\015\012\015\012")

    # now fetch response status line
    def got_status(handle: Handle, line: bytes, eol: bytes) -> None:
        nonlocal response
        response = line
    handle.push_read("line", got_status)

    # then the headers
    def got_header(handle: Handle, line: bytes, eol: bytes) -> None:
        nonlocal header
        header = line
    handle.push_read("line", b"\015\012\015\012", got_header)

    # and finally handle any remaining data as body
    def got_body(handle: Handle) -> None:
        nonlocal body
        body += handle.rbuf
        del handle.rbuf[:]
    handle.on_read(got_body)

host, port, *uris = sys.argv[1:]
result: dict[str, Any] = {}

# all requests in parallel; begin/end count the outstanding ones
done = AE.cv()
for uri in uris:
    done.begin()
    def got(*answer: Any, uri: str = uri) -> None:
        result[uri] = answer
        done.end()
    http_get(host, port, uri, got)
done.recv()

# print the answers in the order of the arguments
for uri in uris:
    response, header, body = (result[uri] + (None, None))[:3]
    print("== %s\n%s" % (uri, response.decode()))
    if header is None: continue
    header = dict((m[1].lower(), m[2]) for m in map(re.compile(r"([^:]+):\s*(.*)").match, header.decode().split("\015\012")) if m)
    for name in [n for n in ("content-type", "content-length") if n in header]: print("%s: %s" % (name, header[name]))
    first = body.decode().split("\n")[0][:40]  # at most 40 characters of the first line
    print("body (%d bytes): %s" % (len(body), first))
