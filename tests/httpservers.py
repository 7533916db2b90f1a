"""Real HTTP peers for the HTTP client's tests and benchmarks (no pytest here).

:class:`Nginx`, :class:`TinyProxy` (a forward proxy), :class:`OpenSSLWWW`
(``openssl s_server -WWW``), :class:`PyHTTPServer` (an HTTP/1.0 server) and
:class:`Scripted`, a threaded TCP server running a handler per connection,
with ready-made handlers (``canned``, the upper-case constants) for faults
real servers do not produce on demand.

Each peer listens on a free 127.0.0.1 port and accepts connections once
constructed; it is a context manager, and ``stop()`` ends it and removes its
temporary directory.
"""

import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _free_ports(n):
    """``n`` distinct ports nothing listens on right now (bound at once, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepting(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class _Server:
    """A server subprocess on free ports, with a temporary directory ``tmp``."""

    proc = None

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="aehttp-"))

    def _start(self, nports, argv, ready=lambda: True, cwd=None, timeout=5):
        """Run ``argv(*ports)`` on ``nports`` free ports until it accepts on all
        of them and ``ready()``; a new set of ports when it exits (a bind race)."""
        log = self.tmp / "stderr.log"
        for _ in range(5):
            ports = _free_ports(nports)
            cmd = argv(*ports)
            with open(log, "wb") as err:
                proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if ready() and all(_accepting(p) for p in ports):
                    self.proc = proc
                    return ports
                time.sleep(0.005)
            _end(proc)
        logs = "".join(f.read_text()[-2000:] for f in sorted(self.tmp.glob("*.log")))
        self.stop()
        raise RuntimeError("%s did not start: %s" % (cmd[0], logs))

    def stop(self):
        if self.proc is not None:
            _end(self.proc)
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _end(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: ``/redirect/N`` exists for N up to this (a 302 chain down to ``/redirect/0``).
MAX_REDIRECT = 20
#: ``/status/NNN`` exists for these; bodyless for 204 and 304, else the body is "NNN\n".
STATUSES = (200, 201, 204, 304, 400, 404, 500, 503)

_NGINX_CONF = """\
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    sendfile on;
    gzip off;
    keepalive_requests 100000;
    keepalive_timeout 60;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        {tls}
        root {root};
        # the files of root again, through the SSI filter: no Content-Length,
        # so chunked to HTTP/1.1 clients (read until close by HTTP/1.0 ones)
        location /chunked/ {{ alias {root}/; ssi on; ssi_types *; }}
        location = /redirect/0 {{ return 200 "done"; }}
        {redirects}
        location = /r301 {{ return 301 /echo-method; }}
        location = /r307 {{ return 307 /echo-method; }}
        location = /r308 {{ return 308 /echo-method; }}
        location = /echo-method {{ return 200 "$request_method $content_length\\n"; }}
        location = /loop {{ return 302 /loop; }}
        location = /cookie/set {{
            add_header Set-Cookie "persistent=1; Max-Age=3600; Path=/";
            add_header Set-Cookie "session=2; Path=/cookie";
            return 200 "set\\n";
        }}
        location = /cookie/show {{ return 200 "$http_cookie"; }}
        {statuses}
        location = /close {{ keepalive_timeout 0; return 200 "close\\n"; }}
        location = /headers {{
            add_header X-Multi one;
            add_header X-Multi two;
            return 200 "headers\\n";
        }}
    }}
}}
"""


class Nginx(_Server):
    """nginx serving ``root`` (a new temporary directory when ``None``) on
    ``.port``, and with TLS on ``.tls_port`` when ``tls_pem`` (key and
    certificate in one PEM file) is given.  Besides the files it answers:

    ``/chunked/FILE``      FILE of root with ``Transfer-Encoding: chunked``
    ``/redirect/N``        302 to ``/redirect/N-1``; ``/redirect/0``: 200 "done"
    ``/r301`` ``/r307`` ``/r308``  that status to ``/echo-method``
    ``/echo-method``       "METHOD CONTENT-LENGTH\\n" of the request
    ``/loop``              302 to itself
    ``/cookie/set``        two Set-Cookie: ``persistent=1`` (Max-Age 3600, Path /)
                           and the session cookie ``session=2`` (Path /cookie)
    ``/cookie/show``       the request's Cookie header as the body
    ``/status/NNN``        status NNN for NNN in :data:`STATUSES`
    ``/close``             a response with ``Connection: close``
    ``/headers``           two ``X-Multi`` header lines ("one", "two")

    Keep-alive is on (100000 requests, 60 s), gzip off, sendfile on.  nginx
    retries a taken port for 2.5 s before it gives up (and we try new ones).
    """

    def __init__(self, root=None, tls_pem=None):
        super().__init__()
        self.root = Path(root) if root is not None else self.tmp / "root"
        self.root.mkdir(exist_ok=True)
        self.tls_port = None
        pid = self.tmp / "nginx.pid"  # written once every listen socket is bound

        def argv(port, tls_port=None):
            tls = "" if tls_pem is None else (
                "listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s;"
                % (tls_port, tls_pem, tls_pem))
            pid.unlink(missing_ok=True)
            conf = self.tmp / "nginx.conf"
            conf.write_text(_NGINX_CONF.format(
                tmp=self.tmp, root=self.root, port=port, tls=tls,
                redirects="\n        ".join(
                    "location = /redirect/%d { return 302 /redirect/%d; }" % (n, n - 1)
                    for n in range(1, MAX_REDIRECT + 1)),
                statuses="\n        ".join(
                    "location = /status/%d { return %d%s; }"
                    % (s, s, "" if s in (204, 304) else ' "%d\\n"' % s) for s in STATUSES)))
            return ["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "error.log"),
                    "-c", str(conf), "-g", "daemon off;"]

        ports = self._start(1 if tls_pem is None else 2, argv, ready=pid.exists)
        self.port = ports[0]
        if tls_pem is not None:
            self.tls_port = ports[1]

    def url(self, path, tls=False):
        if tls:
            return "https://127.0.0.1:%d%s" % (self.tls_port, path)
        return "http://127.0.0.1:%d%s" % (self.port, path)


class TinyProxy(_Server):
    """tinyproxy, a forward proxy on ``.port`` for 127.0.0.1 clients, with
    CONNECT to every port (no ``ConnectPort`` line)."""

    def __init__(self):
        super().__init__()
        conf = self.tmp / "tinyproxy.conf"

        def argv(port):
            conf.write_text("Port %d\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\n"
                            "MaxClients 100\nLogLevel Warning\nLogFile \"%s\"\n"
                            % (port, self.tmp / "tinyproxy.log"))
            return ["tinyproxy", "-d", "-c", str(conf)]

        self.port, = self._start(1, argv)


class OpenSSLWWW(_Server):
    """``openssl s_server -WWW`` with the key and certificate of ``pem``,
    serving the files of ``.root`` (a temporary directory) on ``.port``:
    HTTP/1.0, one connection at a time, closed after each response."""

    def __init__(self, pem):
        super().__init__()
        self.root = self.tmp / "root"
        self.root.mkdir()
        self.port, = self._start(1, lambda port: [
            "openssl", "s_server", "-quiet", "-WWW", "-accept", "127.0.0.1:%d" % port,
            "-cert", str(pem), "-key", str(pem)], cwd=self.root)

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)


# ``python -m http.server`` has --protocol only from 3.11 on
_PY_SERVER = """\
import functools, http.server, sys
port, root, protocol = sys.argv[1:]
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = protocol
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(port)),
                                functools.partial(Handler, directory=root)).serve_forever()
