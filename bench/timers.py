"""100,000 one-shot timers spread over 0.5 s: anyevent's loop against asyncio, same run.

Measures (best of several rounds):
  * creation rate (timers created per second, watchers kept in a list);
  * time from the first creation until the last timer fired (all delays < 0.5 s);
  * create+cancel rate (each timer cancelled right after creation).
Prints a Markdown table; exits 1 when a target from issue 2 is missed.
"""

import asyncio
import random
import sys
from time import perf_counter

import _common  # noqa: F401  (puts the repository on sys.path)
from _common import Table, best_of

from anyevent import AE

N = 100_000
SPREAD = 0.5
ROUNDS = 5


def _delays():
    rnd = random.Random(2)
    return [rnd.random() * SPREAD for _ in range(N)]


def _noop():
    pass


# -- anyevent -----------------------------------------------------------------

def ae_create(delays):
    timer = AE.timer
    ws = []
    append = ws.append
    t0 = perf_counter()
    for d in delays:
        append(timer(d, 0, _noop))
    elapsed = perf_counter() - t0
    del ws
    return elapsed


def ae_create_cancel(delays):
    timer = AE.timer
    for d in delays:
        timer(d, 0, _noop).cancel()


def ae_all_fired(delays):
    left = len(delays)
    cv = AE.cv()

    def cb():
        nonlocal left
        left -= 1
        if not left:
            cv.send()

    timer = AE.timer
    AE.now_update()
    t0 = perf_counter()
    ws = [timer(d, 0, cb) for d in delays]
    cv.recv()
    del ws
    return perf_counter() - t0


# -- asyncio ------------------------------------------------------------------

def aio_create(loop, delays):
    call_later = loop.call_later
    hs = []
    append = hs.append
    t0 = perf_counter()
    for d in delays:
        append(call_later(d, _noop))
    elapsed = perf_counter() - t0
    for h in hs:
        h.cancel()
    loop.run_until_complete(asyncio.sleep(0))  # let asyncio purge its heap
    return elapsed


def aio_create_cancel(loop, delays):
    call_later = loop.call_later
    for d in delays:
        call_later(d, _noop).cancel()


def aio_all_fired(loop, delays):
    left = len(delays)
    done = loop.create_future()

    def cb():
        nonlocal left
        left -= 1
        if not left:
            done.set_result(None)

    call_later = loop.call_later
    t0 = perf_counter()
    hs = [call_later(d, cb) for d in delays]
    loop.run_until_complete(done)
    del hs
    return perf_counter() - t0


def main():
    delays = _delays()
    loop = asyncio.new_event_loop()

    ours = min(ae_create(delays) for _ in range(ROUNDS))
    theirs = min(aio_create(loop, delays) for _ in range(ROUNDS))

    def aio_cc():
        aio_create_cancel(loop, delays)
        loop.run_until_complete(asyncio.sleep(0))
    cc_ours = best_of(ROUNDS, lambda: ae_create_cancel(delays))
    cc_theirs = best_of(ROUNDS, aio_cc)

    fired_ours = min(ae_all_fired(delays) for _ in range(2))
    fired_theirs = min(aio_all_fired(loop, delays) for _ in range(2))
    loop.close()

    table = Table("timers: %d timers, delays spread over %.1f s" % (N, SPREAD))
    table.add("creation rate", N / ours, N / theirs, "higher", 1.5, "/s")
    table.add("all fired after", fired_ours, fired_theirs, "lower",
              ("≤ 0.55 s", lambda v: v <= 0.55), "s")
    table.add("create+cancel rate", N / cc_ours, N / cc_theirs, "higher", 1.5, "/s")
    return table.print()


if __name__ == "__main__":
    sys.exit(main())
