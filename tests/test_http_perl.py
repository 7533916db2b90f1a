"""anyevent.http beside Perl's AnyEvent::HTTP 2.25: the same list of requests,
made by both against the same servers, gives the same ``(body, headers)``
(apart from the differences PORTING.md lists, which this list avoids; the
tests of test_http.py check those).  A mismatch prints both sides."""

import json
import os
import subprocess

import pytest

from anyevent import AE
from anyevent.http import http_request

import httpservers
from conftest import require_tool, run_until
from tlsfixtures import certs

HERE = os.path.dirname(os.path.abspath(__file__))
VOLATILE = ("date", "etag", "last-modified", "via")  # differ between two runs of anything


@pytest.fixture(scope="module")
def perl():
    path = require_tool("perl")
    if subprocess.run([path, "-MAnyEvent::HTTP", "-MEV", "-MJSON::XS", "-e1"],
                      capture_output=True).returncode:
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail("perl has no AnyEvent::HTTP / EV / JSON::XS")
        pytest.skip("perl has no AnyEvent::HTTP / EV / JSON::XS")
    return path


@pytest.fixture(scope="module")
def servers():
    require_tool("nginx")
    with httpservers.Nginx(tls_pem=certs().server_pem) as nginx, \
            httpservers.Scripted(httpservers.FOLDED_HEADERS) as folded, \
            httpservers.Scripted(httpservers.NO_REASON) as no_reason, \
            httpservers.Scripted(httpservers.TRUNCATED_CHUNKED) as truncated, \
            httpservers.Scripted(httpservers.RESET_MID_BODY) as reset, \
            httpservers.Scripted(httpservers.BAD_CHUNK_SIZE) as bad_chunk, \
            httpservers.Scripted(httpservers.GARBLED_STATUS) as garbled, \
            httpservers.Scripted(httpservers.CONTINUE_100) as cont, \
            httpservers.Scripted(httpservers.HTTP10_UNTIL_CLOSE) as until_close, \
            httpservers.Scripted(httpservers.slow_headers(0.3)) as slow:
        (nginx.root / "hello.txt").write_bytes(b"hello world\n")
        (nginx.root / "bin.dat").write_bytes(bytes(range(256)) * 300)
        scripted = {name: "http://127.0.0.1:%d/" % server.port for name, server in [
            ("folded", folded), ("no_reason", no_reason), ("truncated", truncated),
            ("reset", reset), ("bad_chunk", bad_chunk), ("garbled", garbled),
            ("continue", cont), ("until_close", until_close), ("slow", slow)]}
        yield nginx, scripted


def requests(nginx, scripted):
    tls = {"verify": 1, "verify_peername": "https", "ca_file": certs().ca_file}
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = "http://127.0.0.1:%d/" % s.getsockname()[1]
    get = lambda url, **opts: {"method": "GET", "url": url, "opts": opts}  # noqa: E731
    return [
        get(nginx.url("/hello.txt")),
        get(nginx.url("/bin.dat")),
        get(nginx.url("/chunked/bin.dat")),
        {"method": "HEAD", "url": nginx.url("/bin.dat"), "opts": {}},
        get(nginx.url("/status/204")), get(nginx.url("/status/304")),
        get(nginx.url("/status/404")), get(nginx.url("/status/500")),
        get(nginx.url("/headers")),
        get(nginx.url("/close")),
        get(nginx.url("/redirect/3")),
        get(nginx.url("/loop"), recurse=0),
        {"method": "POST", "url": nginx.url("/r301"), "opts": {"body": "data"}},
        {"method": "POST", "url": nginx.url("/r307"), "opts": {"body": "data"}},
        {"method": "PUT", "url": nginx.url("/r308"), "opts": {"body": "x" * 10}},
        get(nginx.url("/cookie/set"), cookie_jar=True),
        get(nginx.url("/cookie/show"), cookie_jar=True),
        get(nginx.url("/hello.txt"), headers={"user-agent": "differential/1", "referer": None}),
        get(nginx.url("/bin.dat"), on_header_false=True),
        get(nginx.url("/chunked/bin.dat"), on_body_collect=True),
        get(nginx.url("/hello.txt", tls=True), tls_ctx=tls),
        get(nginx.url("/chunked/hello.txt", tls=True), tls_ctx=tls),
        get("http://127.0.0.1:%d/nothing/here" % nginx.port, persistent=0),
        get(refused),
        get("ftp://127.0.0.1/"),
        get(scripted["folded"]), get(scripted["no_reason"]),
        get(scripted["truncated"]), get(scripted["reset"]), get(scripted["bad_chunk"]),
        get(scripted["garbled"]), get(scripted["continue"]), get(scripted["until_close"]),
        get(scripted["slow"], timeout=0.1),
    ]


