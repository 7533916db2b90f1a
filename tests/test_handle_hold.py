"""Writes a read callback makes go out together at the end of the dispatch.

Perl hands each ``push_write`` to the kernel at once: one syscall per reply
line.  The port keeps a read callback's immutable writes until its handle's
read dispatch ends and sends them in one call, which nothing can observe:
every way a program can look at the stream first writes out what is held.
Each test below is one of those ways, and checks the bytes and the order
Perl gives (tests/perl/write_order.pl covers fh use and on_drain against
Perl itself).
"""

import json
import socket
import ssl
import threading

from anyevent import AE, loop
from anyevent.handle import Handle

from conftest import own_loop_only, pair, run_until
from test_handle_tls import server_ctx
from tlsfixtures import certs


def _counting(monkeypatch, hdl):
    sends = []
    real_send = hdl._send

    def send(fh, data):
        sends.append(bytes(data))
        return real_send(fh, data)
    monkeypatch.setattr(hdl, "_send", send)
    return sends


def _recv_exactly(sock, size):
    sock.settimeout(5)
    got = b""
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        assert chunk, "EOF after %r" % got
        got += chunk
    return got


def _reply_to_one_line(reply, **opts):
    """Run ``reply(h, line, eol)`` as the read callback of a line the peer
    sends; return the handle and the peer's socket."""
    a, b = pair()
    cv = AE.cv()

    def on_line(h, line, eol):
        try:
            reply(h, line, eol)
        finally:
            cv.send()
    hdl = Handle(fh=a, linger=0, **opts)
    hdl.push_read("line", on_line)
    b.sendall(b"go\n")
    run_until(cv)
    return hdl, b


def test_a_line_echo_sends_one_batch_per_read(monkeypatch):
    a, b = pair()
    hdl = Handle(fh=a, linger=0)
    sends = _counting(monkeypatch, hdl)
    lines = [b"line %d" % i for i in range(100)]

    cv = AE.cv()

    def echo(h, line, eol):
        h.push_write(line.upper() + b"\n")
        h.push_read("line", echo if line != lines[-1] else lambda *x: None)
        if line == lines[-1]:
            AE.postpone(cv.send)  # after this dispatch ends
    hdl.push_read("line", echo)
    b.sendall(b"".join(line + b"\n" for line in lines))
    expected = b"".join(line.upper() + b"\n" for line in lines)
    run_until(cv)
    assert _recv_exactly(b, len(expected)) == expected
    assert len(sends) <= 2  # one per read: the 100 lines may arrive in two reads


def test_wbuf_reads_as_in_perl_inside_the_callback():
    seen = []

    def reply(h, line, eol):
        h.push_write(b"ok\n")
        seen.append(len(h.wbuf))  # the kernel took it, as after Perl's syswrite
    hdl, b = _reply_to_one_line(reply)
    assert seen == [0]
    assert _recv_exactly(b, 3) == b"ok\n"


def test_direct_use_of_the_fh_comes_after_the_pushed_reply():
    def reply(h, line, eol):
        h.push_write(b"HEADER\n")
        h.fh.send(b"BODY\n")  # Perl: syswrite $hdl->{fh} after push_write
    hdl, b = _reply_to_one_line(reply)
    assert _recv_exactly(b, 12) == b"HEADER\nBODY\n"


def test_destroy_without_linger_after_a_reply_still_sends_it():
    def reply(h, line, eol):
        h.push_write(b"bye\n")
        h.destroy()  # linger=0: Perl had written "bye" already
    hdl, b = _reply_to_one_line(reply)
    assert _recv_exactly(b, 4) == b"bye\n"


def test_replies_before_a_malformed_frame_reach_the_peer_before_the_error():
    a, b = pair()
    events, cv = [], AE.cv()

    def on_json(h, value):
        h.push_write(b"got %d\n" % value["n"])
        h.push_read("json", on_json)

    def on_error(h, fatal, message):
        events.append(("error", h.errno))
        b.settimeout(5)
        events.append(("peer had", b.recv(100)))  # already on the wire
        cv.send()
    hdl = Handle(fh=a, on_error=on_error, linger=0)
    hdl.push_read("json", on_json)
    b.sendall(json.dumps({"n": 1}).encode() + json.dumps({"n": 2}).encode() + b"]garbage")
    run_until(cv)
    assert events == [("error", 74), ("peer had", b"got 1\ngot 2\n")]  # EBADMSG


