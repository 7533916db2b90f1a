"""Property tests of anyevent.http's response parsing: however the bytes of a
response are split into reads, the callback gets the same ``(body, headers)``."""

import socket

from hypothesis import HealthCheck, given, settings, strategies as st

from anyevent import AE
from anyevent.http import http_get

from conftest import run_until

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello\r\n\r\nxx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhe\r\nl\r\n3;ext=1\r\nl\no\r\n0\r\nX-Trailer: t\r\n  folded\r\n\r\n",
    b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nuntil\r\n\r\nclose",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnot",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",
]


def fetch_in_pieces(response, cuts):
    """GET through a socketpair whose far end writes ``response`` cut at ``cuts``,
    one piece per loop iteration, then closes."""
    ours, theirs = socket.socketpair()
    pieces = [response[a:b] for a, b in zip([0] + cuts, cuts + [len(response)])]

    def connect(host, port, cb, prepare=None):
        return AE.timer(0, 0, lambda: cb(ours, "127.0.0.1", port, lambda: None))

    def write_next():
        if pieces:
            theirs.sendall(pieces.pop(0))
            timers.append(AE.timer(0.001, 0, write_next))
        else:
            theirs.recv(65536)  # the request: closing with it unread would be a reset
            theirs.close()

    timers = [AE.timer(0.002, 0, write_next)]
    cv = AE.cv()
    http_get("http://example.test/", lambda body, hdr: cv.send(body, hdr), tcp_connect=connect,
             persistent=False)
    try:
        return run_until(cv, 5)
    finally:
        theirs.close()
        del timers[:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_split_gives_the_same_answer(data):
    response = data.draw(st.sampled_from(RESPONSES))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(response) - 1), max_size=6))))
    assert fetch_in_pieces(response, cuts) == fetch_in_pieces(response, [])


@settings(max_examples=500)
@given(st.lists(st.text(alphabet=st.sampled_from("ab: \t\n\x01\x00\x7f:X-\xe9"), max_size=12),
                max_size=6))
def test_header_fast_path_agrees_with_perls_patterns(lines):
    """_parse_hdr splits ordinary blocks in C; its answer is the one Perl's
    patterns (the slow path) give, for any block."""
    from anyevent import http
    text = "".join(line + "\n" for line in lines)
    expected = None
    if http._HEADER_BLOCK.fullmatch(text) is not None:
        expected = {}
        for name, value in http._HEADER_LINE.findall(text):
            name = name.lower()
            expected[name] = value if name not in expected else expected[name] + "," + value
    assert http._parse_hdr(text, 0) == expected
