"""Core AnyEvent::Handle semantics: queues, EOF rules, errors, timeouts, lifetime."""

import errno
import gc
import os
import re
import socket
import sys
import types
import weakref

import cbor2
import pytest

from anyevent import AE
from anyevent.handle import Handle, register_read_type, register_write_type
from conftest import own_loop_only, pair, run_until


def test_line_reads_then_eof_calls_on_eof():
    a, b = pair()
    cv = AE.cv()
    got = []
    h = Handle(fh=a, on_eof=lambda h: cv.send("eof"), on_error=lambda *x: cv.send(("error", x)))
    h.push_read("line", lambda h, line, eol: got.append((line, eol)))
    h.push_read("line", lambda h, line, eol: got.append((line, eol)))
    h.on_read(lambda h: None)  # keeps reading after the queue empties
    b.sendall(b"one\r\ntwo\nrest")
    b.close()
    assert run_until(cv) == ("error", (h, True, "Broken pipe"))  # unconsumed "rest" + on_read = EPIPE
    assert got == [(b"one", b"\r\n"), (b"two", b"\n")]


def test_take_rbuf_hands_over_the_buffer_and_reading_goes_on():
    a, b = pair()
    cv = AE.cv()
    parts = []
    def on_read(h):
        parts.append(h.take_rbuf())
        if b"".join(parts).endswith(b"end"):
            cv.send()
    h = Handle(fh=a, on_error=lambda *x: cv.croak(x), on_read=on_read)
    b.sendall(b"first ")
    settle_until = AE.timer(0.05, 0, lambda: b.sendall(b"second end"))
    run_until(cv)
    assert b"".join(parts) == b"first second end"
    assert all(type(p) is bytearray for p in parts) and len({id(p) for p in parts}) == len(parts)
    assert h.rbuf == b""  # a fresh buffer, empty
    h.push_read("line", lambda h, line, eol: cv.send(line))
    cv = AE.cv()
    b.sendall(b"after\n")
    assert run_until(cv) == b"after"
    del settle_until


def test_eof_with_pending_read_is_fatal_epipe():
    a, b = pair()
    cv = AE.cv()
    errs = []

    def on_error(h, fatal, msg):
        errs.append((fatal, msg, h.errno))
        cv.send()
    h = Handle(fh=a, on_error=on_error, on_eof=lambda h: cv.send("eof"))
    h.push_read("line", lambda *a: None)
    b.sendall(b"partial")
    b.close()
    run_until(cv)
    assert errs == [(True, os.strerror(errno.EPIPE), errno.EPIPE)]
    assert h.destroyed()


def test_eof_without_on_eof_is_unexpected_eof():
    a, b = pair()
    cv = AE.cv()
    errs = []
    h = Handle(fh=a, on_error=lambda h, f, m: (errs.append((f, m, h.errno)), cv.send()))
    h.on_read(lambda h: h.rbuf.clear())
    b.close()
    run_until(cv)
    assert errs == [(True, "Unexpected end-of-file", 0)]


def test_eof_delivers_remaining_data_first():
    a, b = pair()
    cv = AE.cv()
    seen = []
    h = Handle(fh=a, on_eof=lambda h: cv.send(bytes(seen)))
    h.on_read(lambda h: (seen.extend(h.rbuf), h.rbuf.clear()))
    b.sendall(b"last words")
    b.close()
    assert run_until(cv) == b"last words"


def test_unshift_read_goes_first_and_on_read_after_queue():
    a, b = pair()
    cv = AE.cv()
    order = []
    h = Handle(fh=a)

    def on_read(h):
        order.append(("on_read", bytes(h.rbuf)))
        h.rbuf.clear()
        cv.send()
    h.push_read("chunk", 2, lambda h, d: order.append(("push", d)))
    h.unshift_read("chunk", 1, lambda h, d: order.append(("unshift", d)))
    h.on_read(on_read)
    b.sendall(b"abcdef")
    run_until(cv)
    assert order == [("unshift", b"a"), ("push", b"bc"), ("on_read", b"def")]


