"""Lifetime of a dropped handle: unwritten data lingers (Perl's DESTROY).

A handle dropped (``del``, no ``destroy()``) with data still queued keeps
writing it in the background for up to ``linger`` seconds (default 3600),
silently, then closes its fh.  ``linger=0`` drops the
data at once.  The reader here is a plain socket watched on the same loop.
"""

import gc
import os
import socket
import weakref

from anyevent import AE
from anyevent.handle import Handle

MB = 1 << 20


def payload(run):
    """1 MB that differs from run to run (a lost or repeated chunk shows)."""
    return (b"%08d" % run) * (MB // 8)


class Reader:
    """Reads an fd on the loop until EOF; ``cv`` gets the bytes."""

    def __init__(self, fh, start=True):
        self.fh = fh
        self.fd = fh if isinstance(fh, int) else fh.fileno()
        self.data = bytearray()
        self.cv = AE.cv()
        self.w = None
        if start:
            self.start()

    def start(self):
        self.w = AE.io(self.fh, 0, self._read)

    def _read(self):
        chunk = os.read(self.fd, 4 * MB)
        if chunk:
            self.data += chunk
        else:
            self.w = None
            self.cv.send(bytes(self.data))

    def result(self, timeout=10):
        timer = AE.timer(timeout, 0, lambda: self.cv.croak("no EOF after %d bytes" % len(self.data)))
        try:
            return self.cv.recv()
        finally:
            timer.cancel()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_dropped_handle_delivers_every_byte_1000_times():
    gc.collect()
    fds = open_fds()
    for run in range(1000):
        a, b = socket.socketpair()
        data = payload(run)
        hdl = Handle(fh=a)
        hdl.push_write(data)
        assert hdl.wbuf  # most of the megabyte is still queued
        reader = Reader(b)
        del hdl, a  # the last references: the handle goes, the data must not
        assert reader.result() == data, "run %d" % run
        b.close()
    gc.collect()
    assert open_fds() <= fds  # every lingering socket was closed in the end


def test_dropped_pipe_writer_delivers_and_closes():
    for run in range(20):
        r, w = os.pipe()
        data = payload(run)
        hdl = Handle(fh=open(w, "wb", buffering=0))
        hdl.push_write(data)
        reader = Reader(r)
        del hdl
        assert reader.result() == data
        os.close(r)


def test_destroy_lingers_too():
    a, b = socket.socketpair()
    data = payload(1)
    hdl = Handle(fh=a)
    hdl.push_write(data)
    del a
    hdl.destroy()  # as Perl's destroy: DESTROY runs, the rest is written out
    assert hdl.destroyed()
    with b:
        assert Reader(b).result() == data


def test_linger_zero_drops_unwritten_data():
    for how in ("destroy", "del"):
        a, b = socket.socketpair()
        data = payload(2)
        hdl = Handle(fh=a, linger=0)
        hdl.push_write(data)
        queued = len(hdl.wbuf)
        assert queued
        del a
        if how == "destroy":
            hdl.destroy()
        else:
            del hdl
        with b:
            got = Reader(b).result()
        # what the kernel took at push_write time arrives, the rest is gone
        assert got == data[:len(data) - queued], how


def test_linger_timeout_gives_up_and_closes():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    data = payload(3)
    hdl = Handle(fh=a, linger=0.5)
    hdl.push_write(data)
    alive = weakref.ref(a)
    reader = Reader(b, start=False)  # the peer does not read: linger cannot finish
    del hdl, a
    assert alive() is not None  # lingering holds the socket open

    checks = []
    early = AE.timer(0.05, 0, lambda: checks.append(alive() is not None))
    late = AE.timer(1.0, 0, lambda: (checks.append(alive() is None), reader.start()))
    with b:
        got = reader.result()
    assert checks == [True, True]  # still open at 0.05 s, closed after 0.5 s
    assert len(got) < len(data) and data.startswith(got)
    del early, late


def test_linger_stops_silently_when_the_peer_goes():
    # the peer closes: writes fail with EPIPE/ECONNRESET; nothing is reported
    # (the conftest fixture fails the test on any exception in a callback)
    a, b = socket.socketpair()
    hdl = Handle(fh=a, on_error=lambda *args: errors.append(args))
    errors = []
    hdl.push_write(payload(4))
    alive = weakref.ref(a)
    del hdl, a
    b.close()
    cv = AE.cv()
    timer = AE.timer(0.2, 0, cv)
    cv.recv()
    del timer
    gc.collect()
    assert alive() is None and errors == []
