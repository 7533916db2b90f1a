"""Who closes what.

A Handle owns its fh: ``destroy()``, ``close()``, the end of a ``with`` block
and the last reference going all close it (after lingering), unless the
handle was made with ``close_fh=False``.  ``run_cmd`` starts commands with
``posix_spawnp`` (no fork of this process) unless ``on_prepare`` must run
in the child.  The README sample and the examples stop on Ctrl-C without a
traceback, and the chat server says in one line that its port is taken.
"""

import gc
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from anyevent import AE
from anyevent import util
from anyevent.handle import Handle
from anyevent.util import run_cmd

from conftest import free_port, run_until

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20


def is_closed(fd):
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def read_to_eof(sock, timeout=10):
    """Read ``sock`` on the loop until EOF; return the bytes."""
    data = bytearray()
    cv = AE.cv()

    def readable():
        chunk = sock.recv(MB)
        if chunk:
            data.extend(chunk)
        else:
            cv.send()
    sock.setblocking(False)
    w = AE.io(sock, 0, readable)
    run_until(cv, timeout)
    del w
    return bytes(data)


# -- the handle owns its fh ----------------------------------------------------------

@pytest.mark.parametrize("how", ["destroy", "close", "with", "del"])
def test_handle_closes_its_socket(how):
    a, b = socket.socketpair()
    with b:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            if how == "with":
                with Handle(fh=a) as hdl:
                    pass
            else:
                hdl = Handle(fh=a)
                if how == "del":
                    del hdl
                    gc.collect()
                else:
                    getattr(hdl, how)()
        assert a.fileno() == -1
        assert b.recv(1) == b""  # the peer sees EOF at once


def test_handle_closes_pipe_file_objects_and_int_fds():
    r, w = os.pipe()
    f = open(w, "wb", buffering=0)
    Handle(fh=f).destroy()
    assert f.closed
    Handle(fh=r).destroy()
    assert is_closed(r)


def test_a_handle_that_fails_to_start_leaves_the_fh_to_the_caller():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError):
            Handle(fh=udp)
        gc.collect()
        assert udp.fileno() != -1


def test_close_fh_false_leaves_the_fh_to_the_caller():
    a, b = socket.socketpair()
    with a, b:
        hdl = Handle(fh=a, close_fh=False)
        hdl.destroy()
        assert a.fileno() != -1
        a.sendall(b"still mine")
        assert b.recv(100) == b"still mine"
    r, w = os.pipe()
    Handle(fh=w, close_fh=False).destroy()
    assert not is_closed(w)
    os.close(r)
    os.close(w)


def test_lingering_data_is_written_then_the_socket_closed():
    a, b = socket.socketpair()
    data = os.urandom(MB)
    hdl = Handle(fh=a)
    hdl.push_write(data)
    assert hdl.wbuf  # most is still queued when the handle goes
    hdl.destroy()
    assert a.fileno() != -1  # open while lingering
    with b:
        assert read_to_eof(b) == data  # EOF: closed once written
    assert a.fileno() == -1


def test_lingering_with_close_fh_false_keeps_the_socket():
    a, b = socket.socketpair()
    data = os.urandom(MB)
    hdl = Handle(fh=a, close_fh=False)
    hdl.push_write(data)
    del hdl
    got = bytearray()
    cv = AE.cv()

    def readable():
        got.extend(b.recv(MB))
        if len(got) == len(data):
            cv.send()
    b.setblocking(False)
    w = AE.io(b, 0, readable)
    run_until(cv, 10)
    del w
    with a, b:
        assert got == data and a.fileno() != -1


def test_connecting_handle_closes_the_socket_it_made(listener):
    cv = AE.cv()
    hdl = Handle(connect=listener.address, on_connect=lambda h, *rest: cv.send(h.fh),
                 on_error=lambda h, fatal, msg: cv.croak(msg))
    fh = run_until(cv)
    hdl.destroy()
    assert fh.fileno() == -1


# -- run_cmd does not fork this process -----------------------------------------------