def test_plain_callback_reader_returns_true_when_done():
    a, b = pair()
    cv = AE.cv()
    h = Handle(fh=a)

    def reader(h):
        if len(h.rbuf) < 4:
            return False
        cv.send(bytes(h.rbuf[:4]))
        del h.rbuf[:4]
        return True
    h.push_read(reader)
    b.sendall(b"ab")
    AE.postpone(lambda: b.sendall(b"cdef"))
    assert run_until(cv) == b"abcd"
    assert h.rbuf == b"ef"


def test_regex_eol_and_regex_type():
    a, b = pair()
    cv = AE.cv()
    got = []
    h = Handle(fh=a)
    h.push_read("line", re.compile(rb"[;|]"), lambda h, l, e: got.append((l, e)))
    h.push_read("regex", re.compile(rb"END"), None, re.compile(rb"^[a-z]+"),
                lambda h, data: got.append(data))
    h.push_read("line", b"--", lambda h, l, e: (got.append((l, e)), cv.send()))
    b.sendall(b"x;abcEND" + b"tail--")
    run_until(cv)
    assert got == [(b"x", b";"), b"abcEND", (b"tail", b"--")]


def test_regex_reject_is_nonfatal_ebadmsg():
    a, b = pair()
    cv = AE.cv()
    errs = []
    h = Handle(fh=a, on_error=lambda h, f, m: (errs.append((f, h.errno)), cv.send()))
    h.push_read("regex", rb"OK", rb"ERR", lambda h, d: None)
    b.sendall(b"xxERR")
    run_until(cv)
    assert errs == [(False, errno.EBADMSG)]
    assert not h.destroyed()


def test_write_drain_chain_and_low_water_mark():
    a, b = pair()
    cv = AE.cv()
    hw = Handle(fh=a)
    chunks = iter([b"x" * 100000] * 5)
    sent = []

    def drain(h):
        data = next(chunks, None)
        if data is None:
            h.on_drain(None)
            h.push_shutdown()
            return
        sent.append(len(data))
        h.push_write(data)
    hw.on_drain(drain)  # called at once: buffer is empty
    received = bytearray()
    hr = Handle(fh=b, on_eof=lambda h: cv.send())
    hr.on_read(lambda h: (received.extend(h.rbuf), h.rbuf.clear()))
    run_until(cv)
    assert sent == [100000] * 5
    assert len(received) == 500000


def test_push_write_str_is_type_error():
    a, b = pair()
    h = Handle(fh=a)
    with pytest.raises(TypeError, match="encode"):
        h.push_write("text")


def test_wbuf_max_is_fatal_enospc():
    a, b = pair()
    cv = AE.cv()
    errs = []
    h = Handle(fh=a, wbuf_max=1000, on_error=lambda h, f, m: (errs.append((f, h.errno)), cv.send()))
    h.push_write(b"y" * 10_000_000)
    run_until(cv)
    assert errs == [(True, errno.ENOSPC)]


def test_rbuf_max_is_fatal_enospc():
    a, b = pair()
    cv = AE.cv()
    errs = []
    h = Handle(fh=a, rbuf_max=100, on_error=lambda h, f, m: (errs.append((f, h.errno)), cv.send()))
    h.push_read("line", lambda *x: None)
    b.sendall(b"z" * 500)
    run_until(cv)
    assert errs == [(True, errno.ENOSPC)]


def test_timeout_is_nonfatal_and_repeats():
    a, b = pair()
    cv = AE.cv()
    hits = []

    def on_error(h, fatal, msg):
        hits.append((fatal, h.errno))
        if len(hits) == 2:
            cv.send()
    h = Handle(fh=a, timeout=0.05, on_error=on_error)
    run_until(cv)
    assert hits == [(False, errno.ETIMEDOUT)] * 2
    assert not h.destroyed()


def test_on_timeout_and_activity_resets():
    a, b = pair()
    cv = AE.cv()
    AE.now_update()  # timers count from the loop's cached time, as in Perl
    start = AE.time()
    h = Handle(fh=a, rtimeout=0.2, on_rtimeout=lambda h: cv.send(AE.time() - start))
    h.on_read(lambda h: h.rbuf.clear())
    feeder = AE.timer(0.05, 0.05, lambda: b.send(b"."))
    stop = AE.timer(0.3, 0, feeder.cancel)
    elapsed = run_until(cv)
    assert elapsed >= 0.45  # activity until 0.3 s pushed the read timeout out


