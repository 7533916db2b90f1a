"""The default TLS context verifies servers (a deliberate difference from Perl).

A Handle without ``tls_ctx`` (``tls="connect"``, ``starttls("connect")``) checks the
server's chain against ``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH`` or the system trust store
(which ``SSL_CERT_FILE`` replaces) and its name against the host given to ``connect=`` (or
``peername=``).  The peers are real ``openssl s_server`` processes presenting good,
expired, self-signed, wrong-host and unknown-CA certificates; the trust store is whatever
the test points the environment at.  ``verify=0`` or any explicit context connects to all
of them (Perl's behaviour); server connections keep Perl's defaults.
"""

import errno
import subprocess
import threading
import time

import pytest
from OpenSSL import SSL, crypto

from anyevent import AE
from anyevent import tls as aetls
from anyevent.handle import TLS_CTX, Handle
from anyevent.socket import tcp_connect
from anyevent.tls import TLS, default_ctx, tls_ctx_from
from conftest import free_port, require_tool, run_until
from tlsfixtures import certs, verify_failed

C = certs()

# (certificate the server presents, how the default client's error message starts)
BAD = {
    "expired": (C.expired_pem, "certificate verify failed: certificate has expired"),
    "selfsigned": (C.selfsigned_pem, "certificate verify failed: self-signed certificate"),
    "wronghost": (C.wronghost_pem,
                  "hostname mismatch: certificate is for wrong.example, not localhost"),
    "unknownca": (C.unknownca_pem,
                  "certificate verify failed: unable to get local issuer certificate"),
}


