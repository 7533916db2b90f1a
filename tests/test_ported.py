"""The paired examples in examples/ported/: each Perl script and its Python twin
run against the same local peers and must print exactly the same thing.

Peers are local only: a finger-style server and an HTTP server in threads, the
echo server twins themselves, a Python ``ssl`` server with the test CA's
certificates, and the dnsmasq of ``fixtures_dns``.
"""

import os
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Listener, require_tool
from httpservers import Nginx
from fixtures_dns import dns_peers, dnsmasq  # noqa: F401 - pytest fixtures
from tlsfixtures import certs

ROOT = Path(__file__).resolve().parent.parent
PORTED = ROOT / "examples" / "ported"
TIMEOUT = 20  # seconds for one script; they take well under one


@pytest.fixture(scope="module")
def perl():
    """The perl binary, once AnyEvent is known to load in it."""
    path = require_tool("perl")
    if subprocess.run([path, "-MAnyEvent::Handle", "-MNet::SSLeay", "-e1"],
                      capture_output=True).returncode:
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail("perl has no AnyEvent::Handle / Net::SSLeay")
        pytest.skip("perl has no AnyEvent::Handle / Net::SSLeay")
    return path


def _env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANYEVENT_", "PERL_ANYEVENT_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _commands(perl, name):
    return {"perl": [perl, str(PORTED / (name + ".pl"))],
            "python": [sys.executable, str(PORTED / (name + ".py"))]}


def run_twins(perl, name, *args, quiet=True):
    """Run both twins with ``args``; assert they print the same; return the output.

    With ``quiet`` a twin must also write nothing to stderr (the Python loop
    logs callback exceptions there).
    """
    out = {}
    for lang, cmd in _commands(perl, name).items():
        proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True,
                              text=True, timeout=TIMEOUT, env=_env())
        assert proc.returncode == 0, (lang, proc.stderr)
        if quiet:
            assert proc.stderr == "", (lang, proc.stderr)
        out[lang] = proc.stdout
    assert out["python"] == out["perl"]
    return out["perl"]


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def _refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# timers and condvars
# ---------------------------------------------------------------------------

def test_timers(perl):
    out = run_twins(perl, "timers")
    assert out.splitlines() == [
        "waiting...",
        "one-shot timer fired",
        "recv returned: done waiting, 42",
        "tick 1", "tick 2", "tick 3",
        "3 jobs finished in this order: 0.01 0.02 0.03",
        "postponed code runs first",
        "callback got: late value",
        "recv died: no luck",
        "all done",
    ]


# ---------------------------------------------------------------------------
# finger client
# ---------------------------------------------------------------------------

class _Finger(socketserver.StreamRequestHandler):
    def handle(self):
        user = self.rfile.readline().strip().decode()
        plan = "." * 5000 if user == "long" else "to test %s" % user
        self.wfile.write(("Login: %s\r\nPlan: %s\r\n" % (user, plan)).encode())


@pytest.fixture(scope="module")
def finger_server():
    server = _serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Finger))
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_finger(perl, finger_server):
    out = run_twins(perl, "finger", "127.0.0.1", finger_server, "alice", "long", "bob")
    assert out.startswith("== alice\nLogin: alice\nPlan: to test alice\n== long\n")
    assert "." * 5000 + "\n== bob\n" in out  # read over several sysread calls


def test_finger_refused(perl):
    out = run_twins(perl, "finger", "127.0.0.1", _refused_port(), "alice")
    assert out == "== alice\n127.0.0.1: Connection refused\n"


# ---------------------------------------------------------------------------
# HTTP GET client
# ---------------------------------------------------------------------------