def test_negative_timeout_raises():
    a, b = pair()
    h = Handle(fh=a)
    with pytest.raises(ValueError):
        h.timeout(-1)


def test_negative_chunk_length_raises_and_queues_nothing():
    a, b = pair()
    h = Handle(fh=a)
    for push in (h.push_read, h.unshift_read):
        with pytest.raises(ValueError, match="negative length -1"):
            push("chunk", -1, lambda h, data: None)
    with pytest.raises(ValueError):
        h.push_read_chunk(-5, lambda h, data: None)
    with pytest.raises(ValueError, match="impossible length"):   # (compiled: a C size)
        h.push_read("chunk", 2 ** 64, lambda h, data: None)
    assert not h._queue
    cv = AE.cv()
    h.push_read("chunk", 0, lambda h, data: cv.send(data))      # zero is a chunk
    assert run_until(cv) == b""


def test_uncaught_fatal_error_raises(callback_errors):
    a, b = pair()
    h = Handle(fh=a)
    h.push_read("line", lambda *x: None)
    b.close()
    cv = AE.cv()
    t = AE.timer(0.1, 0, cv)
    cv.recv()
    assert len(callback_errors) == 1
    where, exc = callback_errors[0]
    assert isinstance(exc, OSError) and exc.errno == errno.EPIPE
    assert "uncaught error" in str(exc)
    assert h.destroyed()


def test_destroy_makes_methods_silent_noops():
    a, b = pair()
    calls = []
    h = Handle(fh=a, on_read=lambda h: calls.append(1), close_fh=False)  # data still arrives
    h.destroy()
    assert h.destroyed()
    assert h.fh is None
    h.push_write(b"ignored")
    h.push_read("line", lambda *x: calls.append(2))
    h.on_read(lambda h: calls.append(3))
    h.starttls("connect")
    h.destroy()
    b.sendall(b"data\n")
    cv = AE.cv()
    t = AE.timer(0.05, 0, cv)
    cv.recv()
    assert calls == []


def test_dropping_handle_destroys_it_and_closes_socket():
    a, b = pair()
    fired = []
    h = Handle(fh=a, on_read=lambda h: fired.append(1))
    ref = weakref.ref(h)
    del h, a
    gc.collect()
    assert ref() is None
    b.settimeout(1)
    assert b.recv(10) == b""  # the socket was closed when the handle went away
    b.close()


def test_handle_survives_during_own_callback():
    a, b = pair()
    cv = AE.cv()
    holder = {}

    def on_read(h):
        holder.clear()  # drop the only user reference inside the callback
        h.push_write(b"still alive")
        cv.send()
    holder["h"] = Handle(fh=a, on_read=on_read, linger=0)
    b.sendall(b"go")
    run_until(cv)
    b.settimeout(1)
    assert b.recv(100) == b"still alive"


def test_pipes_work_too():
    r, w = os.pipe()
    cv = AE.cv()
    got = []
    hr = Handle(fh=r, on_eof=lambda h: cv.send(), on_read=lambda h: None)
    hr.push_read("line", lambda h, l, e: got.append(l))
    hw = Handle(fh=w)
    hw.push_write(b"through a pipe\n")
    del hw  # it lingers until the line is written, then closes w
    run_until(cv)
    assert got == [b"through a pipe"]
    hr.destroy()  # closes r


def test_old_names_port_unchanged():
    a, b = pair()
    cv = AE.cv()
    got = []
    h = Handle(fh=a)
    h.push_read_line(lambda h, l, e: got.append(l))
    h.push_read_chunk(3, lambda h, d: got.append(d))
    h.unshift_read_line(b"|", lambda h, l, e: got.append(l))
    h.unshift_read_chunk(1, lambda h, d: (got.append(d), None))
    h.push_read("chunk", 1, lambda h, d: cv.send())
    hb = Handle(fh=b)
    hb.push_write(b"-first|second\nabc!")
    hb.unshift_write(b"")
    run_until(cv)
    assert got == [b"-", b"first", b"second", b"abc"]