"""


class PyHTTPServer(_Server):
    """Python's ``http.server`` serving the files of ``root`` on ``.port``,
    speaking ``protocol`` (HTTP/1.0: one request per connection)."""

    def __init__(self, root, protocol="HTTP/1.0"):
        super().__init__()
        self.root = Path(root)
        self.port, = self._start(1, lambda port: [
            sys.executable, "-c", _PY_SERVER, str(port), str(self.root), protocol])

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)


class Scripted:
    """A TCP server on 127.0.0.1 ``.port`` that runs ``handler(conn)`` in a
    thread of its own for every accepted connection (a blocking socket,
    closed when the handler returns).  ``.connections`` counts them.  An
    ``OSError`` (the client went away) ends a handler quietly, other
    exceptions go to ``threading.excepthook`` (pytest fails the test);
    ``stop()`` shuts the open connections down and waits for the handlers."""

    def __init__(self, handler):
        self.handler = handler
        self.connections = 0
        self._stopping = False
        self._open = set()
        self._threads = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self):
        while True:
            conn, _ = self._listener.accept()
            if self._stopping:  # stop()'s wake-up call
                conn.close()
                return
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def stop(self):
        if self._stopping:
            return
        self._stopping = True
        socket.create_connection(("127.0.0.1", self.port)).close()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def read_request(conn):
    """Read one request (head and a Content-Length body) from ``conn``;
    ``None`` at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def canned(*parts, delay=0.0, reset=False):
    """A handler: read one request, send ``parts`` (sleeping ``delay``
    seconds between them), then close (with an RST when ``reset``)."""
    def handler(conn):
        if read_request(conn) is None:
            return
        for i, part in enumerate(parts):
            if i and delay:
                time.sleep(delay)
            conn.sendall(part)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return handler


def slow_headers(delay=0.2):
    """A handler sending the header lines ``delay`` seconds apart."""
    return canned(b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n", b"Content-Length: 2\r\n",
                  b"\r\nok", delay=delay)


def keepalive_drop(conn):
    """A handler answering the first request of a connection (keep-alive,
    body "ok"), then closing it when the next one arrives, unanswered."""
    if read_request(conn) is not None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_request(conn)


#: chunked, the first chunk ("hello") and then the connection closes
TRUNCATED_CHUNKED = canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
#: Content-Length 100, 10 bytes, then an RST
RESET_MID_BODY = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", reset=True)
#: a 100 Continue, then the response (body "ok")
CONTINUE_100 = canned(b"HTTP/1.1 100 Continue\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
#: not an HTTP status line
GARBLED_STATUS = canned(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
#: 200 KB of header lines (200 of 1000 bytes), then body "ok"
HUGE_HEADERS = canned(b"HTTP/1.1 200 OK\r\n"
                      + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 1000) for i in range(200))
                      + b"Content-Length: 2\r\n\r\nok")
#: Content-Length: -5
NEGATIVE_LENGTH = canned(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello")
#: Content-Length: 10**20, body "hello", close
HUGE_LENGTH = canned(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nhello" % 10 ** 20)
#: chunked with the chunk size "zz"
BAD_CHUNK_SIZE = canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
#: Content-Length 5 and the body "hello world"
BODY_TOO_LONG = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world")
#: X-Folded: "a" continued by "  b" and "\tc" (obsolete line folding)
FOLDED_HEADERS = canned(b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\n"
                        b"Content-Length: 2\r\n\r\nok")
#: "HTTP/1.1 200" without a reason phrase
NO_REASON = canned(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
#: HTTP/1.0, no Content-Length: the body ("until close") ends at EOF
HTTP10_UNTIL_CLOSE = canned(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
