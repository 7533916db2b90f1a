"""Signal watchers (AnyEvent t/02_signals.t and the signal part of t/09_multi.t)."""

import os
import signal
import time

import pytest

from anyevent import AE, AnyEvent, loop

from conftest import Bits, settle, own_loop_only




@own_loop_only("uvloop keeps SIGCHLD for its subprocesses (a watcher of it is refused)",
               models=("uvloop",))
def test_signal_delivered_then_watcher_gone_like_02_signals():
    out = []
    cv = AnyEvent.condvar()
    sw = AnyEvent.signal(signal="CHLD", cb=lambda: (out.append("got"), cv.send()))
    os.kill(os.getpid(), signal.SIGCHLD)
    cv.recv()
    del sw
    os.kill(os.getpid(), signal.SIGCHLD)  # default disposition: ignored
    settle(0.02)
    assert out == ["got"]


def test_two_watchers_one_signal_like_09_multi():
    bits = Bits(AE.cv())
    cv = bits.cv
    guard = AE.timer(0.1, 0, cv)
    cv.begin()
    wa = AE.signal("INT", bits.cb(1))
    cv.begin()
    wb = AE.signal("SIGINT", bits.cb(2))
    cv.recv()
    assert bits.value == 0
    os.kill(os.getpid(), signal.SIGINT)
    cv = bits.cv = AE.cv()
    guard = AE.timer(0.1, 0, cv)
    cv.recv()
    assert bits.value == 3
    cv = bits.cv = AE.cv()
    guard = AE.timer(0.1, 0, cv)
    bits.value = 0
    cv.recv()
    assert bits.value == 0  # delivered once only
    del wa, wb, guard


def test_signal_wakes_loop_sleeping_in_poll():
    # only the signal watcher and a far timer: the loop sleeps in epoll_wait
    cv = AE.cv()
    w = AE.signal("ALRM", lambda: cv.send(time.monotonic()))
    far = AE.timer(5, 0, lambda: cv.send(None))
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        arrived = cv.recv()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert arrived is not None
    assert 0.09 < arrived - start < 1.0
    del w, far


def test_callback_runs_in_loop_not_in_handler():
    # the callback runs from one_event, never asynchronously inside other code
    out = []
    w = AE.signal(signal.SIGUSR1, lambda: out.append("cb"))
    os.kill(os.getpid(), signal.SIGUSR1)
    out.append("after kill")
    cv = AE.cv()
    t = AE.timer(0.02, 0, cv)
    cv.recv()
    assert out == ["after kill", "cb"]
    del w, t


def test_previous_disposition_restored_after_last_watcher():
    seen = []

    def mine(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGUSR2, mine)
    try:
        w1 = AE.signal("USR2", lambda: None)
        w2 = AE.signal("USR2", lambda: None)
        assert signal.getsignal(signal.SIGUSR2) is not mine
        del w1
        assert signal.getsignal(signal.SIGUSR2) is not mine
        del w2
        assert signal.getsignal(signal.SIGUSR2) is mine
        os.kill(os.getpid(), signal.SIGUSR2)
        assert seen == [signal.SIGUSR2]
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        w3 = AE.signal("USR2", lambda: None)
        del w3
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, old)


@own_loop_only("our own signal wake-up fd; asyncio uses its own")
def test_wakeup_fd_released_with_last_signal_watcher():
    w = AE.signal("USR1", lambda: None)
    assert loop._sig_r is not None
    del w
    assert loop._sig_r is None
    assert signal.set_wakeup_fd(-1) == -1


def test_unknown_and_uncatchable_signals():
    with pytest.raises(ValueError):
        AE.signal("NOSUCHSIG", lambda: None)
    with pytest.raises(ValueError):
        AE.signal("KILL", lambda: None)
    assert loop._sig_r is None  # the failed attempt left nothing behind


def test_a_signal_arriving_between_two_runs_of_the_loop_is_delivered():
    """Perl's EV and AnyEvent's own loop keep a signal that arrives while nobody runs
    the loop, and deliver it on the next run; so does every model here (uvloop
    itself only listens while its loop runs)."""
    got = []
    sw = AE.signal("USR2", lambda: got.append("usr2"))
    settle(0.01)
    os.kill(os.getpid(), signal.SIGUSR2)       # no loop is running now
    time.sleep(0.02)
    assert got == []                            # callbacks run in the loop only
    settle(0.05)
    assert got == ["usr2"]
    del sw