def test_custom_types_registered_and_dotted(monkeypatch):
    mod = types.ModuleType("aetestpkg")
    sub = types.ModuleType("aetestpkg.kv")

    def anyevent_write_type(hdl, key, value):
        return b"%s=%s;" % (key, value)

    def anyevent_read_type(hdl, cb, sep=b";"):
        def reader(hdl):
            pos = hdl.rbuf.find(sep)
            if pos < 0:
                return False
            k, _, v = bytes(hdl.rbuf[:pos]).partition(b"=")
            del hdl.rbuf[:pos + 1]
            cb(hdl, k, v)
            return True
        return reader
    mod.anyevent_write_type = anyevent_write_type  # found on the parent module
    sub.anyevent_read_type = anyevent_read_type
    monkeypatch.setitem(sys.modules, "aetestpkg", mod)
    monkeypatch.setitem(sys.modules, "aetestpkg.kv", sub)
    register_write_type("upper", lambda hdl, data: data.upper())
    register_read_type("upper", lambda hdl, cb, n: lambda h: len(h.rbuf) >= n and (
        cb(h, bytes(h.rbuf[:n])), h.rbuf.__delitem__(slice(0, n))) is not None)

    a, b = pair()
    cv = AE.cv()
    got = []
    hr = Handle(fh=a)
    hr.push_read("aetestpkg.kv", lambda h, k, v: got.append((k, v)))
    hr.push_read("upper", 3, lambda h, d: (got.append(d), cv.send()))
    hw = Handle(fh=b)
    hw.push_write("aetestpkg.kv", b"a", b"1")
    hw.push_write("upper", b"xyz")
    run_until(cv)
    assert got == [(b"a", b"1"), b"XYZ"]
    with pytest.raises(ValueError, match="unsupported"):
        hw.push_write("no.such.module.type", 1)


def test_read_size_grows_up_to_max():
    a, b = pair()
    cv = AE.cv()
    h = Handle(fh=a, read_size=1024, max_read_size=8192)
    total = []
    h.on_read(lambda h: (total.append(len(h.rbuf)), h.rbuf.clear(),
                         sum(total) >= 200000 and cv.send()))
    b.sendall(b"q" * 200000)
    run_until(cv)
    assert h.read_size == 8192


def test_reads_and_writes_queued_before_fh_exists_are_kept():
    # connect= path is exercised in the socket tests; here: stop/start_read
    a, b = pair()
    cv = AE.cv()
    h = Handle(fh=a)
    h.stop_read()
    b.sendall(b"later\n")
    h.push_read("line", lambda h, l, e: cv.send(l))
    h.stop_read()
    t = AE.timer(0.05, 0, h.start_read)
    assert run_until(cv) == b"later"


def test_unknown_option_is_stored_like_perl_hash_key():
    a, b = pair()
    h = Handle(fh=a, nick="alice")
    assert h.nick == "alice"
    with pytest.raises(TypeError):
        Handle(fh=b, push_write=1)


def test_writes_from_a_read_callback_go_out_together_in_order(monkeypatch):
    a, b = pair()
    cv = AE.cv()
    sends = []
    h = Handle(fh=a, linger=0)
    real_send = h._send

    def counting_send(fh, data):
        sends.append(bytes(data))
        return real_send(fh, data)
    monkeypatch.setattr(h, "_send", counting_send)

    def line(h, data, eol):
        h.push_write(data.upper() + b"\n")
        if data == b"c":
            h.on_drain(lambda h: cv.send())
        h.push_read("line", line)
    h.push_read("line", line)
    b.sendall(b"a\nb\nc\n")
    run_until(cv)
    b.settimeout(1)
    assert b.recv(100) == b"A\nB\nC\n"
    # one send for the three replies: on_drain, set in the last callback,
    # wrote out what the first two held (Perl: one syswrite each, same bytes)
    assert sends == [b"A\nB\nC\n"]


@own_loop_only("recv() cannot nest inside a callback on the asyncio models (it raises)")
def test_condvar_wait_inside_read_callback_after_a_write():
    a, b = pair()
    c, d = pair()
    cv = AE.cv()
    back = Handle(fh=d)
    server = Handle(fh=b)  # answers each question on the other channel
    server.push_read("line", lambda h, l, e: back.push_write(b"reply to " + l + b"\n"))
    client, replies = Handle(fh=a), Handle(fh=c)

    def on_hello(h, line, eol):
        answer = AE.cv()
        h.push_write(b"question\n")  # on the wire before the nested wait
        replies.push_read("line", lambda h, l, e: answer.send(l))
        cv.send(run_until(answer))
    client.push_read("line", on_hello)
    server.push_write(b"hello\n")
    assert run_until(cv) == b"reply to question"


