"""Models (Perl's AnyEvent::Impl::*): detection, MODEL, post_detect, await cv,
call_soon_threadsafe and cv.send from threads -- on whichever model this run
uses (``ANYEVENT_MODEL``), plus subprocesses for the choices made at start-up."""

import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import anyevent.reactor as reactor
from anyevent import AE, AnyEvent
from conftest import MODEL as EXPECTED, ON_ASYNCIO, run_coroutine, run_until

ROOT = Path(__file__).resolve().parent.parent


def run_python(code, model=None, timeout=30):
    """Run ``code`` in a fresh interpreter (ANYEVENT_MODEL=``model`` or unset);
    returns its stdout; fails the test on a non-zero exit."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("ANYEVENT_MODEL", None)
    if model:
        env["ANYEVENT_MODEL"] = model
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_detect_names_the_model_everywhere():
    assert AnyEvent.detect() == EXPECTED
    assert reactor.MODEL == AnyEvent.MODEL == reactor.loop.MODEL == EXPECTED
    assert reactor.detect(EXPECTED) == EXPECTED  # asking for the same one is fine


def test_facades_call_the_model_directly_after_detection():
    AnyEvent.detect()
    if "timer" in vars(reactor.loop):       # the debug mode's wrapping (python -X dev)
        assert AE.timer is vars(reactor.loop)["timer"]
    else:
        assert AE.timer.__func__ is type(reactor.loop).timer
        assert AE.io.__self__ is reactor.loop
    assert AnyEvent.postpone.__func__ is type(reactor.loop).postpone


def test_choosing_another_model_after_watchers_is_an_error():
    w = AE.timer(10, 0, lambda: None)
    other = "asyncio" if EXPECTED == "anyevent" else "anyevent"
    with pytest.raises(RuntimeError, match="model is '%s' already.*before creating any watcher"
                       % EXPECTED):
        AnyEvent.detect(other)
    del w


def test_post_detect_after_detection_runs_at_once():
    AnyEvent.detect()
    seen = []
    assert AnyEvent.post_detect(lambda: seen.append(reactor.MODEL)) is None
    assert seen == [EXPECTED]


@pytest.mark.parametrize("model", ["anyevent", "asyncio", "uvloop"])
def test_environment_chooses_the_model_at_the_first_watcher(model):
    out = run_python("""
        from anyevent import AE, AnyEvent, loop
        seen = []
        guard = AnyEvent.post_detect(lambda: seen.append(AnyEvent.MODEL))
        print(AnyEvent.MODEL, seen, guard is not None)
        cv = AE.cv()
        w = AE.timer(0.01, 0, lambda: cv.send("fired"))
        print(AnyEvent.MODEL, seen, type(loop).__name__, cv.recv())
    """, model)
    cls = {"anyevent": "Loop", "asyncio": "AsyncioLoop", "uvloop": "UvloopLoop"}[model]
    assert out.split("\n")[:2] == ["None [] True", "%s ['%s'] %s fired" % (model, model, cls)]


def test_a_running_asyncio_loop_at_the_first_watcher_selects_asyncio():
    out = run_python("""
        import asyncio
        from anyevent import AE, AnyEvent

        async def main():
            cv = AE.cv()
            w = AE.timer(0.01, 0, lambda: cv.send(AnyEvent.MODEL))
            return await cv

        print(asyncio.run(main()))
    """)
    assert out == "asyncio\n"


def test_unknown_model_and_model_after_watchers_are_clear_errors():
    out = run_python("""
        from anyevent import AE, AnyEvent
        try:
            AE.timer(1, 0, lambda: None)
        except ValueError as exc:
            print(exc)
    """, "tk")
    assert "unknown model 'tk' (ANYEVENT_MODEL must be one of anyevent, asyncio, uvloop)" in out
    out = run_python("""
        from anyevent import AE, AnyEvent
        w = AE.timer(1, 0, lambda: None)
        try:
            AnyEvent.detect("uvloop")
        except RuntimeError as exc:
            print(exc)
    """)
    assert "the model is 'anyevent' already" in out


def test_cancelled_post_detect_does_not_run():
    out = run_python("""
        from anyevent import AnyEvent
        g = AnyEvent.post_detect(lambda: print("ran"))
        g.cancel()
        print(AnyEvent.detect("asyncio"))
    """)
    assert out == "asyncio\n"


# -- await cv -------------------------------------------------------------------

def test_await_cv_returns_what_recv_returns():
    async def main():
        one, two, none = AE.cv(), AE.cv(), AE.cv()
        ws = [AE.timer(0.01, 0, lambda: one.send("x")),
              AE.timer(0.02, 0, lambda: two.send(1, 2)),
              AE.timer(0.03, 0, none.send)]
        got = (await one, await two, await none)
        del ws
        return got

    assert run_coroutine(main()) == ("x", (1, 2), None)


def test_await_cv_raises_what_croak_gave():
    class Boom(Exception):
        pass

    async def main():
        cv, cv2 = AE.cv(), AE.cv()
        w = AE.timer(0.01, 0, lambda: cv.croak(Boom("b")))
        w2 = AE.postpone(lambda: cv2.croak(b"bytes \xff"))
        with pytest.raises(Boom):
            await cv
        with pytest.raises(RuntimeError, match=r"bytes \\xff"):
            await cv2
        del w, w2
        return "ok"

    assert run_coroutine(main()) == "ok"


def test_await_a_ready_cv_returns_at_once():
    cv = AE.cv()
    cv.send(5)

    async def main():
        return await cv

    assert run_coroutine(main()) == 5


def test_await_cv_with_asyncio_wait_for_times_out():
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(AE.cv(), 0.05)
        return "timed out"

    assert run_coroutine(main()) == "timed out"


@pytest.mark.skipif(ON_ASYNCIO, reason="our own loop driven by asyncio: model 'anyevent' only")
def test_await_cv_on_our_loop_lets_asyncio_drive_our_watchers():
    """asyncio.run() with our own loop: while the coroutine waits, asyncio runs
    our io and timer watchers, and asyncio's own tasks keep running."""
    import socket
    a, b = socket.socketpair()
    ticks = []

    async def ticker():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main():
        task = asyncio.ensure_future(ticker())
        cv = AE.cv()
        got = []
        rw = AE.io(a, 0, lambda: got.append(a.recv(10)) or cv.send(got))
        w = AE.timer(0.1, 0, lambda: b.send(b"ping"))
        result = await cv
        task.cancel()
        del rw, w
        return result

    assert asyncio.run(main()) == [b"ping"]
    assert len(ticks) >= 5  # asyncio kept running while our loop waited
    a.close()
    b.close()


