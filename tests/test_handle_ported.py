"""AnyEvent's own handle tests, ported: t/handle/01_readline.t, 02_write.t,
04_listen.t and the plaintext part of t/80_ssltest.t's block exchange.

The scenarios and the expected results are Perl's; the code is ours.
"""

import errno
import json
import random
import socket

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_connect, tcp_server
from conftest import run_until


# -- t/handle/01_readline.t ---------------------------------------------------------

def test_readline_eof_with_pending_read_is_epipe():
    rd, wr = socket.socketpair()
    cv = AE.cv()
    errors, eofs, lines = [], [], []

    def on_error(hdl, fatal, message):
        errors.append((fatal, hdl.errno, message))
        cv.send()

    hdl = Handle(fh=rd, on_error=on_error, on_eof=lambda h: eofs.append(1))

    def every_line(hdl, line, eol):
        lines.append(line)
        hdl.push_read("line", every_line)

    def first_line(hdl, line, eol):
        assert line == b"A"
        hdl.push_read("line", every_line)

    hdl.push_read("line", first_line)
    wr.sendall(b"A\nBC\nDEF\nG\n" + b"X" * 113 + b"\n")
    wr.close()
    run_until(cv)
    assert b"".join(lines) == b"BCDEFG" + b"X" * 113
    # a read still queued at EOF: fatal EPIPE, and on_eof is not called
    assert errors == [(True, errno.EPIPE, "Broken pipe")]
    assert eofs == []
    assert hdl.destroyed()


def test_readline_other_types_and_dropped_writer_delivers_everything():
    rd, wr = socket.socketpair()
    cv = AE.cv()
    lines, got = [], []

    def on_read(hdl):
        hdl.push_read("line", lambda h, line, eol: lines.append(line + b":"))

    reader = Handle(fh=rd, on_eof=lambda h: cv.send(), on_read=on_read,
                    on_error=lambda h, fatal, msg: cv.croak(msg))
    writer = Handle(fh=wr, on_eof=lambda h: cv.croak("writer saw EOF"))
    del wr
    writer.push_write("netstring", b"0:xx,,")
    writer.push_write("netstring", b"")
    writer.push_write("storable", [4, 3, 2])
    big = b"hallole" * 99999  # 700 KB: more than the socket buffer takes at once
    writer.push_write("packstring", "w", big)
    writer.push_write(b"A\nBC\nDEF\nG\n" + b"X" * 113 + b"\n")
    assert len(writer.wbuf) > 0  # data is still queued when the writer goes
    del writer  # no destroy(): linger writes the rest, then closes

    reader.push_read("netstring", lambda h, s: got.append(s))
    reader.push_read("netstring", lambda h, s: got.append(s))
    reader.push_read("storable", lambda h, v: got.append(v))
    reader.push_read("packstring", "w", lambda h, s: got.append(s))
    run_until(cv)
    assert got == [b"0:xx,,", b"", [4, 3, 2], big]
    assert b"".join(lines) == b"A:BC:DEF:G:" + b"X" * 113 + b":"


def _json_stream():
    values = [["a", 1, -2.5e-3, None, True], {"k": "\u00e9\\\"]}", "n": [[], {}]},
              ["\U0001f600", "\\u00e9", 123456789012345678901234567890]]
    return values, "\n".join(json.dumps(v) for v in values).encode()


def test_json_read_split_at_every_byte():
    """A JSON text cut anywhere by the transport still decodes: like JSON::XS's
    incremental parser, an array or object waits until its bracket closes.
    """
    values, stream = _json_stream()
    for cut in range(1, len(stream)):
        rd, wr = socket.socketpair()
        cv = AE.cv()
        got = []
        hdl = Handle(fh=rd, on_error=lambda h, fatal, msg: cv.croak("cut %d: %s" % (cut, msg)))
        for _ in values:
            hdl.push_read("json", lambda h, v: (got.append(v), len(got) == len(values) and cv.send()))
        wr.sendall(stream[:cut])
        turn = AE.cv()
        idle = AE.idle(turn)  # runs once a poll finds nothing more: the head was read
        turn.recv()
        wr.sendall(stream[cut:])
        run_until(cv)
        assert got == values, cut
        del idle, hdl
        rd.close()
        wr.close()


# -- t/handle/02_write.t -------------------------------------------------------------