def test_write_then_destroy_inside_read_callback_with_linger_0_still_sends():
    a, b = pair()
    cv = AE.cv()

    def on_line(h, line, eol):
        h.push_write(b"bye\n")
        h.destroy()
        cv.send()
    h = Handle(fh=a, linger=0)
    h.push_read("line", on_line)
    b.sendall(b"quit\n")
    run_until(cv)
    b.settimeout(1)
    assert b.recv(100) == b"bye\n"


def test_assigning_rbuf_replaces_its_contents():
    """AnyEvent::HTTPD empties the buffer with ``$hdl->{rbuf} = ''``."""
    a, b = pair()
    seen, cv = AE.cv(), AE.cv()
    h = Handle(fh=a, on_read=lambda h: seen.send())  # leaves the data in rbuf
    b.sendall(b"junk")
    run_until(seen)
    buf = h.rbuf
    h.rbuf = b""
    assert h.rbuf is buf and h.rbuf == b""
    h.on_read(None)
    h.push_read("line", lambda h, line, eol: cv.send(line))
    b.sendall(b"next\n")
    assert run_until(cv) == b"next"
    h["rbuf"] = b"abc"
    assert h.rbuf == b"abc"


def test_memoryview_of_rbuf_kept_past_the_callback_is_one_fatal_ebusy():
    """rbuf cannot grow while a view of it lives: one fatal error, not a
    report per readiness, and the loop goes on serving other handles."""
    a, b = pair()
    views, errors, cv, seen = [], [], AE.cv(), AE.cv()

    def keep_a_view(h):
        views.append(memoryview(h.rbuf))  # and never released
        seen.send()

    def on_error(h, fatal, message):
        errors.append((fatal, h.errno, message))
        cv.send()
    h = Handle(fh=a, on_read=keep_a_view, on_error=on_error)
    b.sendall(b"first")
    run_until(seen)
    b.sendall(b"second")
    run_until(cv)
    c, d = pair()
    echo = AE.cv()
    other = Handle(fh=c, on_read=lambda h: echo.send(bytes(h.rbuf)))  # noqa: F841
    d.sendall(b"still serving")
    assert run_until(echo) == b"still serving"
    assert errors == [(True, errno.EBUSY, errors[0][2])] and "memoryview" in errors[0][2]
    assert h.destroyed() and bytes(views[0]) == b"first"


def test_reset_arriving_with_data_is_reported_after_the_data(listener):
    """(uvloop alone stops watching an fd after such an event: the uvloop
    model polls through an epoll set of its own.)"""
    import struct
    import time
    client, server = listener.pair()
    got, cv = [], AE.cv()
    server.sendall(b"never read")  # the client closes with it unread: a reset
    client.sendall(b"hello")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.05)  # the data and the reset are both there before the first read
    h = Handle(fh=server, read_size=3, on_read=lambda h: (got.append(bytes(h.rbuf)), h.rbuf.clear()),
               on_error=lambda h, fatal, msg: cv.send((fatal, h.errno)))
    assert run_until(cv, 2) == (True, errno.ECONNRESET)
    assert b"".join(got) == b"hello"


def test_current_callbacks_read_back_as_perl_hash_keys():
    """AnyEvent::HTTP saves ``$hdl->{on_eof}`` and restores it later."""
    a, b = pair()

    def eof1(h):
        pass

    def on_timeout(h):
        pass
    h = Handle(fh=a, on_eof=eof1, on_timeout=on_timeout, mykey=5)
    saved = h["on_eof"]
    assert saved is eof1
    h.on_eof(lambda h: None)
    assert h["on_eof"] is not eof1
    h["on_eof"] = saved
    assert h["on_eof"] is eof1
    assert h["on_error"] is None and h["on_timeout"] is on_timeout
    assert h["fh"] is a and h["mykey"] == 5
    with pytest.raises(KeyError):
        h["no_such_key"]


