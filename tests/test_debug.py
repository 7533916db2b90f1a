"""anyevent.debug: AnyEvent::Debug's wrap, cb2str and backtrace, on every model."""

import errno
import gc
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

from conftest import free_port, pair, require_tool, run_until, settle


@pytest.fixture
def wrapped(caplog, monkeypatch):
    """Wrapping on at level 1, tracing new watchers (whether or not the debug
    mode, which does not trace, is on for the whole run)."""
    previous = debug.wrap(1)
    monkeypatch.setattr(debug, "TRACE", True)
    caplog.set_level(1, logger="anyevent")     # trace too
    yield caplog
    debug.wrap(previous)


@pytest.fixture
def unwrapped():
    """Wrapping off for the test, as it is by default outside ``-X dev``."""
    previous = debug.wrap(0)
    yield
    debug.wrap(previous)


def _noop():
    pass


def _here():
    return "%s:%d" % (__file__, sys._getframe(1).f_lineno)


def test_off_nothing_is_replaced(unwrapped):
    """Off, wrap costs nothing: the loop, the facades and Handle are untouched."""
    assert "timer" not in vars(loop)
    assert "push_write" not in vars(Handle) and "__init__" not in vars(Handle)
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


def test_a_wrapped_watcher_in_a_cycle_with_its_callback_goes_as_unwrapped(wrapped):
    """Nothing of the wrapping holds the callback but the watcher: a timer
    whose callback refers to it goes by reference counting once it fired."""
    import weakref

    class Payload:
        pass
    payload, cv, w = Payload(), AE.cv(), None

    def cb():
        cv.send((w, payload))
    w = AE.timer(0, 0, cb)
    ref = weakref.ref(payload)
    gc.disable()
    try:
        run_until(cv)
        del w, payload, cb, cv
        assert ref() is None
    finally:
        gc.enable()


def test_tracing_logs_every_invocation(wrapped):
    cv = AE.cv()
    w = AE.timer(0, 0, lambda: cv.send())
    run_until(cv, 5)
    messages = [r.getMessage() for r in wrapped.records if r.name == "anyevent.debug"]
    assert [m.split()[0] for m in messages if m.startswith(("enter", "leave"))] == \
        ["enter", "leave"]
    del w


def test_a_watcher_from_another_thread_is_refused_naming_call_soon_threadsafe(wrapped):
    settle(0.001)                   # (the loop ran here: this is its thread)
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


def test_wrap_toggles_and_level_two_keeps_the_stack(unwrapped):
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


# -- the shell -----------------------------------------------------------------------------

def _client(cmd, stdin_text, cv):
    """Run the client command in a thread (the loop serves meanwhile); its
    output is sent to ``cv``."""
    def talk():
        out = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True, timeout=20)
        loop.call_soon_threadsafe(cv.send, out.stdout)
    threading.Thread(target=talk, daemon=True).start()


def _session(path, lines):
    """What ``nc -U`` gets from the shell at ``path`` for ``lines``."""
    nc = require_tool("nc")
    cv = AE.cv()
    # (-q 1: after the last line, wait a second for the answers, then quit)
    _client([nc, "-q", "1", "-U", str(path)], "".join(line + "\n" for line in lines), cv)
    return run_until(cv, 30)


def test_shell_over_a_unix_socket_with_nc(tmp_path, wrapped):
    path = tmp_path / "shell"
    sh = debug.shell("unix/", str(path))
    keep = AE.timer(60, 0, lambda: None)
    out = _session(path, ["help", "wl", "wl 'timer'", "x = 6 * 7", "x", "exit",
                          "print('hello')", "1/0"])
    assert out.startswith("Welcome, ") and "use 'help' for more info!" in out
    assert "wl [regex]" in out                          # help
    assert "timer(60, 0)" in out                        # wl lists the wrapped timer
    assert "> 42\n" in out                              # a value, shared names
    assert "sorry, no..." in out                        # exit is refused
    assert "> hello\n" in out                           # what the code prints
    assert "ZeroDivisionError: division by zero" in out
    del keep, sh
    assert not path.exists()                            # the listener went with the guard


def test_shell_commands_in_perls_form(tmp_path, wrapped):
    path = tmp_path / "shell"
    sh = debug.shell("unix/", str(path))
    w = AE.timer(60, 0, _noop)
    key = [i.id for i in debug.WRAPPED.values() if i.cb is _noop][0]
    out = _session(path, ["i %d" % key, "u %d" % key, "t", "wr 2", "wr 1", "i 99999"])
    assert "invoked 0 times, tracing on" in out
    assert "tracing disabled for %d." % key in out
    assert "tracing for newly created watchers is now enabled." in out
    assert "wrap level now 2" in out and "wrap level now 1" in out
    assert "99999: no such wrapped watcher." in out
    del w, sh


