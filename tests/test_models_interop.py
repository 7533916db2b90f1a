"""anyevent and asyncio code in one process on one loop (the asyncio models).

On the asyncio and uvloop models these tests run here.  On our own loop
(the default run) :func:`test_interop_on_model` runs this file again in a
subprocess with ``ANYEVENT_MODEL=asyncio`` and with ``ANYEVENT_MODEL=uvloop``,
so a plain ``make test`` covers both.
"""

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import anyevent.reactor as reactor
from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_server
from conftest import MODEL, free_port

ROOT = Path(__file__).resolve().parent.parent
on_asyncio = pytest.mark.skipif(
    MODEL == "anyevent", reason="runs in a subprocess per asyncio model (test_interop_on_model)")


@pytest.mark.skipif(MODEL != "anyevent", reason="this run is on an asyncio model already")
@pytest.mark.parametrize("model", ["asyncio", "uvloop"])
def test_interop_on_model(model):
    env = dict(os.environ, ANYEVENT_MODEL=model)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=str(ROOT / "tests"), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # all ran there but this test itself (2 skipped: its two parameters)
    assert re.match(r"\d+ passed, 2 skipped in ", proc.stdout.splitlines()[-1]), proc.stdout


def run(coro, timeout=10):
    """Run ``coro`` on the model's asyncio loop, with a deadline."""
    reactor.detect()
    return reactor.loop.asyncio_loop.run_until_complete(asyncio.wait_for(coro, timeout))


@on_asyncio
def test_asyncio_server_anyevent_handle_client():
    async def echo(reader, writer):
        while line := await reader.readline():
            writer.write(b"echo: " + line)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got = AE.cv()
        lines = []

        def on_line(hdl, line, eol):
            lines.append(line)
            if len(lines) == 2:
                hdl.push_shutdown()  # the server closes on EOF: our on_eof
                hdl.on_read(lambda h: None)  # (keep reading with no request queued)
            else:
                hdl.push_read("line", on_line)

        hdl = Handle(connect=("127.0.0.1", port), on_error=lambda h, f, m: got.croak(m),
                     on_eof=lambda h: got.send(lines))
        hdl.push_write(b"one\ntwo\n")
        hdl.push_read("line", on_line)
        result = await got
        hdl.destroy()
        server.close()
        await server.wait_closed()
        return result

    assert run(main()) == [b"echo: one", b"echo: two"]


@on_asyncio
def test_anyevent_server_asyncio_client():
    def accept(fh, host, port):
        def on_line(hdl, line, eol):
            hdl.push_write(line.upper() + b"\n")
            hdl.push_read("line", on_line)
        hdl = Handle(fh=fh, on_error=lambda h, f, m: h.destroy(), on_eof=lambda h: h.destroy())
        hdl.push_read("line", on_line)
        handles.append(hdl)

    handles = []
    port = free_port()
    guard = tcp_server("127.0.0.1", port, accept)

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        replies = []
        for word in (b"alpha", b"beta"):
            writer.write(word + b"\n")
            replies.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        return replies

    assert run(main()) == [b"ALPHA\n", b"BETA\n"]
    del guard


@on_asyncio
def test_coroutine_awaits_condvar_fed_by_push_read():
    import socket
    a, b = socket.socketpair()
    hdl = Handle(fh=a, on_error=lambda h, f, m: None)

    async def main():
        cv = AE.cv()
        hdl.push_read("chunk", 5, lambda h, data: cv.send(data))
        asyncio.get_running_loop().call_later(0.02, b.send, b"hello world\n")
        first = await cv
        line = AE.cv()
        hdl.push_read("line", lambda h, data, eol: line.send(data, eol))
        return first, await line

    assert run(main()) == (b"hello", (b" world", b"\n"))
    hdl.destroy()
    b.close()


@on_asyncio
def test_anyevent_timer_and_asyncio_ticker_keep_their_rate_while_the_other_is_busy():
    """Both sides tick every 20 ms for 1 s; meanwhile each side also has busy
    work (asyncio: a task doing 2 ms of CPU between yields; anyevent: a Handle
    ping-pong over a socketpair).  Both keep at least 80 % of their ticks."""
    import socket
    period, seconds = 0.02, 1.0
    ae_ticks, aio_ticks = [], []
    a, b = socket.socketpair()
    pongs = [0]

    def pong(hdl, data):
        pongs[0] += 1
        hdl.push_write(data)
        hdl.push_read("chunk", 1, pong)

    left = Handle(fh=a, on_error=lambda h, f, m: None)
    right = Handle(fh=b, on_error=lambda h, f, m: None)
    left.push_read("chunk", 1, pong)
    right.push_read("chunk", 1, pong)
    right.push_write(b"x")

    async def busy():
        while True:
            end = time.monotonic() + 0.002
            while time.monotonic() < end:
                pass
            await asyncio.sleep(0)

    async def ticker():  # drift-free, as the anyevent timer is
        due = time.monotonic()
        while True:
            aio_ticks.append(time.monotonic())
            due += period
            await asyncio.sleep(max(due - time.monotonic(), 0))

    async def main():
        done = AE.cv()
        tick = AE.timer(0, period, lambda: ae_ticks.append(time.monotonic()))
        stop = AE.timer(seconds, 0, done.send)
        tasks = [asyncio.ensure_future(busy()), asyncio.ensure_future(ticker())]
        await done
        for task in tasks:
            task.cancel()
        del tick, stop

    run(main())
    left.destroy()
    right.destroy()
    expected = seconds / period
    print("anyevent ticks %d, asyncio ticks %d (of %d), ping-pongs %d"
          % (len(ae_ticks), len(aio_ticks), expected, pongs[0]))
    assert len(ae_ticks) >= 0.8 * expected
    assert len(aio_ticks) >= 0.8 * expected
    assert pongs[0] > 100  # the anyevent side was busy all along


@on_asyncio
def test_worker_thread_cv_send_wakes_a_waiting_coroutine_within_10ms():
    """A coroutine awaits a condvar that a worker thread sends (with its send
    time); the loop has nothing else to do, so only the wake-up can end the wait."""
    latencies = []

    async def main():
        for _ in range(7):
            cv = AE.cv()
            threading.Thread(target=lambda: (time.sleep(0.02), cv.send(time.monotonic()))).start()
            sent = await cv
            latencies.append(time.monotonic() - sent)

    run(main())
    latencies.sort()
    print("thread cv.send -> await: median %.2f ms, max %.2f ms"
          % (latencies[3] * 1e3, latencies[-1] * 1e3))
    assert latencies[3] <= 0.010
