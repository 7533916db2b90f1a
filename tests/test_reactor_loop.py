"""The loop itself: exception reporting, run/stop, deadlock detection, nesting."""

import logging
import os
import signal
import socket

import pytest

from anyevent import AE, loop
from anyevent import reactor
from conftest import own_loop_only


def test_exception_in_timer_is_reported_and_loop_goes_on(callback_errors):
    out = []
    cv = AE.cv()

    def bad():
        raise KeyError("boom")

    t1 = AE.timer(0, 0, bad)
    t2 = AE.timer(0.01, 0, lambda: (out.append("still running"), cv.send()))
    cv.recv()
    assert out == ["still running"]
    assert [(w, type(e)) for w, e in callback_errors] == [("timer", KeyError)]
    del t1, t2


def test_every_kind_of_callback_reports_its_name(callback_errors):
    def bad(*args):
        raise ValueError("x")

    a, b = socket.socketpair()
    b.send(b"x")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    ws = []

    def bad_once():
        ws[0].cancel()
        bad()

    ws += [AE.io(a, 0, bad_once), AE.timer(0, 0, bad), AE.signal("USR1", bad),
           AE.child(pid, bad), AE.idle(bad)]
    AE.postpone(bad)
    AE.cv(bad).send()
    os.kill(os.getpid(), signal.SIGUSR1)
    cv = AE.cv()
    guard = AE.timer(0.1, 0, cv)
    cv.recv()
    kinds = {w for w, _ in callback_errors}
    assert kinds == {"io", "timer", "signal", "child", "idle", "postpone", "condvar"}
    del ws, guard
    a.close()
    b.close()


def test_default_handler_logs_traceback(caplog):
    old = reactor.set_exception_handler(None)
    try:
        cv = AE.cv()

        def bad():
            cv.send()
            raise RuntimeError("logged")

        t = AE.timer(0, 0, bad)
        with caplog.at_level(logging.ERROR, logger="anyevent"):
            cv.recv()
    finally:
        reactor.set_exception_handler(old)
    [rec] = [r for r in caplog.records if r.name == "anyevent"]
    assert "timer" in rec.getMessage() and rec.exc_info[1].args == ("logged",)
    del t


def test_broken_handler_falls_back_to_logging(caplog):
    def handler(exc, where):
        raise TypeError("handler broke")

    old = reactor.set_exception_handler(handler)
    try:
        assert reactor.get_exception_handler() is handler
        cv = AE.cv()
        t = AE.timer(0, 0, lambda: (cv.send(), 1 / 0))
        with caplog.at_level(logging.ERROR, logger="anyevent"):
            cv.recv()
    finally:
        reactor.set_exception_handler(old)
    assert any("exception handler" in r.getMessage() for r in caplog.records)
    del t


def test_keyboard_interrupt_is_not_swallowed():
    def stop():
        raise KeyboardInterrupt

    t = AE.timer(0, 0, stop)
    with pytest.raises(KeyboardInterrupt):
        loop.one_event()
    del t


@own_loop_only("run() cannot nest: asyncio loops do not (it raises)")
def test_run_and_stop_nest():
    out = []

    def inner():
        out.append("inner start")
        t = AE.timer(0.01, 0, loop.stop)
        loop.run()
        out.append("inner done")
        loop.stop()
        del t

    t = AE.timer(0, 0, inner)
    loop.run()
    assert out == ["inner start", "inner done"]
    del t


def test_recv_without_any_watcher_raises():
    # a loop of its own: watchers another test left in the process-wide
    # loop (a handle kept by a cycle lives on, as in Perl) must not make
    # this wait
    cv = reactor.Loop().condvar()
    with pytest.raises(RuntimeError, match="no watchers"):
        cv.recv()


def test_after_fork_gives_child_a_clean_loop():
    r, w = os.pipe()
    keep = AE.timer(10, 0, lambda: None)
    pid = os.fork()
    if pid == 0:
        try:
            loop.after_fork()
            cv = AE.cv()
            t = AE.timer(0.01, 0, lambda: cv.send(b"ok"))
            os.write(w, cv.recv())
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 10) == b"ok"
    os.close(r)
    os.waitpid(pid, 0)
    del keep


FORK_SCRIPT = r'''
import os, signal
from anyevent import AE
fired = []
a, b = __import__("socket").socketpair()
w = AE.io(a, 0, lambda: (fired.append("io"), a.recv(10)))
s = AE.signal("USR1", lambda: fired.append("usr1"))
cv = AE.cv(); t = AE.timer(0.05, 0, cv.send); cv.recv()  # the signal pair exists now
pid = os.fork()  # a plain fork, no loop.after_fork()
if pid == 0:
    del w  # the child cancels its copy of the watcher
    os.kill(os.getpid(), signal.SIGUSR1)
    cv = AE.cv(); t = AE.timer(0.1, 0, cv.send); cv.recv()
    os._exit(0 if fired == ["usr1"] else 1)  # the child's own watcher saw its signal
_, status = os.waitpid(pid, 0)
b.send(b"x")
cv = AE.cv(); t = AE.timer(0.5, 0, cv.send); cv.recv()
print(os.waitstatus_to_exitcode(status), fired)
'''


@own_loop_only("the asyncio models' loops are asyncio's: fork handling is theirs")
def test_a_plain_fork_gives_the_child_its_own_poller_and_wakeup_pairs():
    """Found in issue 23: a child forked without after_fork() shared the
    parent's epoll set (its cancelled watcher took the parent's away) and
    signal wake-up pair.  Now, as with EV, the child keeps its watchers on
    kernel objects of its own (os.register_at_fork)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                         timeout=20, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(None, 1) == ["0", "['io']\n"], out.stdout
