"""anyevent.io (AnyEvent::IO): AnyEvent's t/11_io_perl.t + t/io_common ported,
in both models; the threads model off the loop thread; Loop.call_soon_threadsafe."""

import errno
import os
import resource
import subprocess
import sys
import threading
from time import monotonic

import pytest

import anyevent.io as aio
from anyevent import AE
from anyevent import reactor
from anyevent.io import O_CREAT, O_EXCL, O_RDONLY, O_WRONLY
from conftest import run_until


@pytest.fixture(params=["threads", "sync"])
def model(request, monkeypatch):
    monkeypatch.setattr(aio, "MODEL", request.param)
    return request.param


def t(ok, name, *args):
    """io_common's ``t``: call ``aio_<name>(*args, cb)``, wait, check that it
    succeeded (``ok``) or failed; return the first result (None on failure)."""
    cv = AE.cv()
    getattr(aio, "aio_" + name)(*args, lambda *res: cv.send(res))
    res = run_until(cv)
    assert bool(res) == bool(ok), (name, args, res, aio.last_error())
    return res[0] if res else None


def t_fails(name, *args, errno_):
    t(0, name, *args)
    assert aio.last_error().errno == errno_, aio.last_error()


# -- t/11_io_perl.t + t/io_common ----------------------------------------------

def test_io_common(model, tmp_path):
    d = str(tmp_path / ("ae_io_testdir_%d~" % os.getpid()))
    assert aio.MODEL == model                                       # ok 1, 2
    t(1, "mkdir", d, 0o777)
    t_fails("mkdir", d, 0o777, errno_=errno.EEXIST)

    # create file
    fh = t(1, "open", d + "/test", O_CREAT | O_EXCL | O_WRONLY, 0o666)
    t_fails("open", d + "/test", O_CREAT | O_EXCL | O_WRONLY, 0o666, errno_=errno.EEXIST)
    t_fails("rmdir", d, errno_=errno.ENOTEMPTY)
    assert t(1, "write", fh, b"tes--") == 5
    assert t(1, "write", fh, b"test2") == 5
    assert t(1, "write", fh, b"") == 0
    assert t(1, "seek", fh, 3, 0) == 3
    assert t(1, "write", fh, b"t1") == 2
    assert t(1, "stat", fh).st_size == 10                           # stat size
    assert t(1, "close", fh) is True
    assert t(1, "stat", d + "/test").st_size == 10
    assert t(1, "lstat", d + "/test").st_size == 10
    t(1, "rename", d + "/test", d + "/test2")

    # test dir
    t_fails("readdir", d + "/nonexistent", errno_=errno.ENOENT)
    assert t(1, "readdir", d) == ["test2"]                          # res count, data

    # test file
    fh = t(1, "open", d + "/test2", O_RDONLY, 0)
    assert t(1, "read", fh, 6) == b"test1t"
    assert t(1, "read", fh, 7) == b"est2"
    assert t(1, "read", fh, 8) == b""
    t(1, "close", fh)
    assert t(1, "load", d + "/test2") == b"test1test2"

    # cleanup
    t_fails("unlink", d + "/test", errno_=errno.ENOENT)
    t(1, "unlink", d + "/test2")
    t(1, "rmdir", d)
    assert not os.path.exists(d)


# -- what io_common leaves out: symlink, readlink, link, utime, chown, chmod, truncate

