"""anyevent.debug: AnyEvent::Debug's wrap, cb2str and backtrace, on every model."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import anyevent
from anyevent import AE, AnyEvent, debug, loop
from anyevent.handle import Handle

from conftest import pair, run_until


@pytest.fixture
def wrapped(caplog):
    previous = debug.wrap(1)
    caplog.set_level(1, logger="anyevent")     # trace too
    yield caplog
    debug.wrap(previous)


def _here():
    return "%s:%d" % (__file__, sys._getframe(1).f_lineno)


def test_off_nothing_is_replaced():
    """Off, wrap costs nothing: the loop and the facades are untouched."""
    assert debug.wrap(0) == 0
    assert "timer" not in vars(loop)
    assert getattr(AE.timer, "__self__", None) is loop or anyevent.strict.enabled()


def test_wrapped_watchers_record_their_creation_site_and_count(wrapped):
    cv = AE.cv()
    line = _here(); w = AE.timer(0, 0, lambda: cv.send())  # noqa: E702
    infos = [i for i in debug.WRAPPED.values() if i.kind == "timer" and i.args == (0, 0)]
    assert len(infos) == 1 and infos[0].site.startswith(line)
    run_until(cv, 5)
    assert infos[0].count == 1
    assert "created at " + line in str(infos[0])
    del w
    assert infos[0].id not in debug.WRAPPED         # gone with its watcher


def test_every_creation_path_is_wrapped(wrapped):
    a, b = pair()
    ws = [AE.io(a, 0, lambda: None), AnyEvent.timer(after=5, cb=lambda: None),
          AE.signal("USR2", lambda: None), AnyEvent.idle(cb=lambda: None),
          loop.child(os.getpid(), lambda p, s: None)]
    kinds = {i.kind for i in debug.WRAPPED.values()}   # (with the loop's own: SIGCHLD's...)
    assert kinds == {"child", "idle", "io", "signal", "timer"}
    hdl = Handle(fh=a)                               # a handle's own watchers too
    hdl.push_read("line", lambda h, line, eol: None)
    assert any(i.kind == "io" and i.site.startswith(__file__) for i in debug.WRAPPED.values()
               if i not in ws)
    hdl.destroy()
    del ws
    b.close()


def test_slow_callbacks_are_logged_with_their_creation_site(wrapped, monkeypatch):
    monkeypatch.setattr(debug, "SLOW", 0.05)
    cv = AE.cv()
    line = _here(); w = AE.timer(0, 0, lambda: (time.sleep(0.08), cv.send()))  # noqa: E702
    run_until(cv, 5)
    slow = [r.getMessage() for r in wrapped.records if "took" in r.getMessage()]
    assert len(slow) == 1 and "created at " + line in slow[0], slow
    del w


def test_errors_are_kept_logged_and_carry_the_creation_site(wrapped, callback_errors):
    cv = AE.cv()

    def boom():
        cv.send()
        raise KeyError("boom")
    line = _here(); w = AE.timer(0, 0, boom)  # noqa: E702
    run_until(cv, 5)
    info = [i for i in debug.WRAPPED.values() if i.cb is boom][0]
    assert len(info.errors) == 1 and "KeyError: 'boom'" in info.errors[0]
    assert any(r.levelname == "ERROR" and "raised KeyError" in r.getMessage()
               for r in wrapped.records)
    [(where, exc)] = callback_errors
    if sys.version_info >= (3, 11):
        assert any(line in note for note in exc.__notes__)
    assert "error:" in info.verbose()
    del w


def test_tracing_logs_every_invocation(wrapped):
    cv = AE.cv()
    w = AE.timer(0, 0, lambda: cv.send())
    run_until(cv, 5)
    messages = [r.getMessage() for r in wrapped.records if r.name == "anyevent.debug"]
    assert [m.split()[0] for m in messages if m.startswith(("enter", "leave"))] == \
        ["enter", "leave"]
    del w


def test_a_watcher_from_another_thread_is_refused_naming_call_soon_threadsafe(wrapped):
    errors = []

    def other():
        try:
            AE.timer(0, 0, lambda: None)
        except RuntimeError as exc:
            errors.append(str(exc))
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "call_soon_threadsafe" in errors[0]


def test_wrap_toggles_and_level_two_keeps_the_stack():
    assert debug.wrap() == 0 and debug.wrap() == 1    # toggled on, then off
    assert debug.wrap(2) == 0
    try:
        w = AE.idle(lambda: None)
        info = [i for i in debug.WRAPPED.values() if i.kind == "idle"][-1]
        assert info.stack is not None and "test_wrap_toggles" in info.verbose()
        del w
    finally:
        debug.wrap(0)
    assert "idle" not in vars(loop)


def test_cb2str_and_backtrace():
    def named():
        pass
    assert debug.cb2str(named).startswith("test_debug.test_cb2str_and_backtrace.<locals>.named (")
    assert debug.cb2str(len) == repr(len)
    assert "test_cb2str_and_backtrace" in debug.backtrace().splitlines()[-1]


def test_environment_variable_wraps_at_import():
    script = ("import anyevent, anyevent.debug as d; w = anyevent.AE.timer(9, 0, print); "
              "print(d._level, len(d.WRAPPED))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, ANYEVENT_DEBUG_WRAP="1"))
    assert out.stdout.split() == ["1", "1"], out.stderr
