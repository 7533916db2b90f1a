#!/usr/bin/env python3
# Timers and condition variables.  Twin: timers.pl (same lines, same order).
# usage: python3 timers.py
from __future__ import annotations

import signal
import sys
from typing import Any

from anyevent import AE

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

# 1. a one-shot timer and a condvar to wait for it
cv = AE.cv()
def fired() -> None:
    print("one-shot timer fired")
    cv.send("done waiting", 42)  # recv gets both values
once = AE.timer(0.05, 0, fired)
print("waiting...")
what, number = cv.recv()
print("recv returned: %s, %s" % (what, number))

# 2. a periodic timer that stops itself after three ticks
ticks = 0
ticked = AE.cv()
def on_tick() -> None:
    global ticks, tick
    ticks += 1
    print("tick %d" % ticks)
    if ticks == 3:
        tick = None  # the watcher is gone: no more ticks
        ticked.send()
tick = AE.timer(0, 0.02, on_tick)
ticked.recv()

# 3. jobs in parallel: begin/end counts them, the begin callback sends
order: list[float] = []
all_ = AE.cv()
all_.begin(lambda cv: cv.send(len(order)))
timers: list[Any] = []
for delay in (0.03, 0.01, 0.02):
    all_.begin()
    def job_done(delay: float = delay) -> None:  # bind this iteration's value (Perl's "my")
        order.append(delay)
        all_.end()
    timers.append(AE.timer(delay, 0, job_done))
all_.end()  # all jobs are started
count = all_.recv()
print("%d jobs finished in this order: %s" % (count, " ".join(map(str, order))))

# 4. a condvar with a callback, and postponed code
later = AE.cv(lambda cv: print("callback got:", cv.recv()))
AE.postpone(lambda: print("postponed code runs first"))
send_later = AE.timer(0.01, 0, lambda: later.send("late value"))
later.recv()

# 5. croak: recv raises the error
failing = AE.cv()
fail = AE.timer(0.01, 0, lambda: failing.croak("no luck\n"))
try: failing.recv()
except Exception as err: print("recv died:", str(err).split("\n")[0])  # no " at line..." here
print("all done")
