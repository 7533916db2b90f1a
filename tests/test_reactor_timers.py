"""Timers, postpone, idle and the loop's clock (AnyEvent t/01_basic.t, t/09_multi.t)."""

import time

import pytest

from anyevent import AE, AnyEvent, loop

from conftest import Bits, own_loop_only

NOW = "now() is the current time (asyncio caches no iteration time)"


@pytest.mark.filterwarnings("ignore:the timer watcher made here was dropped")  # (on purpose)
def test_basic_timer_fires_and_unstored_timer_never_does():
    # t/01_basic.t: the stored 0.1 s timer fires, the unstored 1 s one is gone
    out = []
    cv = AnyEvent.condvar()
    t1 = AnyEvent.timer(after=0.05, cb=lambda: (out.append("t1"), cv.send()))
    AnyEvent.timer(after=0.01, cb=lambda: out.append("dropped"))
    cv.recv()
    never = AE.cv()
    guard = AE.timer(0.05, 0, never)
    never.recv()
    assert out == ["t1"]
    del t1, guard


def test_dropped_and_cancelled_watchers_never_fire():
    out = []
    w = AE.timer(0, 0, lambda: out.append("del"))
    del w
    w2 = AE.timer(0, 0, lambda: out.append("cancel"))
    w2.cancel()
    w2.cancel()  # twice is harmless
    cv = AE.cv()
    t = AE.timer(0.03, 0, cv)
    cv.recv()
    assert out == []
    del t


def test_three_timers_all_fire():
    # t/09_multi.t, last block
    bits = Bits(AE.cv())
    cv = bits.cv
    guard = AE.timer(1, 0, cv)
    cv.begin()
    wa = AE.timer(0, 0, bits.cb(1))
    cv.begin()
    wb = AE.timer(0, 0, bits.cb(2))
    cv.begin()
    wc = AE.timer(0.01, 0, bits.cb(4))
    cv.recv()
    assert bits.value == 7
    del guard, wa, wb, wc


def test_order_by_deadline_then_creation():
    out = []
    cv = AE.cv()
    ws = [AE.timer(0.04, 0, lambda: (out.append("late"), cv.send())),
          AE.timer(0.02, 0, lambda: out.append("mid")),
          AE.timer(0, 0, lambda: out.append("zero-a")),
          AE.timer(0, 0, lambda: out.append("zero-b")),
          AE.timer(-1, 0, lambda: out.append("negative"))]
    cv.recv()
    assert out == ["negative", "zero-a", "zero-b", "mid", "late"]
    del ws


@own_loop_only(NOW)
def test_after_counts_from_cached_now():
    # as in Perl, "after" counts from the loop's cached time: after a long
    # computation the timer is already due unless now_update() is called.
    AE.now_update()
    time.sleep(0.05)
    created = time.monotonic()
    cv = AE.cv()
    t = AE.timer(0.05, 0, lambda: cv.send(time.monotonic()))
    assert cv.recv() - created < 0.04
    AE.now_update()
    created = time.monotonic()
    cv = AE.cv()
    t = AE.timer(0.05, 0, lambda: cv.send(time.monotonic()))
    assert cv.recv() - created >= 0.049
    del t


@own_loop_only(NOW)
def test_now_time_and_now_update():
    assert abs(AE.time() - time.time()) < 0.01
    AE.now_update()
    a = AE.now()
    assert abs(a - time.time()) < 0.01
    time.sleep(0.02)
    assert AE.now() == a  # cached
    AE.now_update()
    assert AE.now() - a >= 0.019


@own_loop_only("the first tick waits for asyncio's timer, up to a clock tick late, so the 2 ms bound on early slip does not hold")
def test_interval_timer_does_not_drift():
    # each tick takes 4 ms of work; a timer rescheduled from "now" would slip
    # 20 * 4 ms = 80 ms, one scheduled from its due time stays on the grid.
    ticks = []
    cv = AE.cv()
    ival = 0.01

    def tick():
        ticks.append(time.monotonic())
        time.sleep(0.004)
        if len(ticks) == 20:
            cv.send()

    w = AE.timer(ival, ival, tick)
    cv.recv()
    del w
    slip = ticks[-1] - ticks[0] - 19 * ival
    assert -0.002 < slip < 0.04, slip


@own_loop_only("an asyncio iteration is not one of our iterations")
def test_interval_timer_far_behind_runs_once_per_iteration():
    # a periodic timer due many times over must not monopolise one iteration
    count = 0

    def tick():
        nonlocal count
        count += 1

    w = AE.timer(0, 1e-6, tick)
    time.sleep(0.01)
    loop.one_event()
    assert count == 1
    loop.one_event()
    assert count == 2
    del w


def test_cancel_in_callback_and_heap_compaction_while_running():
    # cancelling many timers from inside a timer callback rebuilds the heap
    # in place; the periodic timer and the later one must survive it.
    out = []
    cv = AE.cv()
    many = [AE.timer(10, 0, lambda: out.append("bad")) for _ in range(600)]

    def first():
        out.append("first")
        many.clear()  # 600 cancellations -> compaction

    ticks = 0

    def periodic():
        nonlocal ticks
        ticks += 1
        if ticks == 3:
            cv.send()

    a = AE.timer(0, 0, first)
    p = AE.timer(0, 0.01, periodic)
    cv.recv()
    assert out == ["first"] and ticks == 3
    del a, p


def test_postpone_order_against_zero_timers():
    # as in Perl, postponed callbacks run from a zero timer made by the first postpone
    out = []
    cv = AE.cv()
    t1 = AE.timer(0, 0, lambda: out.append("timer-before"))
    AE.postpone(lambda: out.append("p1"))
    t2 = AE.timer(0, 0, lambda: out.append("timer-after"))

    def p2():
        out.append("p2")
        AE.postpone(lambda: out.append("p3"))  # joins the running batch

    AE.postpone(p2)
    t3 = AE.timer(0.01, 0, cv)
    cv.recv()
    assert out == ["timer-before", "p1", "p2", "p3", "timer-after"]
    del t1, t2, t3


@own_loop_only("idle watchers run between asyncio iterations in which none of our callbacks ran, not when the poll finds nothing")
def test_idle_runs_only_when_nothing_else_is_pending():
    out = []
    cv = AE.cv()
    idle = AE.idle(lambda: out.append("idle"))
    t = AE.timer(0.02, 0, lambda: (out.append("timer"), cv.send()))
    cv.recv()
    assert out[-1] == "timer" and out.count("idle") > 1
    # a readable fd keeps the loop busy: idle stays quiet
    import socket
    a, b = socket.socketpair()
    b.send(b"x")
    seen = []
    io = AE.io(a, 0, lambda: seen.append("io"))
    out.clear()
    for _ in range(5):
        loop.one_event()
    assert seen == ["io"] * 5 and out == []
    del io, idle, t
    a.close()
    b.close()


def test_idle_watcher_dropped_stops():
    n = 0

    def cb():
        nonlocal n
        n += 1
        if n == 3:
            w.cancel()

    w = AE.idle(cb)
    cv = AE.cv()
    t = AE.timer(0.02, 0, cv)
    cv.recv()
    assert n == 3
    del t


def test_timer_facade_keyword_defaults():
    cv = AE.cv()
    w = AnyEvent.timer(cb=cv)  # after defaults to 0
    cv.recv()
    with pytest.raises(TypeError):
        AnyEvent.timer(after=1)  # cb is required
    del w