@pytest.fixture(autouse=True)
def trust_env(monkeypatch):
    """No trust settings from the outside; tests set the ones they mean."""
    for name in aetls._TRUST_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def s_server():
    """start(pem) -> port of an ``openssl s_server -rev`` (reverses each line) for one
    connection, presenting the key and certificate of ``pem``."""
    openssl = require_tool("openssl")
    procs = []

    def start(pem):
        port = free_port()
        proc = subprocess.Popen(
            [openssl, "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", pem,
             "-naccept", "1", "-rev"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.monotonic() + 10
        seen = b""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen += line
            if not line or b"ACCEPT" in line:
                break
        assert b"ACCEPT" in seen, seen
        return port
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def talk(port, host="localhost", tls="connect", **opts):
    """Connect a TLS client Handle to ``host``:``port``, say hello: ``("ok", answer)``
    or ``("error", fatal, errno, message)``."""
    cv = AE.cv()
    hdl = Handle(connect=(host, port), tls=tls,
                 on_error=lambda h, fatal, msg: cv.send(("error", fatal, h.errno, msg)),
                 on_connect_error=lambda h, msg: cv.send(("connect error", msg)), **opts)
    hdl.push_write(b"hello\n")
    hdl.push_read("line", lambda h, line, eol: cv.send(("ok", line.strip())))
    try:
        return run_until(cv, 15)
    finally:
        hdl.destroy()


def assert_fails(result, why):
    assert result[:3] == ("error", True, errno.EPROTO), result
    assert result[3].startswith(verify_failed(why)), result


# -- the default client verifies ----------------------------------------------------------

def test_valid_certificate_from_trusted_ca_connects_by_default(s_server, trust_env):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    assert talk(s_server(C.server_pem)) == ("ok", b"olleh")
    assert talk(s_server(C.server_pem), host="127.0.0.1") == ("ok", b"olleh")  # IP SAN


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_certificates_are_fatal_eproto_with_the_reason(s_server, trust_env, kind):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    pem, why = BAD[kind]
    assert_fails(talk(s_server(pem)), why)


@pytest.mark.parametrize("kind", ["good"] + sorted(BAD))
@pytest.mark.parametrize("ctx", ["verify0", "empty dict", "TLS()"])
def test_verify_0_or_an_explicit_context_accepts_anything_as_perl(s_server, trust_env,
                                                                   kind, ctx):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    pem = C.server_pem if kind == "good" else BAD[kind][0]
    tls_ctx = {"verify0": {"verify": 0}, "empty dict": {}, "TLS()": TLS()}[ctx]
    assert talk(s_server(pem), tls_ctx=tls_ctx) == ("ok", b"olleh")


def test_system_store_without_the_test_ca_rejects_it(s_server):
    assert_fails(talk(s_server(C.server_pem)),
                 "certificate verify failed: unable to get local issuer certificate")


def test_system_store_is_loaded():
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    try:
        with open(bundle, "rb") as fh:
            pem = fh.read()
    except OSError:
        pytest.skip("no system CA bundle at " + bundle)
    end = b"-----END CERTIFICATE-----"
    roots = (crypto.load_certificate(crypto.FILETYPE_PEM, block + end)
             for block in pem.split(end) if b"BEGIN CERTIFICATE" in block)
    root = next(r for r in roots if not r.has_expired())
    store = default_ctx().ctx.get_cert_store()
    crypto.X509StoreContext(store, root).verify_certificate()   # raises unless trusted


def test_ssl_cert_file_replaces_the_system_store(s_server, trust_env):
    trust_env.setenv("SSL_CERT_FILE", C.ca_file)
    assert talk(s_server(C.server_pem)) == ("ok", b"olleh")
    assert_fails(talk(s_server(C.expired_pem)), BAD["expired"][1])


def test_anyevent_ca_path_hashed_directory(s_server, trust_env, tmp_path):
    ca = crypto.load_certificate(crypto.FILETYPE_PEM, C.ca_pem)
    (tmp_path / ("%08x.0" % ca.subject_name_hash())).write_bytes(C.ca_pem)
    trust_env.setenv("ANYEVENT_CA_PATH", str(tmp_path))
    assert talk(s_server(C.server_pem)) == ("ok", b"olleh")


def test_environment_picks_the_default_object(trust_env):
    plain = default_ctx()
    assert default_ctx() is plain is tls_ctx_from(None) is TLS_CTX()
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    trusting = default_ctx()
    assert trusting is not plain and default_ctx() is trusting
    trust_env.delenv("ANYEVENT_CA_FILE")
    assert default_ctx() is plain


def test_unreadable_anyevent_ca_file_is_a_fatal_setup_error(s_server, trust_env, tmp_path):
    trust_env.setenv("ANYEVENT_CA_FILE", str(tmp_path / "missing.pem"))
    result = talk(s_server(C.server_pem))
    assert result[:3] == ("error", True, errno.EPROTO), result
    assert "TLS setup failed" in result[3] and "missing.pem" in result[3]


# -- the host name checked is the one the Handle was given ----------------------------------

def test_peername_overrides_the_connect_host(s_server, trust_env):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    assert talk(s_server(C.wronghost_pem), peername="wrong.example") == ("ok", b"olleh")
    assert_fails(talk(s_server(C.server_pem), peername="other.test"),
                 "hostname mismatch: certificate is for localhost, 127.0.0.1, ::1, "
                 "not other.test")


def _fh_handle(port, **opts):
    """tcp_connect, then a TLS client Handle on the bare fh: its result."""
    cv = AE.cv()
    keep = []

    def connected(fh=None, *rest):
        if fh is None:
            return cv.send(("connect error",))
        hdl = Handle(fh=fh, tls="connect",
                     on_error=lambda h, fatal, msg: cv.send(("error", fatal, h.errno, msg)),
                     **opts)
        hdl.push_write(b"hello\n")
        hdl.push_read("line", lambda h, line, eol: cv.send(("ok", line.strip())))
        keep.append(hdl)
    guard = tcp_connect("127.0.0.1", port, connected)
    try:
        return run_until(cv, 15)
    finally:
        del guard
        for hdl in keep:
            hdl.destroy()


def test_bare_fh_needs_a_peername(s_server, trust_env):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    assert_fails(_fh_handle(s_server(C.server_pem)),
                 "hostname mismatch: no peername to check the certificate against")
    assert _fh_handle(s_server(C.server_pem), peername="localhost") == ("ok", b"olleh")


# -- starttls, on_starttls -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["good", "wronghost", "selfsigned"])
def test_starttls_connect_without_context_verifies(s_server, trust_env, kind):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    pem = C.server_pem if kind == "good" else BAD[kind][0]
    port = s_server(pem)
    cv = AE.cv()

    def connected(hdl, host, port, retry):
        hdl.starttls("connect")
        hdl.push_write(b"hello\n")
        hdl.push_read("line", lambda h, line, eol: cv.send(("ok", line.strip())))
    hdl = Handle(connect=("localhost", port), on_connect=connected,
                 on_error=lambda h, fatal, msg: cv.send(("error", fatal, h.errno, msg)))
    try:
        result = run_until(cv, 15)
    finally:
        hdl.destroy()
    if kind == "good":
        assert result == ("ok", b"olleh")
    else:
        assert_fails(result, BAD[kind][1])


def test_on_starttls_gets_the_reason(s_server, trust_env):
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    port = s_server(C.expired_pem)
    cv = AE.cv()
    hdl = Handle(connect=("localhost", port), tls="connect",
                 on_starttls=lambda h, ok, msg: cv.send((ok, msg)),
                 on_error=lambda h, fatal, msg: None)
    try:
        assert run_until(cv, 15) == (False, verify_failed(BAD["expired"][1]))
    finally:
        hdl.destroy()


def test_a_connection_of_the_users_own_is_not_judged_by_the_default(s_server, trust_env):
    """``tls=Connection`` from an explicit non-verifying context: Perl's behaviour."""
    trust_env.setenv("ANYEVENT_CA_FILE", C.ca_file)
    conn = TLS().new_connection("connect", "localhost")
    assert talk(s_server(C.wronghost_pem), tls=conn) == ("ok", b"olleh")


# -- servers keep Perl's defaults ---------------------------------------------------------

def test_server_connections_of_the_default_context_do_not_verify():
    ctx = default_ctx()
    assert ctx.verify and ctx.verify_peername == "https"       # the client side
    assert not ctx.server.verify and ctx.server.verify_peername is None
    conn = ctx.new_connection("accept")
    assert conn.get_context() is ctx.server.ctx
    assert conn.get_context().get_verify_mode() == SSL.VERIFY_NONE
    assert ctx.verify_result(conn) is None
    client = ctx.new_connection("connect", "localhost")
    assert client.get_context() is ctx.ctx
    assert ctx.ctx.get_verify_mode() & SSL.VERIFY_PEER


# -- replacing the default (Perl's $AnyEvent::Handle::TLS_CTX = ...) --------------------------

@pytest.fixture
def replaced_default():
    from anyevent.handle import set_tls_ctx
    yield set_tls_ctx
    set_tls_ctx(None)


def test_a_replaced_default_lets_a_ported_module_start_tls_on_a_bare_socket(
        s_server, trust_env, replaced_default):
    """AnyEvent::IRC's enable_ssl: a bare socket, tls => 'connect', no tls_ctx, no
    peer name.  Ours refuses; after set_tls_ctx(TLS()) (Perl's defaults, as a Perl
    program sets $AnyEvent::Handle::TLS_CTX) it connects; None restores ours."""
    assert_fails(_fh_handle(s_server(C.selfsigned_pem)), "certificate verify failed")
    replaced_default({"verify": 0})
    assert TLS_CTX() is tls_ctx_from({"verify": 0})
    assert _fh_handle(s_server(C.selfsigned_pem)) == ("ok", b"olleh")
    replaced_default(None)
    assert TLS_CTX() is default_ctx()
    assert_fails(_fh_handle(s_server(C.selfsigned_pem)), "certificate verify failed")


def test_a_replaced_default_leaves_http_verifying(s_server, trust_env, replaced_default):
    """anyevent.http keeps its own default, as AnyEvent::HTTP has its own contexts."""
    from anyevent.http import http_get
    replaced_default(TLS())
    port = s_server(C.selfsigned_pem)
    cv = AE.cv()
    http_get("https://localhost:%d/" % port, lambda body, hdr: cv.send(hdr))
    hdr = run_until(cv, 15)
    assert hdr["Status"] == 596 and "certificate verify failed" in hdr["Reason"], hdr
    with pytest.raises(TypeError):
        replaced_default(42)


# -- error texts: Perl's ------------------------------------------------------------------

PERL_TLS_ERROR = r'''
use AnyEvent; use AnyEvent::Handle;
my ($port, $ca) = @ARGV;
my $cv = AE::cv;
my $h = AnyEvent::Handle->new(connect => ["localhost", $port], tls => "connect",
    tls_ctx => $ca ? { verify => 1, ca_file => $ca } : {},
    on_error => sub { print "$_[1] ", ($! + 0), " $_[2]\n"; $cv->send });
$h->push_write("hello\n");
$cv->recv;
'''


@pytest.fixture
def not_tls(listener):
    """The port of a server that answers a TLS hello in plain HTTP, as a
    misconfigured port does."""
    def answer():
        for _ in range(2):
            with listener.accept(15) as conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 3)
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield listener.port
    listener.close()
    thread.join(5)


def _perl_tls_error(port, ca=""):
    require_tool("perl")
    res = subprocess.run(["perl", "-e", PERL_TLS_ERROR, str(port), ca], capture_output=True,
                         text=True, timeout=30)
    fatal, code, message = res.stdout.rstrip("\n").split(" ", 2)
    return ("error", fatal == "1", int(code), message)


def test_tls_error_texts_are_perls_with_openssls_code(not_tls, s_server):
    """AnyEvent::Handle's message is OpenSSL's ERR_error_string, code included
    ("error:0A00010B:SSL routines::wrong version number"); ours is the same text,
    and a refused certificate reads as Perl's, followed by why."""
    perl = _perl_tls_error(not_tls)
    assert perl == ("error", True, errno.EPROTO,
                    "error:0A00010B:SSL routines::wrong version number")
    assert talk(not_tls, tls_ctx={}) == perl
    perl = _perl_tls_error(s_server(C.unknownca_pem), C.ca_file)
    ours = talk(s_server(C.unknownca_pem), tls_ctx={"verify": 1, "ca_file": C.ca_file})
    assert perl == ("error", True, errno.EPROTO, verify_failed(""))
    assert ours[:3] == perl[:3] and ours[3].startswith(perl[3] + ": "), (ours, perl)