def test_links_times_owners(model, tmp_path):
    f = str(tmp_path / "file")
    with open(f, "wb") as fh:
        fh.write(b"0123456789")
    t(1, "symlink", "random data", str(tmp_path / "slink"))
    assert t(1, "readlink", str(tmp_path / "slink")) == "random data"
    t_fails("readlink", f, errno_=errno.EINVAL)
    assert t(1, "lstat", str(tmp_path / "slink")).st_size == len("random data")
    t_fails("stat", str(tmp_path / "slink"), errno_=errno.ENOENT)
    t(1, "link", f, f + ".bak")
    assert t(1, "stat", f).st_nlink == 2
    t_fails("link", f, f + ".bak", errno_=errno.EEXIST)
    t(1, "utime", f, 1000000000, 1000000001.5)
    st = os.stat(f)
    assert (st.st_atime, st.st_mtime) == (1000000000, 1000000001.5)
    t(1, "utime", f, None, None)
    assert abs(os.stat(f).st_mtime - AE.time()) < 60
    t(1, "chmod", f, 0o600)
    assert os.stat(f).st_mode & 0o7777 == 0o600
    t(1, "chown", f, None, None)
    t(1, "chown", f, None, os.getgid())
    t(1, "truncate", f, 4)
    assert t(1, "load", f) == b"0123"
    fh = t(1, "open", f, aio.O_RDWR | aio.O_APPEND, 0)
    t(1, "truncate", fh, 2)
    t(1, "write", fh, b"xy")
    t(1, "close", fh)
    assert t(1, "load", f) == b"01xy"
    t_fails("load", str(tmp_path / "nothing"), errno_=errno.ENOENT)
    t_fails("open", str(tmp_path), O_RDONLY, 0, errno_=errno.EISDIR)


def test_fh_may_be_any_fileno_object_or_fd(model, tmp_path):
    f = str(tmp_path / "file")
    fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
    assert t(1, "write", fd, b"abc") == 3
    assert t(1, "seek", fd, 0, os.SEEK_SET) == 0
    with open(fd, "rb", buffering=0, closefd=False) as fobj:
        assert t(1, "read", fobj, 10) == b"abc"
    assert t(1, "seek", fd, 0, 2) == 3
    t(1, "close", fd)
    # EBADF from a number no descriptor can have: the closed fd's own number
    # may be taken again at once (uvloop opens fds whenever its loop starts),
    # and a worker thread closing it then closes somebody else's
    never = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    t_fails("close", never, errno_=errno.EBADF)
    t_fails("read", never, 1, errno_=errno.EBADF)


def test_flags_are_perls(model):
    assert aio.FLAGS == ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL",
                         "O_TRUNC", "O_APPEND")
    for name in aio.FLAGS:
        assert getattr(aio, name) == getattr(os, name)
    assert len(aio.AIO_REQ) == 20 and all(callable(getattr(aio, n)) for n in aio.AIO_REQ)


def test_write_of_str_is_a_type_error(model, tmp_path):
    with pytest.raises(TypeError, match="encode"):
        aio.aio_write(1, "text", lambda *res: None)


def test_unknown_model_is_a_value_error(monkeypatch):
    monkeypatch.setattr(aio, "MODEL", "IOAIO")
    with pytest.raises(ValueError, match="MODEL"):
        aio.aio_stat("/", lambda *res: None)


@pytest.mark.parametrize("value, model", [("sync", "sync"), ("Perl", "Perl"),
                                          ("bogus", "threads"), ("", "threads")])