def test_shell_shows_log_lines_after_v(tmp_path, wrapped):
    path = tmp_path / "shell"
    sh = debug.shell("unix/", str(path))
    out = _session(path, ["v", "AE.log('warn', 'hello from the program')", "v 0",
                          "AE.log('warn', 'not shown')"])
    assert "verbose logging is now enabled." in out
    assert "hello from the program" in out and "not shown" not in out
    del sh


def test_shell_refuses_a_public_address_without_opt_in():
    with pytest.raises(ValueError, match="runs any code"):
        debug.shell("0.0.0.0", 0)
    with pytest.raises(ValueError):
        debug.shell("example.org", 0)
    sh = debug.shell("127.0.0.1", 0)
    del sh


def test_a_watcher_dropped_on_the_line_that_made_it_is_a_warning(wrapped):
    """The commonest porting slip: AE::timer's result not stored, so the timer
    never fires (Perl allows it silently)."""
    with pytest.warns(RuntimeWarning, match="timer watcher made here was dropped at once") as got:
        AE.timer(0, 0, lambda: None)
    assert got[0].filename == __file__
    with pytest.warns(RuntimeWarning):
        AnyEvent.idle(cb=lambda: None)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = AE.timer(60, 0, lambda: None)   # kept: fine
        del w                               # dropped later, on purpose: fine
        a, b = pair()
        hdl = Handle(fh=a)                  # a handle's own watchers come and go
        hdl.push_write(b"x")
        hdl.destroy()
        b.close()