def test_run_cmd_spawns_unless_on_prepare_needs_a_fork(monkeypatch):
    forks = []
    real_fork = os.fork

    def counting_fork():
        forks.append(1)
        return real_fork()
    monkeypatch.setattr(util.os, "fork", counting_fork)
    out = bytearray()
    assert run_cmd(["sh", "-c", "echo spawned >&3"], **{"3>": out}).recv() == 0
    assert out == b"spawned\n" and forks == []
    assert run_cmd(["true"], on_prepare=lambda: None).recv() == 0
    assert forks == [1]


def test_run_cmd_failures_keep_perls_exit_codes(tmp_path):
    missing = tmp_path / "missing"
    st = run_cmd(["cat"], **{"<": str(missing)}).recv()
    assert os.waitstatus_to_exitcode(st) == 125
    st = run_cmd([str(missing)]).recv()
    assert os.waitstatus_to_exitcode(st) == 126


def test_run_cmd_in_a_threaded_process_does_not_warn():
    # Python 3.12+ warns (DeprecationWarning) when a process with threads forks
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = bytearray()
            assert run_cmd(["echo", "hi"], **{">": out}).recv() == 0
    finally:
        stop.set()
        thread.join()
    assert out == b"hi\n"
    assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []


# -- the README sample and the examples stop cleanly -----------------------------------

# Start a script as a terminal would: SIGINT raising KeyboardInterrupt even if
# this test run inherited it ignored (a background job).
_AS_IN_A_TERMINAL = ("import runpy, signal, sys; "
                     "signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def start_script(path, *args, cache=None, **popen):
    """Run ``path`` under ``-X dev -W error``; ``cache`` is its XDG_CACHE_HOME."""
    cmd = [sys.executable, "-X", "dev", "-W", "error", "-c", _AS_IN_A_TERMINAL, str(path), *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **popen)


def connect_when_up(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.communicate()[1].decode())
            time.sleep(0.05)


def interrupt(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, err.decode()


def readme_sample():
    text = (ROOT / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_readme_sample_serves_disconnects_and_stops_quietly(tmp_path):
    port = free_port()
    code = readme_sample()
    assert "7777" in code
    script = tmp_path / "sample.py"
    script.write_text(code.replace("7777", str(port)))
    proc = start_script(script)
    try:
        for i in range(3):  # each client disconnects: no warning may follow
            with connect_when_up(port, proc) as s:
                s.sendall(b"hello %d\n" % i)
                assert s.makefile("rb").readline() == b"you said: hello %d\n" % i
        time.sleep(0.2)
    finally:
        status, err = interrupt(proc)
    assert (status, err) == (0, "")


def test_chat_server_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_script(ROOT / "examples" / "chat_server.py", "--port", str(port),
                            cache=tmp_path)
        out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        "chat_server.py: cannot listen on 127.0.0.1:%d: Address already in use" % port)


def test_chat_server_and_client_stop_on_ctrl_c(tmp_path):
    port = free_port()
    server = start_script(ROOT / "examples" / "chat_server.py", "--port", str(port),
                          cache=tmp_path)
    try:
        connect_when_up(port, server).close()
        client = start_script(ROOT / "examples" / "chat_client.py", "--port", str(port),
                              stdin=subprocess.PIPE)
        try:
            assert client.stdout.readline().startswith(b"* ")  # the greeting
        finally:
            status, err = interrupt(client)
        assert (status, err) == (0, "")
    finally:
        status, err = interrupt(server)
    assert status == 0 and "Traceback" not in err and "shutting down" in err


@pytest.mark.parametrize("script", ["finger.py", "http_get.py"])
def test_ported_client_stops_quietly_on_ctrl_c(script, listener):
    # a server that accepts and never answers: the client waits until Ctrl-C
    proc = start_script(ROOT / "examples" / "ported" / script, "127.0.0.1", str(listener.port),
                        "x")
    listener.accept(60)
    status, err = interrupt(proc)
    assert (status, err) == (-signal.SIGINT, "")  # killed by SIGINT, as the Perl twin
