"""Child watchers (AnyEvent t/03_child.t, the child part of t/09_multi.t) and
the reaping policy documented in :meth:`anyevent.reactor.Loop.child`."""

import os
import signal
import subprocess
import time

import pytest

from anyevent import AE, AnyEvent, loop
from anyevent.reactor import detect

from conftest import run_until, settle


def _fork(code=0, sleep=0.0):
    pid = os.fork()
    if pid == 0:
        if sleep:
            time.sleep(sleep)
        os._exit(code)
    return pid


def _wait_exited(pid):
    """Block until ``pid`` is a zombie, without reaping it."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)



def test_child_by_pid_then_any_like_03_child():
    pid = _fork(3)
    cv = AnyEvent.condvar()
    w = AnyEvent.child(pid=pid, cb=cv)
    assert cv.recv() == (pid, 3 << 8)
    pid2 = _fork(7)
    cv2 = AE.cv()
    w2 = AE.child(0, cv2)
    rpid, status = cv2.recv()
    assert rpid == pid2 and os.waitstatus_to_exitcode(status) == 7
    del w, w2


def test_two_watchers_same_pid_killed_like_09_multi():
    pid = _fork(1, sleep=5)
    got = {}
    cv = AE.cv()

    def note(name):
        def cb(rpid, status):
            got[name] = (rpid, status)
            cv.end()
        return cb

    cv.begin()
    wa = AE.child(pid, note("a"))
    cv.begin()
    wb = AE.child(pid, note("b"))
    settle(0.05)
    assert got == {}
    os.kill(pid, signal.SIGKILL)
    guard = AE.timer(3, 0, cv)
    cv.recv()
    assert got == {"a": (pid, signal.SIGKILL), "b": (pid, signal.SIGKILL)}
    got.clear()
    settle(0.05)
    assert got == {}  # reported once
    del wa, wb, guard


def test_watcher_created_after_child_exited():
    pid = _fork(9)
    _wait_exited(pid)
    time.sleep(0.01)  # SIGCHLD came and went before any watcher
    cv = AE.cv()
    w = AE.child(pid, cv)
    assert cv.recv() == (pid, 9 << 8)
    del w


def test_pid_watchers_do_not_steal_other_children():
    # a subprocess.Popen child exits while only a pid-specific watcher for
    # another child exists: Popen still gets its own exit status.
    proc = subprocess.Popen(["sh", "-c", "exit 5"])
    _wait_exited(proc.pid)
    pid = _fork(2, sleep=0.05)
    cv = AE.cv()
    w = AE.child(pid, cv)
    assert cv.recv() == (pid, 2 << 8)
    settle(0.02)
    assert proc.wait(timeout=5) == 5
    del w


def test_any_child_watcher_keeps_status_for_later_pid_watcher():
    calls = []
    cv = AE.cv()
    any_w = AE.child(0, lambda p, s: (calls.append(("any", p, s)), cv.send()))
    pid = _fork(4)
    cv.recv()
    assert calls == [("any", pid, 4 << 8)]
    # the pid-0 watcher reaped it; a pid watcher made afterwards still learns the status
    cv = AE.cv()
    w = AE.child(pid, lambda p, s: (calls.append(("pid", p, s)), cv.send()))
    cv.recv()
    settle(0.02)
    assert calls == [("any", pid, 4 << 8), ("pid", pid, 4 << 8)]  # pid-0 not told twice
    assert pid not in loop._child_kept
    del any_w, w


def test_pid_and_any_watchers_both_fire():
    got = []
    cv = AE.cv()
    cv.begin()
    cv.begin()
    pid = _fork(6, sleep=0.05)
    w_any = AE.child(0, lambda p, s: (got.append("any"), cv.end()))
    w_pid = AE.child(pid, lambda p, s: (got.append("pid"), cv.end()))
    cv.recv()
    assert got == ["pid", "any"]
    del w_any, w_pid


def test_sigchld_watcher_released_with_last_child_watcher():
    pid = _fork(0)
    cv = AE.cv()
    w = AE.child(pid, cv)
    cv.recv()
    assert loop._chld_watcher is not None
    del w
    assert loop._chld_watcher is None and not loop._child_recs


def test_uvloop_waits_on_a_pidfd_and_polls_only_for_any_child():
    """uvloop keeps SIGCHLD: a watcher of one pid waits on a pidfd in the loop (the
    exit is seen at once, no polling); only a watcher of any child polls; every fd
    is closed once the child is reaped; uvloop's own subprocesses still work."""
    if detect() != "uvloop":
        pytest.skip("the uvloop model's child watchers")
    before = set(os.listdir("/proc/self/fd"))
    pid = _fork(5, sleep=0.1)
    cv = AE.cv()
    w = AE.child(pid, lambda p, status: cv.send(os.waitstatus_to_exitcode(status)))
    waker = loop._chld_watcher
    assert list(waker._pidfds) == [pid] and waker._poll is None
    assert cv.recv() == 5
    settle(0.01)
    assert waker._pidfds == {}
    any_child = AE.child(0, lambda p, status: None)
    assert waker._poll is not None
    del any_child
    settle(0.12)                                # its next look stops the timer
    assert waker._poll is None
    assert subprocess.run(["true"]).returncode == 0
    del w
    assert set(os.listdir("/proc/self/fd")) <= before | {str(n) for n in range(3)}


def test_uvloop_keeps_the_pidfd_of_a_child_that_exits_between_reaping_and_forgetting():
    """The race a fork_call run hit: a child exits after the loop's reap and
    before the pidfds are tidied; its pidfd must stay, or nothing wakes the loop
    for it again."""
    if detect() != "uvloop":
        pytest.skip("the uvloop model's child watchers")
    pid = _fork(3, sleep=0.05)
    cv = AE.cv()
    w = AE.child(pid, lambda p, status: cv.send(os.waitstatus_to_exitcode(status)))
    waker = loop._chld_watcher
    _wait_exited(pid)               # exited, not reaped: as just after a reap missed it
    waker._forget_reaped()
    assert pid in waker._pidfds
    assert run_until(cv, 5) == 3
    settle(0.01)
    assert waker._pidfds == {}
    del w

