"""anyevent.http (AnyEvent::HTTP) against real servers: nginx, tinyproxy,
openssl s_server, Python's HTTP/1.0 server; scripted servers for the faults
a real one will not produce on demand."""

import asyncio
import socket

import pytest

import anyevent.http as http
from anyevent import AE
from anyevent.handle import Handle
from anyevent.http import http_get, http_head, http_post, http_request
from anyevent.socket import tcp_connect

import httpservers
from conftest import require_tool, run_coroutine, run_until, settle
from tlsfixtures import certs

BIG = bytes(range(256)) * 1024  # 256 KiB: several reads, several chunks


@pytest.fixture(scope="module")
def nginx():
    require_tool("nginx")
    with httpservers.Nginx(tls_pem=certs().server_pem) as server:
        (server.root / "hello.txt").write_bytes(b"hello world\n")
        (server.root / "big.bin").write_bytes(BIG)
        yield server


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts without kept connections or a default proxy."""
    yield
    for handles in list(http._KA_CACHE.values()):
        for hdl in list(handles):
            hdl.destroy()
    http._KA_CACHE.clear()


def fetch(method, url, wait=10, **opts):
    """Run one request to its end (at most ``wait`` seconds): ``(body, headers)``."""
    cv = AE.cv()
    http_request(method, url, lambda body, hdr: cv.send(body, hdr), **opts)
    return run_until(cv, wait)


def counting_connect(counter):
    """A ``tcp_connect`` option that counts the connections made."""
    def connect(host, port, cb, prepare=None):
        counter.append((host, port))
        return tcp_connect(host, port, cb, prepare)
    return connect


# -- plain requests ------------------------------------------------------------

def test_get_static_file(nginx):
    body, hdr = fetch("GET", nginx.url("/hello.txt"))
    assert body == b"hello world\n"
    assert hdr["Status"] == 200 and hdr["Reason"] == "OK" and hdr["HTTPVersion"] == "1.1"
    assert hdr["URL"] == nginx.url("/hello.txt")
    assert hdr["content-length"] == "12" and hdr["content-type"] == "text/plain"
    assert "Redirect" not in hdr and "OrigStatus" not in hdr


def test_get_big_file_and_chunked_copy(nginx):
    body, hdr = fetch("GET", nginx.url("/big.bin"))
    assert body == BIG
    body, hdr = fetch("GET", nginx.url("/chunked/big.bin"))
    assert hdr["transfer-encoding"] == "chunked"
    assert body == BIG
    assert hdr["content-length"] == str(len(BIG))  # Perl sets it from the chunks


def test_head_and_bodiless_statuses(nginx):
    body, hdr = fetch("HEAD", nginx.url("/big.bin"))
    assert body == b"" and hdr["Status"] == 200 and hdr["content-length"] == str(len(BIG))
    for status in (204, 304):
        body, hdr = fetch("GET", nginx.url("/status/%d" % status))
        assert (body, hdr["Status"]) == (b"", status)
    body, hdr = fetch("GET", nginx.url("/status/404"))
    assert hdr["Status"] == 404 and body == b"404\n"


def test_repeated_headers_are_joined(nginx):
    body, hdr = fetch("GET", nginx.url("/headers"))
    assert hdr["x-multi"] == "one,two"


def test_http10_server_without_keepalive(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"from http.server\n")
    connects = []
    with httpservers.PyHTTPServer(tmp_path) as server:
        for _ in range(2):
            body, hdr = fetch("GET", server.url("/f.txt"), tcp_connect=counting_connect(connects))
            assert body == b"from http.server\n" and hdr["HTTPVersion"] == "1.0"
    assert len(connects) == 2  # HTTP/1.0 without keep-alive: not reused
    assert not http._KA_CACHE


def test_short_forms_and_cb_keyword(nginx):
    cv = AE.cv()
    cv.begin()
    got = {}
    def cb(name):
        cv.begin()
        def done(body, hdr):
            got[name] = (body, hdr["Status"])
            cv.end()
        return done
    http_get(nginx.url("/hello.txt"), cb("get"))
    http_head(nginx.url("/hello.txt"), cb=cb("head"))
    http_post(nginx.url("/echo-method"), b"abc", cb("post"))
    http_request("GET", nginx.url("/hello.txt"), headers={"x-a": "1"}, cb=cb("kw"))
    cv.end()
    run_until(cv)
    assert got == {"get": (b"hello world\n", 200), "head": (b"", 200),
                   "post": (b"POST 3\n", 200), "kw": (b"hello world\n", 200)}


def test_request_headers_defaults_and_removal():
    seen = []
    def handler(conn):
        seen.append(httpservers.read_request(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with httpservers.Scripted(handler) as server:
        url = "http://127.0.0.1:%d/p?q=1#frag" % server.port
        fetch("GET", url)
        fetch("GET", url, headers={"User-Agent": "mine/1", "referer": None, "te": None,
                                   "X-Bytes": b"b\xe9"})
    first, second = (r.split(b"\r\n\r\n")[0].split(b"\r\n") for r in seen)
    assert first[0] == b"GET /p?q=1 HTTP/1.1"
    heads = {line.split(b": ")[0]: line.split(b": ", 1)[1] for line in first[1:]}
    assert heads[b"Host"] == b"127.0.0.1:%d" % server.port
    assert heads[b"User-agent"] == http.USERAGENT.encode()
    assert heads[b"Referer"] == b"http://127.0.0.1:%d/p?q=1" % server.port
    assert heads[b"Te"] == b"trailers" and heads[b"Connection"] == b"keep-alive, Te"
    heads = {line.split(b": ")[0]: line.split(b": ", 1)[1] for line in second[1:]}
    assert heads[b"User-agent"] == b"mine/1" and heads[b"X-bytes"] == b"b\xe9"
    assert b"Referer" not in heads and b"Te" not in heads


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="timout"):
        http_get("http://127.0.0.1/", lambda *a: None, timout=3)
    with pytest.raises(ValueError, match="line break"):
        http_get("http://127.0.0.1/", lambda *a: None, headers={"x": "a\r\nInjected: 1"})


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.com/", "Only http and https URL schemes supported"),
    ("nonsense", "Only http and https URL schemes supported"),
    ("http://@/", "Unparsable URL"),
])
def test_unusable_urls_are_599(url, reason):
    got = []
    http_get(url, lambda body, hdr: got.append((body, hdr)))
    assert got == [(None, {"URL": url, "Status": 599, "Reason": reason})]  # at once, as Perl


def test_connection_refused_is_595():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body, hdr = fetch("GET", "http://127.0.0.1:%d/" % port)
    assert body is None and hdr["Status"] == 595 and hdr["Reason"] == "Connection refused"


# -- redirects -----------------------------------------------------------------

def test_redirect_chain_keeps_each_response(nginx):
    body, hdr = fetch("GET", nginx.url("/redirect/2"))
    assert (body, hdr["Status"], hdr["URL"]) == (b"done", 200, nginx.url("/redirect/0"))
    body1, hdr1 = hdr["Redirect"]
    assert hdr1["Status"] == 302 and hdr1["URL"] == nginx.url("/redirect/1")
    assert hdr1["location"] == nginx.url("/redirect/0")
    body2, hdr2 = hdr1["Redirect"]
    assert hdr2["URL"] == nginx.url("/redirect/2") and "Redirect" not in hdr2


@pytest.mark.parametrize("path, method", [("/r301", ["GET"]), ("/r307", ["POST", "4"]),
                                          ("/r308", ["POST", "4"])])
def test_redirect_method_rules(nginx, path, method):
    body, hdr = fetch("POST", nginx.url(path), body=b"data")
    assert hdr["Status"] == 200
    assert body.split() == [m.encode() for m in method]  # method, request body length


def test_redirect_loop_and_recurse_zero(nginx):
    body, hdr = fetch("GET", nginx.url("/loop"), recurse=3)
    assert (body, hdr["Status"], hdr["Reason"]) == (None, 599, "Too many redirections")
    assert (hdr["OrigStatus"], hdr["OrigReason"]) == (302, "Moved Temporarily")
    depth, h = 0, hdr
    while "Redirect" in h:
        h = h["Redirect"][1]
        depth += 1
    assert depth == 3  # the first request and three redirections
    body, hdr = fetch("GET", nginx.url("/loop"), recurse=0)
    assert hdr["Status"] == 302 and "Redirect" not in hdr  # not followed


def test_relative_locations_are_resolved():
    def handler(conn):
        request = httpservers.read_request(conn)
        path = request.split(b" ")[1]
        if path == b"/a/b/start":
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: ../c/next?x=1\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(path), path))
    with httpservers.Scripted(handler) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/a/b/start" % server.port)
    assert body == b"/a/c/next?x=1"


# -- cookies -------------------------------------------------------------------

def test_cookie_jar_round_trip_and_layout(nginx):
    jar = {}
    fetch("GET", nginx.url("/cookie/set"), cookie_jar=jar)
    assert jar["version"] == 2
    cookies = jar["127.0.0.1"]
    assert cookies["/cookie"]["session"] == {"value": "2"}
    persistent = cookies["/"]["persistent"]
    assert persistent["value"] == "1"
    assert abs(persistent["_expires"] - (AE.now() + 3600)) < 5
    body, hdr = fetch("GET", nginx.url("/cookie/show"), cookie_jar=jar)
    assert sorted(body.decode().split("; ")) == ["persistent=1", "session=2"]
    body, hdr = fetch("GET", nginx.url("/hello.txt"))  # no jar: nothing sent, nothing kept
    http.cookie_jar_expire(jar, True)  # session end: the session cookie goes
    assert jar == {"version": 2, "127.0.0.1": {"/": {"persistent": persistent}}}
    persistent["_expires"] = AE.now() - 1
    http.cookie_jar_expire(jar)
    assert jar == {"version": 2}


def test_cookie_parsing_rules():
    jar = {}
    http._cookie_jar_set_cookie(
        jar, 'a=1; Path=/x; Secure, b="q\\"uoted; v"; Domain=.example.com; HttpOnly, '
        "c=3; expires=Sun, 06 Nov 1994 08:49:37 GMT", "www.example.com",
        "Sun, 06 Nov 1994 08:49:30 GMT")
    assert jar["www.example.com"]["/x"]["a"] == {"value": "1", "secure": None}
    assert jar["example.com"]["/"]["b"] == {"value": 'q"uoted; v', "domain": ".example.com",
                                             "httponly": None}
    assert jar["www.example.com"]["/"]["c"]["_expires"] == int(AE.now()) + 7
    assert sorted(http._cookie_jar_extract(jar, "http", "www.example.com", "/x/y")) == [
        'b="q\\"uoted; v"', "c=3"]
    assert "a=1" in http._cookie_jar_extract(jar, "https", "www.example.com", "/x/y")
    # a domain must have enough dots, and (not in Perl) cover the host setting it
    for domain in ("com", ".co.uk", "other.example"):
        jar = {}
        http._cookie_jar_set_cookie(jar, "x=1; domain=%s" % domain, "www.example.com", None)
        assert jar == {}, domain


def test_dates_as_perl():
    assert http.format_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    for text in ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                 "Sun Nov  6 08:49:37 1994", "Sun, 06-Nov-1994 08:49:37 GMT"):
        assert http.parse_date(text) == 784111777, text
    for text in ("", "yesterday", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37"):
        assert http.parse_date(text) is None, text


# -- persistent connections, slots ----------------------------------------------

def test_persistent_connection_is_reused(nginx):
    connects = []
    for _ in range(3):
        body, hdr = fetch("GET", nginx.url("/hello.txt"), tcp_connect=counting_connect(connects))
        assert body == b"hello world\n"
    assert len(connects) == 1
    fetch("GET", nginx.url("/hello.txt"), tcp_connect=counting_connect(connects), sessionid="x")
    fetch("GET", nginx.url("/hello.txt"), tcp_connect=counting_connect(connects), persistent=False)
    assert len(connects) == 3  # another session, and a request that wants its own
    fetch("POST", nginx.url("/echo-method"), tcp_connect=counting_connect(connects))
    assert len(connects) == 4  # not idempotent: never on a kept connection


def test_connection_close_is_not_kept(nginx):
    connects = []
    for _ in range(2):
        body, hdr = fetch("GET", nginx.url("/close"), tcp_connect=counting_connect(connects))
        assert hdr["Status"] == 200 and hdr["connection"] == "close"
    assert len(connects) == 2


def test_kept_connection_closed_by_server_is_retried_once():
    with httpservers.Scripted(httpservers.keepalive_drop) as server:
        url = "http://127.0.0.1:%d/" % server.port
        for _ in range(3):
            body, hdr = fetch("GET", url)
            assert (body, hdr["Status"]) == (b"ok", 200)
        assert server.connections == 3  # each reuse failed before its first byte: retried
    # a POST is not retried (and not made on a kept connection at all)


def test_kept_connection_idle_timeout(nginx, monkeypatch):
    monkeypatch.setattr(http, "PERSISTENT_TIMEOUT", 0.1)
    fetch("GET", nginx.url("/hello.txt"))
    assert http._KA_CACHE
    settle(0.4)
    assert not http._KA_CACHE


def test_max_per_host_queues_requests(monkeypatch):
    import threading
    import time
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    def handler(conn):
        httpservers.read_request(conn)
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    monkeypatch.setattr(http, "MAX_PER_HOST", 2)
    with httpservers.Scripted(handler) as server:
        cv = AE.cv()
        bodies = []
        active = []
        for _ in range(6):
            cv.begin()
            http_get("http://127.0.0.1:%d/" % server.port,
                     lambda body, hdr: (bodies.append(body), cv.end()))
            active.append(http.ACTIVE)
        run_until(cv)
    assert bodies == [b"ok"] * 6
    assert state["max"] == 2 and active[-1] == 2
    assert http.ACTIVE == 0 and not http._CO_SLOT


# -- callbacks: on_header, on_body, want_body_handle, errors in them -----------------

def test_on_header_false_is_598(nginx):
    seen = []
    body, hdr = fetch("GET", nginx.url("/big.bin"), on_header=lambda h: seen.append(dict(h)))
    assert body is None and hdr["Status"] == 598 and hdr["Reason"] == "Request cancelled by on_header"
    assert hdr["OrigStatus"] == 200 and hdr["OrigReason"] == "OK"
    assert seen[0]["Status"] == 200 and seen[0]["content-length"] == str(len(BIG))


@pytest.mark.parametrize("path", ["/big.bin", "/chunked/big.bin"])
def test_on_body_streams(nginx, path):
    parts = []
    body, hdr = fetch("GET", nginx.url(path), on_body=lambda data, h: parts.append(data) or True)
    assert body == b"" and hdr["Status"] == 200
    assert len(parts) > 1 and b"".join(parts) == BIG


def test_on_body_false_is_598(nginx):
    body, hdr = fetch("GET", nginx.url("/big.bin"), on_body=lambda data, h: False)
    assert body is None and hdr["Status"] == 598 and hdr["Reason"] == "Request cancelled by on_body"


def test_want_body_handle(nginx):
    body, hdr = fetch("GET", nginx.url("/big.bin"), want_body_handle=True)
    assert isinstance(body, Handle) and hdr["Status"] == 200
    cv = AE.cv()
    body.on_error(lambda h, fatal, msg: cv.croak(msg))
    body.push_read("chunk", len(BIG), lambda h, data: cv.send(data))
    assert run_until(cv) == BIG
    body.destroy()


def test_exception_in_callback_is_reported(nginx, callback_errors):
    cv = AE.cv()
    def boom(body, hdr):
        cv.send()
        raise RuntimeError("boom in cb")
    http_get(nginx.url("/hello.txt"), boom)
    run_until(cv)
    settle(0.05)
    assert [str(exc) for where, exc in callback_errors] == ["boom in cb"]
    body, hdr = fetch("GET", nginx.url("/hello.txt"))  # the kept connection still works
    assert body == b"hello world\n"


# -- the Request object: cancel, drop, await -------------------------------------------

def test_cancel_stops_the_request(nginx):
    got = []
    req = http_get(nginx.url("/big.bin"), lambda *a: got.append(a))
    req.cancel()
    settle(0.2)
    assert got == [] and http.ACTIVE == 0 and not http._running


def test_dropping_the_request_does_not_cancel(nginx):
    cv = AE.cv()
    http_get(nginx.url("/hello.txt"), lambda body, hdr: cv.send(body))
    import gc
    gc.collect()
    assert run_until(cv) == b"hello world\n"


def test_await_on_asyncio(nginx):
    async def main():
        body, hdr = await http_get(nginx.url("/hello.txt"))
        req = http_get(nginx.url("/big.bin"))
        req.cancel()
        with pytest.raises(asyncio.CancelledError):
            await req
        return body, hdr["Status"]
    assert run_coroutine(main()) == (b"hello world\n", 200)


# -- timeouts and faults -----------------------------------------------------------

def test_timeout_in_header_phase_is_596():
    with httpservers.Scripted(httpservers.slow_headers(0.5)) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port, timeout=0.1)
    assert (body, hdr["Status"], hdr["Reason"]) == (None, 596, "Connection timed out")


def test_timeout_is_per_activity():
    with httpservers.Scripted(httpservers.slow_headers(0.1)) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port, timeout=0.3)
    assert (body, hdr["Status"]) == (b"ok", 200)  # 0.3 s in all, never 0.3 s idle


@pytest.mark.parametrize("handler, status, reason, body", [
    (httpservers.GARBLED_STATUS, 599, "Invalid server response", None),
    (httpservers.TRUNCATED_CHUNKED, 597, "Broken pipe", None),
    (httpservers.RESET_MID_BODY, 597, "Connection reset by peer", None),
    (httpservers.BAD_CHUNK_SIZE, 597, "Garbled chunked transfer encoding", None),
    (httpservers.HUGE_LENGTH, 597, "Invalid Content-Length: '%d'" % 10 ** 20, None),
    (httpservers.NEGATIVE_LENGTH, 597, "Invalid Content-Length: '-5'", None),
    (httpservers.BODY_TOO_LONG, 597, "Body longer than Content-Length (6 more bytes)", None),
    (httpservers.CONTINUE_100, 200, "OK", b"ok"),
    (httpservers.HUGE_HEADERS, 200, "OK", b"ok"),
    (httpservers.HTTP10_UNTIL_CLOSE, 200, "OK", b"until close"),
    (httpservers.canned(b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n"), 599,
     "Garbled response headers", None),
    (httpservers.canned(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * (300 * 1024)), 596,
     "Response header block longer than 262144 bytes", None),
    (httpservers.canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"), 200, "OK", b"hello"),
])
def test_server_faults(handler, status, reason, body):
    with httpservers.Scripted(handler) as server:
        got, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port)
    assert (got, hdr["Status"], hdr["Reason"]) == (body, status, reason)
    if status >= 590:
        assert "OrigStatus" not in hdr or hdr["OrigStatus"] == 200
        assert not http._KA_CACHE  # a failed connection is never kept


def test_folded_header_and_missing_reason_as_perl():
    with httpservers.Scripted(httpservers.FOLDED_HEADERS) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port)
    assert hdr["x-folded"] == "a\n  b\n\tc" and body == b"ok"
    with httpservers.Scripted(httpservers.NO_REASON) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port)
    # Perl's status line pattern takes the next header line as the reason
    assert hdr["Status"] == 200 and hdr["Reason"] == "Content-Length: 2" and body == b"ok"


def test_trailers_are_merged():
    with httpservers.Scripted(httpservers.canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n")) as server:
        body, hdr = fetch("GET", "http://127.0.0.1:%d/" % server.port)
    assert body == b"abc" and hdr["x-sum"] == "42" and hdr["content-length"] == "3"


# -- TLS ---------------------------------------------------------------------------

def test_https_verifies_by_default(nginx, monkeypatch):
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)
    body, hdr = fetch("GET", nginx.url("/hello.txt", tls=True))
    assert (body, hdr["Status"]) == (b"hello world\n", 200)
    body, hdr = fetch("GET", nginx.url("/chunked/big.bin", tls=True))
    assert body == BIG


@pytest.mark.parametrize("pem, why", [
    ("unknownca_pem", "certificate verify failed"),
    ("expired_pem", "certificate has expired"),
    ("wronghost_pem", "hostname mismatch"),
])
def test_https_bad_certificates_are_596(pem, why, monkeypatch):
    require_tool("openssl")
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)
    with httpservers.OpenSSLWWW(getattr(certs(), pem)) as server:
        (server.root / "f.txt").write_bytes(b"secret\n")
        body, hdr = fetch("GET", server.url("/f.txt").replace("127.0.0.1", "localhost"))
        assert body is None and hdr["Status"] == 596 and why in hdr["Reason"], hdr
        body, hdr = fetch("GET", server.url("/f.txt"), tls_ctx="low")  # the explicit opt-out
        assert hdr["Status"] == 200 and body.endswith(b"secret\n")


def test_unverified_connection_is_not_reused_by_verifying_requests():
    require_tool("openssl")
    with httpservers.OpenSSLWWW(certs().unknownca_pem) as server:
        (server.root / "f.txt").write_bytes(b"x\n")
        url = server.url("/f.txt").replace("127.0.0.1", "localhost")
        assert fetch("GET", url, tls_ctx="low")[1]["Status"] == 200
        body, hdr = fetch("GET", url)  # verifies: must not take the "low" connection
        assert hdr["Status"] == 596 and "certificate verify failed" in hdr["Reason"]


def test_https_with_tls_ctx_dict(nginx):
    ctx = {"verify": 1, "verify_peername": "https", "ca_file": certs().ca_file}
    body, hdr = fetch("GET", nginx.url("/hello.txt", tls=True), tls_ctx=ctx)
    assert body == b"hello world\n"


# -- proxy ---------------------------------------------------------------------------

@pytest.fixture
def tinyproxy():
    require_tool("tinyproxy")
    with httpservers.TinyProxy() as proxy:
        yield proxy


def test_http_through_proxy(nginx, tinyproxy):
    body, hdr = fetch("GET", nginx.url("/hello.txt"), proxy=["127.0.0.1", tinyproxy.port])
    assert body == b"hello world\n" and "tinyproxy" in hdr["via"]


def test_https_through_proxy_connect(nginx, tinyproxy, monkeypatch):
    monkeypatch.setenv("ANYEVENT_CA_FILE", certs().ca_file)
    body, hdr = fetch("GET", nginx.url("/hello.txt", tls=True).replace("127.0.0.1", "localhost"),
                      proxy=["127.0.0.1", tinyproxy.port, "http"])
    assert body == b"hello world\n" and "via" not in hdr  # tunnelled: the proxy sees no HTTP


def test_set_proxy_and_environment(monkeypatch, nginx, tinyproxy):
    monkeypatch.setattr(http, "PROXY", None)
    http.set_proxy("http://127.0.0.1:%d" % tinyproxy.port)
    assert http.PROXY == ["127.0.0.1", tinyproxy.port, "http"]
    body, hdr = fetch("GET", nginx.url("/hello.txt"), persistent=False)
    assert "via" in hdr
    body, hdr = fetch("GET", nginx.url("/hello.txt"), proxy=None, persistent=False)
    assert "via" not in hdr
    http.set_proxy("http://proxy.example")
    assert http.PROXY == ["proxy.example", 3128, "http"]
    with pytest.raises(ValueError, match="invalid proxy URL"):
        http.set_proxy("socks5://x:1")
    http.set_proxy(None)
    assert http.PROXY is None


def test_kept_connection_to_a_proxy_still_sends_the_whole_url():
    lines = []
    def proxy(conn):
        while (request := httpservers.read_request(conn)) is not None:
            lines.append(request.split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    with httpservers.Scripted(proxy) as server:
        for path in ("/one", "/two"):
            body, hdr = fetch("GET", "http://origin.test" + path, proxy=["127.0.0.1", server.port])
            assert body == b"ok"
        assert server.connections == 1  # the second request reused the connection
    assert lines == [b"GET http://origin.test/one HTTP/1.1", b"GET http://origin.test/two HTTP/1.1"]


def test_proxy_refusing_connect_reports_its_status():
    with httpservers.Scripted(httpservers.canned(
            b"HTTP/1.0 403 Forbidden\r\n\r\n")) as server:
        body, hdr = fetch("GET", "https://example.test/", proxy=["127.0.0.1", server.port])
    assert (body, hdr["Status"], hdr["Reason"]) == (None, 403, "Forbidden")


def test_on_prepare_and_handle_params(nginx):
    prepared = []
    def on_prepare(sock):
        prepared.append(sock.family)
        return 5  # the connect timeout, as tcp_connect's prepare_cb
    body, hdr = fetch("GET", nginx.url("/big.bin"), on_prepare=on_prepare, persistent=False,
                      want_body_handle=True, handle_params={"read_size": 512, "no_delay": True})
    assert prepared == [socket.AF_INET]
    assert isinstance(body, Handle) and body.read_size >= 512
    body.destroy()
