"""One byte back and forth over a socketpair: anyevent io watchers against asyncio add_reader.

Each side has a read watcher; when its byte arrives it sends one byte back.
Reports round trips per second (best of several rounds) and the ratio.
Exits 1 when the issue-2 target (≥ 1.2× asyncio) is missed.
"""

import asyncio
import socket
import sys
from time import perf_counter

import _common  # noqa: F401  (puts the repository on sys.path)
from _common import Table

from anyevent import AE

TRIPS = 50_000
ROUNDS = 7


def _pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def ae_pingpong(trips):
    a, b = _pair()
    left = trips
    cv = AE.cv()

    def on_a():
        nonlocal left
        a.recv(1)
        left -= 1
        if left:
            a.send(b"x")
        else:
            cv.send()

    def on_b():
        b.recv(1)
        b.send(b"x")

    wa = AE.io(a, 0, on_a)
    wb = AE.io(b, 0, on_b)
    t0 = perf_counter()
    a.send(b"x")
    cv.recv()
    elapsed = perf_counter() - t0
    del wa, wb
    a.close()
    b.close()
    return elapsed


def aio_pingpong(loop, trips):
    a, b = _pair()
    left = trips
    done = loop.create_future()

    def on_a():
        nonlocal left
        a.recv(1)
        left -= 1
        if left:
            a.send(b"x")
        else:
            done.set_result(None)

    def on_b():
        b.recv(1)
        b.send(b"x")

    loop.add_reader(a, on_a)
    loop.add_reader(b, on_b)
    t0 = perf_counter()
    a.send(b"x")
    loop.run_until_complete(done)
    elapsed = perf_counter() - t0
    loop.remove_reader(a)
    loop.remove_reader(b)
    a.close()
    b.close()
    return elapsed


def main():
    _common.check_core()
    loop = asyncio.new_event_loop()
    ours = theirs = float("inf")
    for _ in range(ROUNDS):  # interleaved, so both see the same machine load
        ours = min(ours, ae_pingpong(TRIPS))
        theirs = min(theirs, aio_pingpong(loop, TRIPS))
    loop.close()
    table = Table("pingpong: one byte over a socketpair, %d round trips" % TRIPS)
    table.add("round trips", TRIPS / ours, TRIPS / theirs, "higher", 1.2, "/s")
    return table.print()


if __name__ == "__main__":
    sys.exit(main())