def test_read_and_write_types_from_a_top_level_module(tmp_path, monkeypatch):
    (tmp_path / "MyProto.py").write_text(
        "def anyevent_read_type(hdl, cb, n):\n"
        "    def reader(hdl):\n"
        "        if len(hdl.rbuf) < n:\n"
        "            return False\n"
        "        data = bytes(hdl.rbuf[:n]); del hdl.rbuf[:n]; cb(hdl, data)\n"
        "        return True\n"
        "    return reader\n"
        "def anyevent_write_type(hdl, data):\n"
        "    return data.upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    a, b = pair()
    cv = AE.cv()
    h = Handle(fh=a)
    h.push_read("MyProto", 3, lambda h, data: cv.send(data))
    h.push_write("MyProto", b"shout")
    b.sendall(b"abcdef")
    assert run_until(cv) == b"abc"
    b.settimeout(2)
    assert b.recv(10) == b"SHOUT"


def test_json_and_cbor_options_take_coder_objects():
    """Perl's json_coder/cbor_coder, and any object with their methods."""
    from anyevent.handle import cbor_coder, json_coder

    class Shouting:
        def encode(self, value):
            return cbor2.dumps(value.upper())

        def decode(self, data):
            return cbor2.loads(data).lower()

    a, b = pair()
    cv = AE.cv()
    cv.begin()
    cv.begin()
    cv.begin()
    got = []
    writer = Handle(fh=a, json=json_coder(), cbor=Shouting())
    reader = Handle(fh=b, json=json_coder(), cbor=cbor_coder(loads_kw={"str_errors": "replace"}))
    reader.push_read("json", lambda h, v: (got.append(v), cv.end()))
    reader.push_read("cbor", lambda h, v: (got.append(v), cv.end()))
    reader.push_read("cbor", lambda h, v: (got.append(v), cv.end()))
    writer.push_write("json", {"a": [1, "é"]})
    writer.push_write("cbor", "quiet")
    Handle(fh=a, cbor=cbor_coder({"canonical": True}), linger=0).push_write("cbor", {"b": 1, "a": 2})
    run_until(cv)
    assert got == [{"a": [1, "é"]}, "QUIET", {"a": 2, "b": 1}]
    assert json_coder()[0].encode({"x": "é"}) == '{"x":"é"}'
    with pytest.raises(ValueError):
        json_coder()[1].raw_decode("NaN")
    writer.destroy()
    reader.destroy()


def test_close_context_manager_and_repr(listener):
    a, b = listener.pair()
    with Handle(fh=a, on_read=lambda h: None) as h:
        text = repr(h)
        assert re.fullmatch(r"<Handle fd=\d+ peer=127\.0\.0\.1:\d+ reading rbuf=0 wbuf=0>", text), text
    assert h.destroyed() and repr(h) == "<Handle destroyed>"
    c, d = pair()
    h2 = Handle(fh=c)
    h2.close()
    assert h2.destroyed()
    h2.close()  # a no-op now, as every method of a destroyed handle
    for s in (a, b, c, d):
        s.close()


@pytest.mark.parametrize("eol", [rb"\r?\n", rb"\r\n|\n", rb"\n|\r\n", rb"\015?\012", rb"\r\n", rb"--",
                                 rb"(?:\r?\n|\x00)", rb"(?i)x"])
def test_regex_line_spellings_cut_where_the_regex_matches(eol):
    """Regexes the reader takes a shortcut for (the default's \\r?\\n, plain
    strings) cut exactly where a search of the regex does."""
    data = b"a\rb\r\nc\nd--e\x00fXg\r\r\nh--\n"
    rx = re.compile(eol)
    expected, rest = [], data
    while (m := rx.search(rest)) is not None:
        expected.append((rest[:m.start()], m.group()))
        rest = rest[m.end():]
    a, b = pair()
    got = []
    h = Handle(fh=a, on_error=lambda *x: None)
    def line(h, text, end):
        got.append((text, end))
        h.push_read("line", rx, line)
    h.push_read("line", rx, line)
    b.sendall(data)
    cv = AE.cv()
    t = AE.timer(0.1, 0, cv.send)
    cv.recv()
    assert got == expected
    h.destroy()
    del t