def test_model_from_environment(value, model):
    env = dict(os.environ, ANYEVENT_IO_MODEL=value)
    code = ("import logging, anyevent; logging.basicConfig();"
            " logging.getLogger('anyevent').setLevel(logging.WARNING);"
            " import anyevent.io as m; print(m.MODEL)")
    out = subprocess.run([sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == model
    assert ("unknown ANYEVENT_IO_MODEL" in out.stderr) == (value == "bogus")


# -- when callbacks run -----------------------------------------------------------

def test_sync_model_calls_back_before_returning(monkeypatch):
    monkeypatch.setattr(aio, "MODEL", "sync")
    got = []
    aio.aio_stat("/", got.append)
    assert len(got) == 1 and got[0].st_ino == os.stat("/").st_ino


def test_threads_model_calls_back_later_on_the_loop_thread(monkeypatch):
    monkeypatch.setattr(aio, "MODEL", "threads")
    seen = []
    cv = AE.cv()

    def cb(*res):
        seen.append((threading.get_ident(), res))
        cv.send()

    def where():
        seen.append(threading.get_ident())
        return os.getpid()

    aio._submit(cb, where)
    assert seen == []  # not before the function returned
    run_until(cv)
    worker, (caller, res) = seen
    assert caller == threading.get_ident() != worker
    assert res == (os.getpid(),)


def test_a_bad_argument_reaches_the_exception_handler(monkeypatch, callback_errors):
    monkeypatch.setattr(aio, "MODEL", "threads")
    cv = AE.cv()
    with pytest.raises(AttributeError):  # the fd is taken at once
        aio.aio_stat(None, lambda *res: cv.send(res))
    aio.aio_lstat(None, lambda *res: cv.send(res))  # the path only in the worker
    aio.aio_stat("/", lambda *res: cv.send(res))  # the loop goes on after the error
    assert run_until(cv)[0].st_ino == os.stat("/").st_ino
    # the two ran on different workers: the error may arrive after the result
    reported = AE.cv()
    w = AE.timer(0, 0.01, lambda: callback_errors and reported.send())
    run_until(reported)
    w.cancel()
    (where, exc), = callback_errors
    assert where == "call_soon_threadsafe" and isinstance(exc, TypeError)


def test_slow_read_does_not_delay_a_timer(monkeypatch, tmp_path):
    """A read from a FIFO nobody writes to blocks its worker, not the loop."""
    monkeypatch.setattr(aio, "MODEL", "threads")
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    fh = t(1, "open", fifo, aio.O_RDWR, 0)  # a reader and writer of its own: no EOF
    read = AE.cv()
    aio.aio_read(fh, 10, lambda *res: read.send(res))
    start = monotonic()
    cv = AE.cv()
    timer = AE.timer(0.01, 0, lambda: cv.send(monotonic() - start))
    took = run_until(cv)
    assert took < 0.1 and not read.ready()
    del timer
    # now somebody writes: the read completes and is delivered
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.write(writer, b"late")
    os.close(writer)
    assert run_until(read) == (b"late",)
    t(1, "close", fh)


def test_many_operations_all_delivered(monkeypatch, tmp_path):
    monkeypatch.setattr(aio, "MODEL", "threads")
    cv = AE.cv()
    got = []
    for i in range(50):
        cv.begin()
        aio.aio_mkdir(str(tmp_path / str(i)), 0o777,
                      lambda *res, i=i: (got.append((i, res)), cv.end()))
    run_until(cv)
    assert sorted(got) == [(i, (True,)) for i in range(50)]
    assert len(os.listdir(tmp_path)) == 50


# -- Loop.call_soon_threadsafe ------------------------------------------------------

def test_call_soon_threadsafe_wakes_a_sleeping_loop():
    lp = reactor.Loop()
    lp.prepare_threadsafe()
    cv = lp.condvar()
    got = []

    def worker():
        lp.call_soon_threadsafe(got.append, threading.get_ident())
        lp.call_soon_threadsafe(got.append, "second")
        lp.call_soon_threadsafe(cv.send, monotonic())

    keep = lp.timer(30, 0, lambda: None)  # the loop would otherwise sleep 30 s
    start = monotonic()
    threading.Timer(0.05, worker).start()
    sent = cv.recv()
    assert monotonic() - start < 1 and monotonic() - sent < 0.5
    assert got[1:] == ["second"] and got[0] != threading.get_ident()
    del keep


def test_call_soon_threadsafe_from_the_loop_thread_and_errors(callback_errors):
    lp = reactor.Loop()
    cv = lp.condvar()

    def boom():
        raise KeyError("boom")

    lp.call_soon_threadsafe(boom)
    lp.call_soon_threadsafe(cv.send, 42)
    assert cv.recv() == 42
    (where, exc), = callback_errors
    assert where == "call_soon_threadsafe" and isinstance(exc, KeyError)


def test_loop_without_call_soon_threadsafe_has_no_wakeup():
    lp = reactor.Loop()
    assert lp._ts_w is None
    with pytest.raises(RuntimeError, match="no watchers"):
        lp.condvar().recv()


def test_after_fork_drops_the_wakeup():
    lp = reactor.Loop()
    lp.prepare_threadsafe()
    pid = os.fork()
    if pid == 0:
        try:
            lp.after_fork()
            ok = lp._ts_w is None
            cv = lp.condvar()
            lp.call_soon_threadsafe(cv.send, 7)
            ok = ok and cv.recv() == 7
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