def test_debug_mode_from_the_environment():
    script = ("import anyevent, anyevent.debug as d; w = anyevent.AE.timer(9, 0, print); "
              "print(d._level, d.TRACE, len(d.WRAPPED))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, ANYEVENT_DEBUG="1"))
    assert out.stdout.split() == ["1", "False", "1"], out.stderr


# -- handles and the debug mode ---------------------------------------------------------------

def test_a_handle_records_where_it_was_made_and_reports_errors_with_it(wrapped):
    a, b = pair()
    cv = AE.cv()
    line = _here(); hdl = Handle(fh=a, on_error=lambda h, fatal, msg: cv.send(msg))  # noqa
    assert debug.HANDLE_SITES[hdl].startswith(line)
    b.close()
    hdl.push_read("line", lambda h, line, eol: None)
    assert run_until(cv) == "Broken pipe"           # what on_error gets is unchanged
    [report] = [r for r in wrapped.records if "reports EPIPE" in r.getMessage()]
    assert report.levelname == "NOTE" and line in report.getMessage()


def test_an_error_no_on_error_takes_carries_the_handles_creation_site(wrapped, callback_errors):
    a, b = pair()
    line = _here(); hdl = Handle(fh=a)  # noqa: E702
    b.close()
    hdl.push_read("line", lambda h, line, eol: None)
    for _ in range(100):
        if callback_errors:
            break
        settle(0.02)
    [(where, exc)] = callback_errors
    assert isinstance(exc, BrokenPipeError)
    if sys.version_info >= (3, 11):
        assert any(line in note for note in exc.__notes__), exc.__notes__


def test_a_handle_made_or_changed_from_another_thread_is_refused(wrapped):
    settle(0.001)                   # (the loop ran here: this is its thread)
    a, b = pair()
    hdl = Handle(fh=a)
    refused = []

    def other():
        for call in (lambda: hdl.push_write(b"x"), lambda: hdl.push_read("line", print),
                     hdl.destroy, lambda: Handle(fh=b)):
            try:
                call()
            except RuntimeError as exc:
                refused.append(str(exc))
        refused.append(hdl.destroyed())              # reading is fine
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(refused) == 5 and refused[-1] is False
    assert all("call_soon_threadsafe" in text for text in refused[:4]), refused
    assert "Handle.push_write called from thread" in refused[0]
    assert hdl.wbuf == b"" and not hdl.destroyed()
    hdl.destroy()


def test_the_debug_mode_follows_python_dev_mode_unless_told():
    script = ("import sys, anyevent; loaded = 'anyevent.debug' in sys.modules; "
              "import anyevent.debug as d; from anyevent.handle import Handle; "
              "print(loaded, d._level, 'push_write' in vars(Handle))")
    env = {k: v for k, v in os.environ.items() if k != "ANYEVENT_DEBUG"}
    cases = [([], None, "False 0 False"), (["-X", "dev"], None, "True 1 True"),
             (["-X", "dev"], "0", "False 0 False"), ([], "1", "True 1 True")]
    for flags, value, expected in cases:
        run_env = dict(env, **({} if value is None else {"ANYEVENT_DEBUG": value}))
        out = subprocess.run([sys.executable, *flags, "-c", script], capture_output=True,
                             text=True, timeout=30, env=run_env)
        assert out.stdout.strip() == expected, (flags, value, out.stderr)


def test_a_worker_thread_may_run_the_loop_it_did_not_import():
    """Until the loop first runs, any thread may make watchers: a program
    that imports anyevent, then runs the loop in a worker, works wrapped."""
    script = ("import threading, anyevent; from anyevent import AE\n"
              "def worker():\n"
              "    cv = AE.cv(); w = AE.timer(0.01, 0, lambda: cv.send('fired')); print(cv.recv())\n"
              "t = threading.Thread(target=worker); t.start(); t.join()\n"
              "try:\n"
              "    AE.timer(1, 0, print)\n"
              "except RuntimeError as exc:\n"
              "    print('refused' if 'call_soon_threadsafe' in str(exc) else exc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, ANYEVENT_DEBUG="1"))
    assert out.stdout.split() == ["fired", "refused"], out.stderr


def test_debug_wrap_traces_under_python_dev_mode():
    out = subprocess.run([sys.executable, "-X", "dev", "-c",
                          "import anyevent, anyevent.debug as d; print(d._level, d.TRACE)"],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, ANYEVENT_DEBUG_WRAP="2"))
    assert out.stdout.split() == ["2", "True"], out.stderr


def test_restarting_a_timer_on_the_same_line_is_no_slip(wrapped):
    """``self.t = AE.timer(...)`` run again drops the last timer on the line
    that made it, after making the next: not a dropped-at-once slip."""
    import warnings

    class Idle:
        def touch(self):
            self.t = AE.timer(30, 0, self.expired)

        def expired(self):
            pass
    idle = Idle()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for _ in range(3):
            idle.touch()
    assert not [w for w in got if "dropped" in str(w.message)], [str(w.message) for w in got]
    del idle


def test_a_callback_without_a_module_is_wrapped(wrapped):
    """Code run by exec without ``__name__`` (the debug shell's, say) makes
    functions whose ``__module__`` is None."""
    namespace = {"AE": AE}
    exec("cb = lambda: None\nw = AE.timer(60, 0, cb)", namespace)
    assert namespace["cb"].__module__ is None
    assert any(i.cb is namespace["cb"] for i in debug.WRAPPED.values())
    del namespace


def test_a_subclass_of_handle_records_where_it_was_made(wrapped):
    class Session(Handle):
        def __init__(self, fh):
            super().__init__(fh=fh, on_error=lambda h, fatal, msg: None)
    a, b = pair()
    line = _here(); hdl = Session(a)  # noqa: E702
    assert debug.HANDLE_SITES[hdl].startswith(line), debug.HANDLE_SITES[hdl]
    hdl.destroy()


def test_unwrapping_takes_off_only_what_wrapping_put_on(wrapped):
    Handle.extra = lambda self: "mine"      # (added by the program meanwhile)
    try:
        debug.wrap(0)
        assert "push_write" not in vars(Handle) and Handle.extra(None) == "mine"
    finally:
        debug.wrap(1)
        del Handle.extra


def test_a_report_no_logging_would_show_goes_to_stderr():
    """The program configured no logging: the debug mode still speaks."""
    script = ("import time, anyevent; from anyevent import AE; cv = AE.cv(); "
              "w = AE.timer(0, 0, lambda: (time.sleep(0.15), cv.send())); cv.recv()")
    out = subprocess.run([sys.executable, "-X", "dev", "-c", script], capture_output=True,
                         text=True, timeout=30, env=dict(os.environ, ANYEVENT_DEBUG="1"))
    assert "anyevent.debug: callback of " in out.stderr and " took 0.1" in out.stderr, out.stderr
    assert "created at <string>:1 (<module>)" in out.stderr


def test_no_dropped_warning_for_watchers_the_package_makes_in_a_callback(wrapped, blackhole):
    """A watcher made and dropped by the package's own code while the loop
    runs a callback (a Connector's attempts, each with a timer) is not a slip
    of the program's, even with a Python frame of the program's (a test's
    loop hook) further out."""
    import warnings
    from anyevent.connector import Connector
    cv = AE.cv()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        conn = Connector(addrs=[{"ip": "127.0.0.1", "port": free_port()},
                                {"ip": "127.0.0.1", "port": blackhole}], timeout=0.2,
                         on_connected=lambda sock: cv.send("connected"),
                         on_connect_error=lambda syscall, err: cv.send(err.errno))
        inner = loop.one_event
        loop.one_event = lambda: inner()      # a Python frame outside, as conftest's
        try:
            assert run_until(cv, 10) == errno.ETIMEDOUT
        finally:
            del loop.one_event
        del conn
        gc.collect()
    assert not [w for w in got if "dropped" in str(w.message)], [str(w.message) for w in got]


def test_cb2str_names_the_method_behind_a_handles_weak_caller():
    from anyevent.handle import _stream
    a, b = pair()
    hdl = Handle(fh=a)
    text = debug.cb2str(_stream._weak_method(hdl, "_read_ready"))
    assert "_read_ready" in text and "caller" not in text
    hdl.destroy()
    b.close()