@pytest.mark.skipif(ON_ASYNCIO, reason="our own loop: model 'anyevent' only")
def test_await_cv_outside_asyncio_says_to_use_recv():
    cv = AE.cv()
    coro = cv.__await__()
    with pytest.raises(RuntimeError, match="needs a running asyncio loop.*cv.recv"):
        next(coro)


@pytest.mark.skipif(not ON_ASYNCIO, reason="blocking recv() is allowed nested on our own loop")
def test_recv_inside_the_running_asyncio_loop_raises_at_once():
    async def main():
        cv = AE.cv()
        with pytest.raises(RuntimeError, match="would block it.*'await cv'.*cv.cb"):
            cv.recv()
        return "raised"

    assert run_coroutine(main()) == "raised"


@pytest.mark.skipif(not ON_ASYNCIO, reason="asyncio models only")
def test_await_on_another_asyncio_loop_names_the_model_loop():
    async def main():
        with pytest.raises(RuntimeError, match="watches on .*run it there"):
            await AE.cv()
        return "raised"

    assert asyncio.run(main()) == "raised"


# -- threads ---------------------------------------------------------------------

def test_call_soon_threadsafe_runs_on_the_loop_thread():
    cv = AE.cv()
    reactor.loop.prepare_threadsafe()
    guard = AE.timer(5, 0, lambda: None)  # something to wait for
    threading.Thread(target=AE.call_soon_threadsafe,
                     args=(lambda x: cv.send(x, threading.get_ident()), 7)).start()
    assert run_until(cv) == (7, threading.get_ident())
    del guard


def send_latencies(rounds=7, delay=0.02):
    """Seconds from a worker thread's ``cv.send(t)`` to the loop seeing it."""
    latencies = []
    guard = AE.timer(60, 0, lambda: None)  # the loop would otherwise sleep up to that
    for _ in range(rounds):
        cv = AE.cv()
        threading.Thread(target=lambda: (time.sleep(delay), cv.send(time.monotonic()))).start()
        sent = run_until(cv)
        latencies.append(time.monotonic() - sent)
    del guard
    return latencies


def test_cv_send_from_a_thread_wakes_the_loop_within_10ms():
    latencies = send_latencies()
    print("cv.send from a thread -> recv: median %.2f ms, max %.2f ms"
          % (statistics.median(latencies) * 1e3, max(latencies) * 1e3))
    assert statistics.median(latencies) <= 0.010


def test_croak_from_a_thread_is_delivered_on_the_loop_thread():
    cv = AE.cv()
    seen = []
    cv.cb(lambda c: seen.append(threading.get_ident()))
    guard = AE.timer(5, 0, lambda: None)
    threading.Thread(target=cv.croak, args=("from a thread",)).start()
    with pytest.raises(RuntimeError, match="from a thread"):
        run_until(cv)
    assert seen == [threading.get_ident()]
    del guard


def _model_classes():
    import anyevent.impl.asyncio as aio_model
    classes = [aio_model.AsyncioLoop]
    try:
        import anyevent.impl.uvloop as uv_model
    except ImportError:  # uvloop not installed
        return classes
    return classes + [c for c in vars(uv_model).values() if isinstance(c, type)
                      and issubclass(c, reactor.Loop) and c.__module__ == uv_model.__name__]


def test_models_override_only_the_documented_model_methods():
    """The model interface is written down (reactor.MODEL_METHODS, each with
    a docstring on Loop) and no model overrides anything else of Loop."""
    for name in reactor.MODEL_METHODS:
        assert (getattr(reactor.Loop, name).__doc__ or "").strip(), name
    for cls in _model_classes():
        overridden = {name for name, value in vars(cls).items()
                      if callable(value) and hasattr(reactor.Loop, name)
                      and not name.startswith("__")}
        assert overridden <= set(reactor.MODEL_METHODS), (cls, overridden
                                                           - set(reactor.MODEL_METHODS))


def test_models_import_only_public_names_and_model_helpers_of_the_reactor():
    import ast
    import pathlib
    impl = pathlib.Path(reactor.__file__).with_name("impl")
    allowed = set(reactor.MODEL_HELPERS) | set(reactor.MODEL_METHODS)
    for path in sorted(impl.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("reactor"):
                private = {a.name for a in node.names if a.name.startswith("_")}
                assert private <= allowed, (path.name, private - allowed)