class _Http(BaseHTTPRequestHandler):
    BODIES = {"/hello": b"hello world\nsecond line\n", "/big": b"x" * 300000}

    def do_GET(self):
        body = self.BODIES.get(self.path)
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_server():
    server = _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Http))
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_get(perl, http_server):
    out = run_twins(perl, "http_get", "127.0.0.1", http_server, "/hello", "/big", "/missing")
    assert "== /hello\nHTTP/1.0 200 OK\ncontent-type: text/plain\n" in out
    assert "body (24 bytes): hello world\n" in out
    assert "body (300000 bytes): " + "x" * 40 + "\n" in out
    assert "== /missing\nHTTP/1.0 404 Not Found\n" in out


def test_http_get_refused(perl):
    out = run_twins(perl, "http_get", "127.0.0.1", _refused_port(), "/")
    assert out == "== /\nHTTP/1.0 500 Connection refused\n"


# ---------------------------------------------------------------------------
# line echo server: the twins are the servers, one Python client script
# ---------------------------------------------------------------------------

def _talk_to_echo_server(cmd):
    """Start the server, run a fixed conversation, stop it with SIGTERM.

    Returns the transcript (what the clients received and the server printed,
    in a fixed order) and the server's stderr.
    """
    proc = subprocess.Popen(cmd + ["127.0.0.1", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        first = proc.stdout.readline()
        port = int(first.rsplit(":", 1)[1])
        seen = [first.replace(str(port), "PORT")]

        def connect():
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            return sock, sock.makefile("rb")

        def server_says(prefix):  # the server's lines up to one starting with prefix
            line = None
            while line is None or not line.startswith(prefix):
                line = proc.stdout.readline()
                assert line, "server output ended before %r" % prefix
                seen.append(line)

        (a, ra), (b, rb) = connect(), connect()
        seen += [ra.readline(), rb.readline()]
        a.sendall(b"one\r\ntwo\n")                 # both line endings
        seen += [ra.readline(), ra.readline()]
        b.sendall(b"y" * 5000)                     # over rbuf_max, no newline
        try:
            seen.append(rb.read())                 # the server drops b ...
        except ConnectionResetError:
            seen.append(b"<reset>")                # ... maybe with unread data
        a.sendall(b"three\r\nquit\r\n")
        seen += [ra.readline(), ra.read()]         # "bye", then EOF from push_shutdown
        ra.close()
        a.close()
        server_says("client 1: eof")
        c, rc = connect()
        seen.append(rc.readline())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
        for f in (rb, b, rc, c):
            f.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return "".join(s if isinstance(s, str) else repr(s) + "\n" for s in seen) + out, err


@pytest.fixture(scope="module")
def echo_runs(perl):
    """{"perl"|"python": (transcript, stderr)} of one conversation with each twin."""
    return {lang: _talk_to_echo_server(cmd)
            for lang, cmd in _commands(perl, "echo_server").items()}


def test_echo_server(echo_runs):
    transcripts = {lang: run[0] for lang, run in echo_runs.items()}
    assert transcripts["python"] == transcripts["perl"]
    lines = transcripts["perl"].splitlines()
    assert "b'2: two\\r\\n'" in lines and "b'bye\\r\\n'" in lines
    assert "client 2: error (No space left on device) after 0 lines" in lines
    assert "client 1: eof after 3 lines" in lines
    assert lines[-2:] == ["client 3: connected", "SIGTERM: stopping, 1 clients still connected"]


def test_echo_server_logs_nothing(echo_runs):
    assert {lang: run[1] for lang, run in echo_runs.items()} == {"perl": "", "python": ""}


# ---------------------------------------------------------------------------
# TLS client against a Python ssl server
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server():
    """A TLS server on 127.0.0.1 ("localhost" in its certificate): it greets,
    answers one line, sends close_notify and closes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs().server_pem)
    listener = Listener()

    def serve_one(sock):
        with sock:
            sock.settimeout(TIMEOUT)
            try:
                with ctx.wrap_socket(sock, server_side=True) as tls:
                    with tls.makefile("rb") as f:
                        line = f.readline().rstrip()
                    tls.sendall(b"welcome\r\nyou said: " + line + b"\r\n")
                    tls.unwrap().close()
            except (OSError, ssl.SSLError):
                pass  # the client rejected us, or closed first

    def accept_loop():
        while True:
            try:
                sock = listener.accept(None)
            except OSError:
                return
            threading.Thread(target=serve_one, args=(sock,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    yield listener.port
    listener.close()


def test_tls_client(perl, tls_server):
    out = run_twins(perl, "tls_client", "localhost", tls_server, certs().ca_file)
    lines = out.splitlines()
    assert lines[0] == "connected to 127.0.0.1:%d" % tls_server
    assert lines[1].startswith("TLS established, server certificate for /O=trustme")
    assert lines[2:] == ["server says: welcome", "server says: you said: hello server",
                         "the server closed the connection"]


def test_tls_client_unknown_ca(perl, tls_server):
    out = run_twins(perl, "tls_client", "localhost", tls_server, certs().unknownca_file,
                    quiet=False)
    assert out == "connected to 127.0.0.1:%d\nTLS handshake failed\n" % tls_server


def test_tls_client_refused(perl):
    port = _refused_port()
    assert run_twins(perl, "tls_client", "127.0.0.1", port, certs().ca_file) \
        == "error: Connection refused\n"


# ---------------------------------------------------------------------------
# DNS lookups against dnsmasq
# ---------------------------------------------------------------------------

def test_dns_lookup(perl, dnsmasq, tmp_path):  # noqa: F811 - fixture
    if dnsmasq.port != 53:
        pytest.skip("Perl's AnyEvent::DNS asks port 53 only; dnsmasq runs on %d "
                    "(not root)" % dnsmasq.port)
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver %s\n" % dnsmasq.ip)
    out = run_twins(perl, "dns_lookup", conf, "test.example")
    assert out.splitlines() == [
        "a: 192.0.2.10",
        "aaaa: 2001:db8::10",
        "mx: mx1.test.example mx2.test.example",
        "txt: hello world",
        "srv: [10 5 389 mx1.test.example] [20 5 389 mx2.test.example]",
        "ptr: www.test.example",
        "missing: (nothing)",
        "records: [www.test.example a in 0 192.0.2.10]",
    ]


# -- fetch: parallel GETs with AnyEvent::HTTP -------------------------------------

_TIMES = re.compile(r"\d+\.\d{3}s?(?= |$)|^\d+\.\d requests/s$", re.M)


def _fetch_twins(perl, *args):
    """Both fetch twins: same stdout and same sorted stderr once timings are masked."""
    seen = {}
    for lang, cmd in _commands(perl, "fetch").items():
        proc = subprocess.run(cmd + [str(a) for a in args], capture_output=True,
                              text=True, timeout=TIMEOUT, env=_env())
        err = sorted(re.sub(r"^\[\d+/", "[", _TIMES.sub("T", line))
                     for line in proc.stderr.splitlines())
        seen[lang] = (proc.returncode, _TIMES.sub("T", proc.stdout), err)
    assert seen["python"] == seen["perl"]
    return seen["perl"]


def test_fetch(perl, tmp_path):
    require_tool("nginx")
    with Nginx() as nginx:
        (nginx.root / "hello.txt").write_text("hello world\n")
        refused = "http://127.0.0.1:%d/" % _refused_port()
        listed = tmp_path / "urls"
        listed.write_text("# a comment\n\n  %s  \n%s\n" % (nginx.url("/missing"), refused))
        rc, out, err = _fetch_twins(perl, "-n", 1, "-t", 5, "-f", listed,
                                    nginx.url("/hello.txt"), nginx.url("/redirect/2"))
    assert rc == 1
    lines = out.splitlines()
    assert lines[0].split() == ["URL", "STATUS", "BYTES", "SECONDS"]
    assert [line.split()[1:3] for line in lines[1:5]] == [
        ["200", "12"], ["200", "4"], ["404", "146"], ["595", "0"]]
    assert lines[5].split()[:3] == ["total", "2/4", "162"]
    assert lines[6] == "T"
    assert "[4] 595 0 bytes T %s (Connection refused)" % refused in err