def test_mutable_data_after_held_bytes_keeps_the_order():
    def reply(h, line, eol):
        h.push_write(b"one\n")
        buf = bytearray(b"two\n")
        h.push_write(buf)  # not held: it may change after the call
        buf[:] = b"XXX\n"
        h.push_write(b"three\n")
    hdl, b = _reply_to_one_line(reply)
    assert _recv_exactly(b, 14) == b"one\ntwo\nthree\n"


def test_unshift_write_comes_after_what_was_pushed_before_it():
    def reply(h, line, eol):
        h.push_write(b"one\n")  # Perl: on the wire already
        h.unshift_write(b"zero\n")  # the front of what is still unwritten
    hdl, b = _reply_to_one_line(reply)
    assert _recv_exactly(b, 9) == b"one\nzero\n"


def test_large_replies_go_out_in_slices(monkeypatch):
    a, b = pair()
    hdl = Handle(fh=a, linger=0)
    sends = _counting(monkeypatch, hdl)
    cv = AE.cv()
    block = b"x" * 8192

    def reply(h, line, eol):
        for _ in range(20):  # 160 KiB: released every 64 KiB on the way
            h.push_write(block)
        assert len(sends) >= 2
        cv.send()
    hdl.push_read("line", reply)
    b.sendall(b"go\n")
    reader = threading.Thread(target=_recv_exactly, args=(b, 20 * len(block)))
    reader.start()
    run_until(cv)
    done = AE.cv()
    hdl.on_drain(lambda h: done.send())
    run_until(done)
    reader.join(5)
    assert not reader.is_alive()


@own_loop_only("recv() cannot nest inside a callback on the asyncio models (it raises)")
def test_a_blocking_wait_in_the_callback_sends_first():
    results, peer = [], []

    def reply(h, line, eol):
        h.push_write(b"question\n")
        answer = AE.cv()
        t = threading.Thread(target=lambda: loop.call_soon_threadsafe(
            answer.send, _recv_exactly(peer[0], 9)))
        t.start()  # the peer answers only once it has the question
        results.append(answer.recv())
        t.join()
    a, b = pair()
    peer.append(b)
    cv = AE.cv()
    hdl = Handle(fh=a, linger=0)
    hdl.push_read("line", lambda h, line, eol: (reply(h, line, eol), cv.send()))
    b.sendall(b"go\n")
    run_until(cv)
    assert results == [b"question\n"]


def test_starttls_after_a_plaintext_reply_sends_the_reply_in_clear(listener):
    """SMTP's STARTTLS: "220 go ahead" in clear, then the handshake."""
    ctx = server_ctx()
    done = AE.cv()
    handles = []

    def accept(fh, host, port):
        def command(h, line, eol):
            h.push_write(b"220 go ahead\r\n")
            h.starttls("accept", ctx)
            h.push_read("line", lambda h, line, eol: (h.push_write(b"secret " + line + b"\r\n")))
        hdl = Handle(fh=fh, on_error=lambda h, f, m: done.croak(m), on_eof=lambda h: None,
                     linger=0)
        hdl.push_read("line", command)
        handles.append(hdl)
    port = listener.serve(accept)
    result = {}

    def client():
        cctx = ssl.create_default_context(cafile=certs().ca_file)
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"STARTTLS\r\n")
            result["clear"] = _recv_exactly(raw, 14)
            with cctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"hello\r\n")
                result["tls"] = _recv_exactly(tls, 14)
    t = threading.Thread(target=lambda: (client(), loop.call_soon_threadsafe(done.send)))
    t.start()
    run_until(done, 20)
    t.join(5)
    assert result == {"clear": b"220 go ahead\r\n", "tls": b"secret hello\r\n"}