def test_write_drain_chain():
    rd, wr = socket.socketpair()
    cv = AE.cv()
    events = []
    rd_h = Handle(fh=rd, on_eof=lambda h: cv.croak("reader got EOF"))
    wr_h = Handle(fh=wr, on_eof=lambda h: cv.croak("writer got EOF"))
    data = []

    def first_chunk(hdl, chunk):
        data.append(chunk[:2] + chunk[-5:])
        events.append("first read chunk")
        wr_h.push_write(b"A" * 5000)

        def fourth(hdl):
            hdl.on_drain()
            events.append("fourth write")
        wr_h.on_drain(fourth)

        def second_chunk(hdl, chunk):
            events.append("second read chunk")
            cv.send()
        rd_h.push_read("chunk", 1, second_chunk)

    rd_h.push_read("chunk", 5132, first_chunk)
    wr_h.push_write(b"A" * 5000)
    wr_h.push_write(b"X" * 130)

    def drained(n, then=None):
        def cb(hdl):
            hdl.on_drain()
            events.append("write %d" % n)
            if then is not None:
                then(hdl)
        return cb

    def after_first(hdl):
        hdl.push_write(b"Y")
        hdl.on_drain(drained(2, after_second))

    def after_second(hdl):
        hdl.push_write(b"Z")
        hdl.on_drain(drained(3))

    wr_h.on_drain(drained(1, after_first))
    run_until(cv)
    # the order perl prints its "ok N" lines in for the same script
    assert events == ["write 1", "write 2", "write 3", "first read chunk",
                      "fourth write", "second read chunk"]
    assert data == [b"AAXXXYZ"]


# -- t/handle/04_listen.t -------------------------------------------------------------

def test_listen_server_and_client_exchange():
    cv = AE.cv()
    port = []
    handles = {}
    results = []

    def accepted(fh, host, peer_port):
        server = handles["server"] = Handle(fh=fh, on_eof=lambda h: cv.send())

        def request(hdl, data):
            results.append(("server received", data))
            hdl.push_write(b"BLABLABLA\r\n")
        server.push_read_chunk(6, request)

    def prepare(fh, host, bound_port):
        port.append(bound_port)
        return 0

    listener = tcp_server("127.0.0.1", None, accepted, prepare)

    def connected(fh=None, *rest):
        assert fh is not None, "connect failed"
        client = handles["client"] = Handle(fh=fh, on_eof=lambda h: cv.send())
        client.push_write(b"TEST\r\n")

        def response(hdl, line, eol):
            results.append(("client received", line))
            cv.send()
        client.push_read_line(response)

    connecting = tcp_connect("127.0.0.1", port[0], connected)
    run_until(cv)
    assert results == [("server received", b"TEST\r\n"), ("client received", b"BLABLABLA")]
    del connecting, listener


# -- t/80_ssltest.t, mode 5, without TLS --------------------------------------------------

def test_random_blocks_line_then_packstring():
    """The client sends 64 blocks as "<len>\\n" plus a packstring "N"; the server
    reads the line, then the packstring, and echoes both; the client checks
    each echo (read with unshift_read inside the line callback) before
    sending the next block.
    """
    client_sock, server_sock = socket.socketpair()
    done = AE.cv()
    fail = lambda h, fatal, msg: done.croak(msg)  # noqa: E731
    server = Handle(fh=server_sock, on_error=fail, on_eof=lambda h: None)
    client = Handle(fh=client_sock, on_error=fail)

    def server_line(hdl):
        def got_line(hdl, line, eol):
            def got_block(hdl, block):
                assert len(block) == int(line)
                hdl.push_write(line + b"\n")
                hdl.push_write("packstring", "N", block)
            hdl.push_read("packstring", "N", got_block)
        hdl.push_read("line", got_line)

    server.on_read(server_line)

    rng = random.Random(0)
    count = 64
    sizes = []

    def send_block():
        n = (16 << rng.randrange(14)) - 16 + rng.randrange(32)
        sizes.append(n)
        client.push_write(b"%d\n" % n)
        client.push_write("packstring", "N", b"\0" * n)

    for i in range(1, count + 1):
        def echoed_line(hdl, line, eol, i=i):
            def echoed_block(hdl, block):
                assert len(block) == int(line)
                if i != count:
                    send_block()
                else:
                    done.send()
            hdl.unshift_read("packstring", "N", echoed_block)
        client.push_read("line", echoed_line)

    send_block()
    run_until(done, 20)
    assert len(sizes) == count and max(sizes) > 65536