def run_perl(perl, reqs):
    proc = subprocess.run([perl, os.path.join(HERE, "perl", "http_client.pl")],
                          input=json.dumps(reqs).encode(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def run_ours(reqs):
    jar, results = {}, []
    for req in reqs:
        opts = dict(req["opts"])
        chunks = []
        if opts.pop("cookie_jar", False):
            opts["cookie_jar"] = jar
        if opts.pop("on_header_false", False):
            opts["on_header"] = lambda hdr: False
        if opts.pop("on_body_collect", False):
            opts["on_body"] = lambda data, hdr: chunks.append(data) or True
        if "body" in opts:
            opts["body"] = opts["body"].encode("latin-1")
        cv = AE.cv()
        http_request(req["method"], req["url"], lambda body, hdr: cv.send(body, hdr), **opts)
        body, hdr = run_until(cv, 10)
        result = {"body": body, "headers": hdr}
        if "cookie_jar" in opts:
            result["jar"] = json.loads(json.dumps(jar))
        if "on_body" in opts:
            result["on_body"] = chunks
        results.append(result)
    return results


def normal(value):
    """One side's result in a form both share: bytes as Latin-1 text, numbers
    that Perl may keep as strings as strings, volatile headers and cookie
    expiry times left out."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return {k: ("EXPIRES" if k == "_expires" else normal(v)) for k, v in value.items()
                if k not in VOLATILE}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def test_same_answers_as_perl(perl, servers):
    nginx, scripted = servers
    reqs = requests(nginx, scripted)
    theirs = [normal(r) for r in run_perl(perl, reqs)]
    ours = [normal(r) for r in run_ours(reqs)]
    for req, *results in zip(reqs, theirs, ours):
        if req["url"].endswith("/cookie/show"):  # Perl's jar is a hash: any order
            for r in results:
                r["body"] = sorted(r["body"].split("; "))
    mismatches = [(req["method"], req["url"], req["opts"], p, o)
                  for req, p, o in zip(reqs, theirs, ours) if p != o]
    if "on_body" in theirs[19]:  # read sizes differ: compare what was streamed, not how
        assert "".join(theirs[19]["on_body"]) == "".join(ours[19]["on_body"])
    mismatches = [m for m in mismatches if not _same_but_streaming(m[3], m[4])]
    assert not mismatches, "\n\n".join(
        "%s %s %s\n perl:   %s\n python: %s" % m for m in mismatches)


def _same_but_streaming(theirs, ours):
    if "on_body" not in theirs:
        return False
    return (dict(theirs, on_body=None) == dict(ours, on_body=None)
            and "".join(theirs["on_body"]) == "".join(ours["on_body"]))


DATES = ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
         "Sun Nov  6 08:49:37 1994", "Thu, 01-Jan-2037 00:00:00 GMT", "Mon, 29 Feb 2021 00:00:00 GMT",
         "Tue, 31 Dec 1968 23:59:59 GMT", "Fri, 13 Jun 69 12:00:00 GMT", "garbage", "",
         "Sun, 6 Nov 1994 8:49:37 GMT", "sun, 06 nov 1994 08:49:37 GMT"]


def test_dates_as_perl(perl):
    script = r"""use AnyEvent::HTTP; use JSON::XS;
        my $dates = decode_json(join "", <STDIN>);
        print encode_json([[map { scalar AnyEvent::HTTP::parse_date($_) } @$dates],
                           [map { AnyEvent::HTTP::format_date($_) } 0, 784111777, 2**31, 4102444800]]);"""
    out = subprocess.run([perl, "-e", script], input=json.dumps(DATES).encode(),
                         capture_output=True, timeout=30, check=True).stdout
    parsed, formatted = json.loads(out)
    from anyevent import http
    assert [http.parse_date(d) for d in DATES] == parsed
    assert [http.format_date(t) for t in (0, 784111777, 2 ** 31, 4102444800)] == formatted
