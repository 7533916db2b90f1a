"""anyevent.tls: contexts, verification, versions, SNI, ALPN, sessions.

Handshakes run between two ``new_connection()`` Connections by shuttling bytes between
their memory BIOs in-process (``Pair``), and against Python's ``ssl`` over a real
socketpair.  Peer-name matching is compared with Perl's AnyEvent::TLS::verify_hostname.
"""

import datetime
import logging
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import SSL, crypto

from anyevent import tls as aetls
from anyevent.tls import TLS, error_message, tls_ctx_from, verify_hostname
from conftest import require_tool
from tlsfixtures import PASSWORD, certs, verify_failed

C = certs()


def server(**opts):
    return TLS(cert_file=opts.pop("cert_file", C.server_pem), **opts)


def client(**opts):
    return TLS(**{"verify": 1, "verify_peername": "https", "ca_file": C.ca_file, **opts})


class Pair:
    """A client and a server Connection joined through their memory BIOs."""

    def __init__(self, client_tls, server_tls, peername="localhost", c=None):
        self.c = c or client_tls.new_connection("connect", peername)
        self.s = server_tls.new_connection("accept")
        self.err = {self.c: None, self.s: None}
        self.got = {self.c: b"", self.s: b""}
        self.done = set()

    def run(self, rounds=30):
        """Step both ends (handshake, then reads) until no byte moves; returns self."""
        for _ in range(rounds):
            for conn in (self.c, self.s):
                self._step(conn)
            if not (self._shuttle(self.c, self.s) | self._shuttle(self.s, self.c)):
                break
        return self

    def _step(self, conn):
        if self.err[conn] is not None:
            return
        try:
            if conn not in self.done:
                conn.do_handshake()
                self.done.add(conn)
            while True:
                self.got[conn] += conn.recv(65536)
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            self.err[conn] = exc

    @staticmethod
    def _shuttle(src, dst):
        try:
            data = src.bio_read(1 << 20)
        except SSL.WantReadError:
            return False
        dst.bio_write(data)
        return True

    @property
    def ok(self):
        return self.err[self.c] is None and self.err[self.s] is None and len(self.done) == 2

    def message(self, side):
        conn = self.c if side == "client" else self.s
        return error_message(self.err[conn], conn)

    def echo(self, data=b"hello"):
        self.c.send(data)
        self.run()
        self.s.send(self.got[self.s][::-1])
        self.run()
        return self.got[self.c]


# -- verification --------------------------------------------------------------------------

def test_good_chain_accepted_and_data_flows():
    pair = Pair(client(), server()).run()
    assert pair.ok, (pair.err, pair.message("client"))
    assert pair.echo(b"ping") == b"gnip"
    assert pair.c.get_protocol_version_name() == "TLSv1.3"
    assert client().verify_result(pair.c, "localhost") is None   # other object: full re-check
    assert client().verify_result(pair.c, "127.0.0.1") is None


@pytest.mark.parametrize("peername", ["127.0.0.1", "::1", "LOCALHOST"])
def test_ip_and_case_peernames_accepted(peername):
    assert Pair(client(), server(), peername).run().ok


@pytest.mark.parametrize("pem, peername, why", [
    (C.wronghost_pem, "localhost", "hostname mismatch: certificate is for wrong.example, not localhost"),
    (C.server_pem, "example.com", "hostname mismatch: certificate is for localhost, 127.0.0.1, ::1"),
    (C.expired_pem, "localhost", "certificate verify failed: certificate has expired"),
    (C.selfsigned_pem, "localhost", "certificate verify failed: self-signed certificate"),
    (C.unknownca_pem, "localhost", "certificate verify failed: unable to get local issuer certificate"),
])
def test_bad_server_certificates_rejected_with_reason(pem, peername, why):
    tls = client()
    pair = Pair(tls, server(cert_file=pem), peername).run()
    assert isinstance(pair.err[pair.c], SSL.Error)
    assert pair.message("client").startswith(verify_failed(why))
    assert tls.verify_result(pair.c, peername).startswith(why)
    assert error_message(pair.c).startswith(why)            # the reason alone, without an error
    assert pair.message("server").startswith("error:0A0004")  # the alert: "tlsv1 alert ..."


def test_defaults_are_insecure_and_accept_anything():
    for pem in (C.selfsigned_pem, C.expired_pem, C.wronghost_pem):
        pair = Pair(TLS(), server(cert_file=pem)).run()
        assert pair.ok
        assert TLS().verify_result(pair.c, "localhost") is None


def test_verify_without_peername_scheme_accepts_other_hosts():
    tls = TLS(verify=1, ca_file=C.ca_file)
    assert Pair(tls, server(cert_file=C.wronghost_pem)).run().ok


def test_client_connection_without_peername_fails_peername_check():
    pair = Pair(client(), server(), peername=None).run()
    assert "no peername" in pair.message("client")


def test_verify_cb_sees_chain_and_can_override():
    calls = []
    marker = Pair   # any weakly referenceable object

    def cb(tls, ref, peername, depth, ok, errnum, cert):
        calls.append((ref, peername, depth, ok, errnum, cert.subject.rfc4514_string()))
        return True

    tls = client(verify_cb=cb)
    conn = tls.new_connection("connect", "localhost", ref=marker)
    assert Pair(None, server(cert_file=C.selfsigned_pem), c=conn).run().ok
    assert calls[0][:5] == (marker, "localhost", 0, False, 18)     # 18: self-signed
    assert calls[0][5] == "CN=localhost"
    assert tls.verify_result(conn) is None


def test_verify_cb_rejection_and_exception_are_reported():
    pair = Pair(client(verify_cb=lambda *a: a[3] != 0), server()).run()
    assert pair.message("client") == verify_failed("certificate rejected by verify_cb at depth 0")

    def broken(*args):
        raise RuntimeError("oops")
    pair = Pair(client(verify_cb=broken), server()).run()
    assert "broken raised RuntimeError('oops')" in pair.message("client")


def test_verify_peername_callback():
    seen = []

    def check(tls, peername, cert):
        seen.append((peername, aetls._alt_names(cert)[0]))
        return peername == "trusted"
    assert Pair(client(verify_peername=check), server(), "trusted").run().ok
    assert seen == [("trusted", ["localhost"])]
    pair = Pair(client(verify_peername=check), server(), "localhost").run()
    assert pair.message("client") == verify_failed("hostname mismatch: rejected by verify_peername callback")


def test_ca_cert_string_and_environment(monkeypatch):
    assert Pair(TLS(verify=1, verify_peername="http", ca_cert=C.ca_pem.decode()), server()).run().ok
    monkeypatch.setenv("ANYEVENT_CA_FILE", C.ca_file)
    assert Pair(TLS(verify=1, verify_peername="http"), server()).run().ok
    monkeypatch.setenv("ANYEVENT_CA_FILE", C.unknownca_file)
    pair = Pair(TLS(verify=1), server()).run()
    assert "unable to get local issuer certificate" in pair.message("client")


def _crl(revoked_pem):
    ca_key = serialization.load_pem_private_key(C.ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(C.ca_pem)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - datetime.timedelta(hours=1))
               .next_update(now + datetime.timedelta(days=1)))
    for pem in revoked_pem:
        serial = x509.load_pem_x509_certificates(Path(pem).read_bytes())[0].serial_number
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_check_crl():
    missing = Pair(client(check_crl=1), server()).run()
    assert missing.message("client") == verify_failed("unable to get certificate CRL")
    empty = C.ca_pem + _crl([])
    assert Pair(TLS(verify=1, ca_cert=empty, check_crl=1), server()).run().ok
    revoked = C.ca_pem + _crl([C.server_pem])
    pair = Pair(TLS(verify=1, ca_cert=revoked, check_crl=1), server()).run()
    assert pair.message("client") == verify_failed("certificate revoked")


# -- client certificates -------------------------------------------------------------------

def strict_server(**opts):
    return server(verify=1, verify_require_client_cert=1, ca_file=C.ca_file, **opts)


def test_client_certificate_required_and_checked():
    good = Pair(client(cert_file=C.client_pem), strict_server()).run()
    assert good.ok
    assert good.echo() == b"olleh"
    assert aetls._alt_names(good.s.get_peer_certificate(as_cryptography=True)) == ([], [])
    assert strict_server().verify_result(good.s) is None

    missing = Pair(client(), strict_server()).run()
    assert "peer did not return a certificate" in missing.message("server")
    assert missing.err[missing.c] is not None      # TLS 1.3: the alert arrives after "done"

    foreign = Pair(client(cert_file=C.client_unknownca_pem), strict_server()).run()
    assert foreign.message("server") == verify_failed("unable to get local issuer certificate")
    assert foreign.message("client") == "error:0A000418:SSL routines::tlsv1 alert unknown ca"


def test_client_certificate_optional_unless_required():
    pair = Pair(client(), server(verify=1, ca_file=C.ca_file)).run()
    assert pair.ok
    assert server(verify=1, ca_file=C.ca_file).verify_result(pair.s) is None
    assert strict_server().verify_result(pair.s) == "no certificate from peer"


# -- own certificate and key ---------------------------------------------------------------

def test_key_and_cert_in_one_pem_string_or_separate():
    pem = Path(C.server_pem).read_text()
    assert Pair(client(), TLS(cert=pem)).run().ok
    assert Pair(client(), TLS(cert=Path(C.server_cert_file).read_bytes(),
                              key=Path(C.server_key_file).read_text())).run().ok
    assert Pair(client(), TLS(cert_file=C.server_cert_file, key_file=C.server_key_file)).run().ok


@pytest.mark.parametrize("password", [PASSWORD, PASSWORD.encode(), lambda tls: PASSWORD])
def test_cert_password(password):
    tls = TLS(cert_file=C.server_cert_file, key_file=C.server_key_encrypted, cert_password=password)
    assert Pair(client(), tls).run().ok


@pytest.mark.parametrize("password", [None, "wrong"])
def test_cert_password_missing_or_wrong(password):
    with pytest.raises(ValueError, match=r"server-key-enc.pem: failed to load local private key"
                                         r".*cert_password"):
        TLS(cert_file=C.server_cert_file, key_file=C.server_key_encrypted, cert_password=password)


def test_bad_certificate_options():
    with pytest.raises(ValueError, match="both cert_file and cert"):
        TLS(cert_file=C.server_pem, cert="x")
    with pytest.raises(ValueError, match="does not match"):
        TLS(cert_file=C.server_cert_file, key_file=C.server_pem.replace("server", "other"))
    with pytest.raises(ValueError, match="nope.pem: cannot read cert file"):
        TLS(cert_file="/nonexistent/nope.pem")
    with pytest.raises(ValueError, match="ca.pem: failed to load local private key"):
        TLS(cert_file=C.ca_file)
    with pytest.raises(ValueError, match="needs a certificate"):
        TLS(key_file=C.server_key_file)
    with pytest.raises(TypeError):
        TLS(verfiy=1)          # a typo is an error here (Perl ignores any unknown key)


# -- protocol versions ---------------------------------------------------------------------

@pytest.mark.parametrize("copts, sopts, version", [
    ({"method": "TLSv1_2"}, {}, "TLSv1.2"),
    ({}, {"method": "tlsv1_2"}, "TLSv1.2"),
    ({"tlsv1_3": 0}, {}, "TLSv1.2"),
    ({"method": "TLSv1_3"}, {"method": "TLSv1_3"}, "TLSv1.3"),
    ({"tlsv1": 0, "tlsv1_1": 0}, {"sslv3": 0, "sslv2": 0}, "TLSv1.3"),
])
def test_forced_versions(copts, sopts, version):
    pair = Pair(client(**copts), server(**sopts)).run()
    assert pair.ok
    assert pair.c.get_protocol_version_name() == pair.s.get_protocol_version_name() == version
    assert pair.echo(b"v") == b"v"


def test_disjoint_versions_fail_readably():
    pair = Pair(client(method="TLSv1_2"), server(method="TLSv1_3")).run()
    assert "protocol version" in pair.message("client") or "protocol version" in pair.message("server")


@pytest.mark.parametrize("method", ["SSLv3", "sslv2"])
def test_sslv2_sslv3_methods_refused(method):
    # Perl 7.17 dies as well (Net::SSLeay has no CTX_v2_new/CTX_v3_new any more)
    with pytest.raises(ValueError, match="SSLv2 and SSLv3 are broken and not supported"):
        TLS(method=method)


def _ignored(caplog):
    """The names of the options reported as ignored on the anyevent.tls logger."""
    return [r.args[0] for r in caplog.records
            if r.name == "anyevent.tls" and r.levelno == logging.DEBUG
            and r.getMessage().startswith("TLS option ")]


@pytest.mark.parametrize("opts, ignored", [
    ({"sslv2": 1}, ["sslv2"]),
    ({"sslv3": True}, ["sslv3"]),
    ({"sslv2": 1, "sslv3": 1, "debug": 1, "cache": 1}, ["sslv2", "sslv3", "debug", "cache"]),
    ({"sslv2": 0, "sslv3": 0, "debug": 0, "cache": 0}, []),     # asks for nothing
])
def test_obsolete_options_ignored_with_debug_line(opts, ignored, caplog):
    with caplog.at_level(logging.DEBUG, logger="anyevent.tls"):
        tls = TLS(**opts)
    assert _ignored(caplog) == ignored
    for record in caplog.records:
        assert "\n" not in record.getMessage()
    if "sslv2" in ignored:
        assert "TLS option sslv2=1 ignored: OpenSSL no longer implements SSLv2" in caplog.text
    # the context is the default one (set_options(0) returns the current options)
    assert tls.ctx.set_options(0) == TLS().ctx.set_options(0)
    assert Pair(tls, server()).run().c.get_protocol_version_name() == "TLSv1.3"


def test_anyevent_http_default_tls_ctx(caplog, monkeypatch):
    """AnyEvent::HTTP's ``{cache => 1, sslv2 => 1}`` as a Handle would use it."""
    monkeypatch.setattr(aetls, "_CACHE", {})     # not made by an earlier test
    opts = {"cache": 1, "sslv2": 1, "verify": 1, "verify_peername": "https", "ca_file": C.ca_file}
    with caplog.at_level(logging.DEBUG, logger="anyevent.tls"):
        tls = tls_ctx_from(opts)
        assert tls_ctx_from(dict(opts)) is tls
    assert _ignored(caplog) == ["sslv2"]      # once (cached); cache is tls_ctx_from's key
    pair = Pair(tls, server()).run()
    assert pair.ok and pair.echo() == b"olleh"
    assert tls.verify_result(pair.c) is None
    assert "hostname mismatch" in Pair(tls, server(), "example.com").run().message("client")


@pytest.mark.parametrize("opts, version", [
    ({"sslv2": 1, "cache": 1}, "TLSv1.3"),
    ({"sslv3": 1}, "TLSv1.3"),
    ({"sslv2": 1, "sslv3": 1, "tlsv1_2": 1, "tlsv1_3": 0}, "TLSv1.2"),
    ({"sslv3": 1, "method": "TLSv1_2"}, "TLSv1.2"),
])
def test_obsolete_options_against_openssl_s_server(opts, version, caplog):
    """What Perl 7.17 does with these contexts against ``openssl s_server``: TLS 1.2/1.3."""
    openssl = require_tool("openssl")
    srv = subprocess.Popen([openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", C.server_pem,
                            "-naccept", "1", "-rev"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in srv.stdout:
            if line.startswith("ACCEPT "):
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, srv.stderr.read()
        with caplog.at_level(logging.DEBUG, logger="anyevent.tls"):
            tls = client(**opts)
        assert _ignored(caplog) == [k for k in ("sslv2", "sslv3", "cache") if k in opts]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            conn = tls.new_connection("connect", "localhost")
            _drive(conn, sock, lambda: conn.do_handshake() or True)
            assert tls.verify_result(conn) is None
            assert conn.get_protocol_version_name() == version
            conn.send(b"hello\n")
            assert _drive(conn, sock, lambda: conn.recv(1024)) == b"olleh\n"
        _, err = srv.communicate(timeout=10)
        assert f"Protocol version: {version}" in err
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.communicate()


def test_bad_version_settings():
    with pytest.raises(ValueError, match="not a valid TLS method"):
        TLS(method="TLSv9")
    with pytest.raises(ValueError, match="contiguous"):
        TLS(tlsv1_2=0)
    with pytest.raises(ValueError, match="no TLS version"):
        TLS(method="TLSv1_2", tlsv1_2=0)


def test_ciphers_and_dh():
    rsa = C.ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    pem = rsa.private_key_and_cert_chain_pem.bytes()
    dhe = "DHE-RSA-AES128-GCM-SHA256"
    pair = Pair(client(method="TLSv1_2", cipher_list=dhe), TLS(cert=pem)).run()
    assert pair.ok and pair.c.get_cipher_name() == dhe
    pair = Pair(client(method="TLSv1_2", cipher_list=dhe), TLS(cert=pem, dh=None)).run()
    assert not pair.ok                      # no DH parameters: no DHE suite in common
    assert TLS(dh="ffdhe2048") and TLS(dh_file=aetls._DH_FILES["ffdhe3072"])
    with pytest.raises(ValueError, match="unknown DH parameters"):
        TLS(dh="skip256")
    with pytest.raises(ValueError, match="not accepted as a valid cipher list"):
        TLS(cipher_list="NO-SUCH-CIPHER")


# -- SNI, ALPN, sessions -------------------------------------------------------------------

def test_sni_selects_certificate_by_name():
    other = TLS(cert_file=C.other_pem)
    by_map = server(sni={"other.test": other})
    pair = Pair(client(), by_map, "other.test").run()
    assert pair.ok
    assert pair.s.get_servername() == b"other.test"
    assert Pair(client(), by_map, "localhost").run().ok          # unknown name: default cert
    assert "hostname mismatch" in Pair(client(), server(), "other.test").run().message("client")

    asked = []
    by_cb = server(sni=lambda tls, name: asked.append(name) or {"cert_file": C.other_pem})
    assert Pair(client(), by_cb, "OTHER.test").run().ok
    assert asked == ["other.test"]
    assert Pair(client(), by_map, "127.0.0.1").run().s.get_servername() is None   # no SNI for IPs


@pytest.mark.parametrize("calpn, salpn, chosen", [
    (["http/1.1", "h2"], ["h2", "http/1.1"], b"h2"),
    ([b"x", "http/1.1"], ["http/1.1"], b"http/1.1"),
    (["spdy"], ["h2"], b""),
    ([], ["h2"], b""),
])
def test_alpn(calpn, salpn, chosen):
    pair = Pair(client(alpn=calpn), server(alpn=salpn)).run()
    assert pair.ok
    assert pair.c.get_alpn_proto_negotiated() == pair.s.get_alpn_proto_negotiated() == chosen


def _reused(conn):
    from OpenSSL._util import lib
    return bool(lib.SSL_session_reused(conn._ssl))


@pytest.mark.parametrize("method, ticket", [("TLSv1_2", None), ("TLSv1_2", True),
                                            ("TLSv1_3", None), ("any", True)])
def test_session_cache_resumes(method, ticket):
    verified = []
    tls = client(method=method, session_cache=True, session_ticket=ticket,
                 verify_cb=lambda *a: verified.append(a[3]) or a[4])
    srv = server()
    first = Pair(tls, srv).run()
    assert first.ok and first.echo() == b"olleh"
    second = Pair(tls, srv).run()
    assert second.ok and second.echo() == b"olleh"
    assert not _reused(first.c) and _reused(second.c) and _reused(second.s)
    assert verified == [1, 0]          # the resumed handshake verifies nothing
    assert tls.verify_result(second.c) is None
    assert not _reused(Pair(tls, srv, "127.0.0.1").run().c)    # cache is per peername
    assert not _reused(Pair(client(method=method), srv).run().c)   # no cache: no resumption


def test_session_cache_is_bounded():
    tls, srv = client(session_cache=2), server()
    for name in ("localhost", "127.0.0.1", "::1"):
        assert Pair(tls, srv, name).run().ok
    assert list(tls._sessions) == ["127.0.0.1", "::1"]


# -- misc interface ------------------------------------------------------------------------

def test_new_connection_modes():
    conn = TLS().new_connection("connect", "example.org")
    assert isinstance(conn, SSL.Connection)
    with pytest.raises(ValueError, match="unsupported TLS mode"):
        TLS().new_connection("listen")


def test_verify_flags_and_ca_path(tmp_path):
    assert TLS().ctx.get_verify_mode() == SSL.VERIFY_NONE
    assert strict_server(verify_client_once=1).ctx.get_verify_mode() == (
        SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT | SSL.VERIFY_CLIENT_ONCE)
    ca = crypto.X509.from_cryptography(x509.load_pem_x509_certificate(C.ca_pem))
    (tmp_path / f"{ca.subject_name_hash():08x}.0").write_bytes(C.ca_pem)
    assert Pair(client(ca_file=None, ca_path=str(tmp_path)), server()).run().ok
    with pytest.raises(ValueError, match="nope: failed to load CA certificates"):
        client(ca_file="/nonexistent/nope")


def test_prepare_and_ctx():
    seen = []
    tls = TLS(prepare=seen.append)
    assert seen == [tls] and isinstance(tls.ctx, SSL.Context)


def test_tls_ctx_from_caches_by_content():
    opts = {"verify": 1, "verify_peername": "https", "ca_file": C.ca_file, "alpn": ["h2"]}
    one = tls_ctx_from(opts)
    assert tls_ctx_from(dict(opts)) is one
    assert tls_ctx_from({**opts, "cache": 1}) is one
    assert tls_ctx_from({**opts, "alpn": ["h3"]}) is not one
    assert tls_ctx_from(one) is one
    assert tls_ctx_from(None) is tls_ctx_from() is aetls.default_ctx()
    assert tls_ctx_from({}) is tls_ctx_from({"cache": 1}) is not tls_ctx_from(None)
    assert not tls_ctx_from({}).verify          # an explicit dict keeps Perl's defaults
    with pytest.raises(TypeError):
        tls_ctx_from("connect")
    with pytest.raises(TypeError):
        tls_ctx_from({"no_such_option": 1})


def test_error_messages_for_garbage_and_eof():
    conn = server().new_connection("accept")
    conn.bio_write(b"GET / HTTP/1.0\r\n\r\n")
    with pytest.raises(SSL.Error) as info:
        conn.do_handshake()
    assert error_message(info.value, conn) in ("error:0A00009C:SSL routines::http request",
                                               "error:0A00010B:SSL routines::wrong version number")
    assert error_message(SSL.SysCallError(-1, "Unexpected EOF")) == "unexpected EOF"
    assert error_message(SSL.SysCallError(104, "ECONNRESET")) == "Connection reset by peer"
    assert error_message(SSL.ZeroReturnError()) == "TLS connection closed by peer"
    assert error_message(SSL.Error([])) == "TLS protocol error"
    assert error_message(conn) == "TLS error"      # no verification failure recorded


def test_openssl_error_texts_as_perl_prints_them(monkeypatch):
    """The text of OpenSSL's ERR_error_string with the packed code, as Net::SSLeay
    gives it to AnyEvent::Handle; "function: reason" when OpenSSL names a function
    (1.x, which Perl's Handle shortens to that); the bare reason when the code cannot
    be found; a connection's message is the first error of the queue, as Perl's
    ERR_get_error, a setup error every one."""
    queue = [("SSL routines", "", "wrong version number"),
             ("SSL routines", "", "record layer failure")]
    conn = server().new_connection("accept")
    assert error_message(SSL.Error(queue), conn) == \
        "error:0A00010B:SSL routines::wrong version number"
    assert error_message(SSL.Error(queue)) == ("error:0A00010B:SSL routines::wrong version "
                                               "number; error:0A000139:SSL routines::record "
                                               "layer failure")
    assert error_message(SSL.Error([("SSL routines", "ssl3_get_record", "wrong version number")]),
                         conn) == "ssl3_get_record: wrong version number"
    assert error_message(SSL.Error([("PEM routines", "", "no start line")])) == \
        "error:0480006C:PEM routines::no start line"
    monkeypatch.setattr(aetls, "_codes", {"SSL routines": {}})
    assert error_message(SSL.Error(queue), conn) == "wrong version number"


def test_verify_result_for_foreign_connection():
    ctx = SSL.Context(SSL.TLS_METHOD)
    foreign = SSL.Connection(ctx, None)
    foreign.set_connect_state()
    assert Pair(None, server(cert_file=C.expired_pem), c=foreign).run().ok
    assert client().verify_result(foreign, "localhost") == \
        "certificate verify failed: certificate has expired"


# -- peer names: against Perl's AnyEvent::TLS::verify_hostname -----------------------------

NAMES = ["localhost", "127.0.0.1", "::1", "foo.wild.test", "a.b.wild.test", "wild.test",
         "cn.test", "x.cnwild.test", "cnwild.test", "www1.part.test", "www.part.test",
         "wwwx.y.part.test", "cn.part.test", "other.test"]
SCHEMES = ["http", "ldap", "smtp", "imap", "nntp", "ftp", (0, 0, 0), (2, 2, 2), (1, 1, 1),
           (0, 2, 2), (2, 0, 1)]
PEMS = ["server_pem", "wildcard_pem", "cn_only_pem", "partial_wild_pem"]

PERL_HOSTNAME = r'''
use AnyEvent::TLS; use Net::SSLeay;
while (<STDIN>) {
   chomp; my ($file, $name, @scheme) = split / /;
   my $bio = Net::SSLeay::BIO_new_file ($file, "r");
   my $x509 = Net::SSLeay::PEM_read_bio_X509 ($bio);
   Net::SSLeay::BIO_free ($bio);
   print AnyEvent::TLS::verify_hostname ($name, $x509, @scheme > 1 ? [@scheme] : $scheme[0]) ? 1 : 0;
}
'''


def test_verify_hostname_matches_perl():
    require_tool("perl")
    cases = [(getattr(C, pem), name, scheme) for pem in PEMS for name in NAMES for scheme in SCHEMES]
    lines = "".join(f"{f} {n} {' '.join(map(str, s)) if isinstance(s, tuple) else s}\n"
                    for f, n, s in cases)
    perl = subprocess.run(["perl", "-e", PERL_HOSTNAME], input=lines, capture_output=True,
                          text=True, timeout=20)
    assert perl.returncode == 0, perl.stderr
    ours = "".join(str(int(verify_hostname(n, x509.load_pem_x509_certificates(
        Path(f).read_bytes())[0], s))) for f, n, s in cases)
    assert ours == perl.stdout
    assert "1" in ours and "0" in ours


def test_dangerous_wildcards_never_match():
    assert not aetls.match_cn("*.org", "example.org", 1)
    assert not aetls.match_cn("*", "localhost", 2)
    assert not aetls.match_cn("*.test", "x.test", 2)
    assert aetls.match_cn("*.example.org", "www.example.org", 1)
    assert not aetls.match_cn("*.example.org", "a.www.example.org", 2)
    assert not aetls.match_cn("www*.example.org", "www1.example.org", 1)


def test_unknown_scheme_is_an_error():
    with pytest.raises(ValueError, match="unknown verify_peername scheme"):
        TLS(verify_peername="htps")
    with pytest.raises(ValueError, match="3 integers"):
        TLS(verify_peername=[1, 2])
    assert verify_hostname("anything", None, "none")


# -- interop with Python's ssl over a real socketpair --------------------------------------

def _drive(conn, sock, op):
    """Run ``op()`` on a memory-BIO Connection, moving bytes over a blocking socket."""
    while True:
        try:
            result = op()
        except SSL.WantReadError:
            result = None
        _flush(conn, sock)
        if result is not None:
            return result
        data = sock.recv(65536)
        if not data:
            raise EOFError
        conn.bio_write(data)


def _flush(conn, sock):
    while True:
        try:
            sock.sendall(conn.bio_read(65536))
        except SSL.WantReadError:
            return


def _python_peer(sock, ctx, server_side, result):
    try:
        with ctx.wrap_socket(sock, server_side=server_side,
                             server_hostname=None if server_side else "localhost") as tls_sock:
            data = tls_sock.recv(1024)
            tls_sock.sendall(data.upper())
            result["version"] = tls_sock.version()
            result["peer"] = tls_sock.getpeercert()
    except Exception as exc:     # reported to the main thread
        result["error"] = exc


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
@pytest.mark.parametrize("ours", ["connect", "accept"])
def test_interop_with_python_ssl(ours, version):
    a, b = socket.socketpair()
    a.settimeout(10), b.settimeout(10)
    pyver = getattr(ssl.TLSVersion, version)
    if ours == "connect":
        tls = client(method=version, cert_file=C.client_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(C.server_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        tls = strict_server(method=version)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(C.client_pem)
    ctx.load_verify_locations(C.ca_file)
    ctx.minimum_version = ctx.maximum_version = pyver
    result = {}
    thread = threading.Thread(target=_python_peer, args=(b, ctx, ours == "connect", result))
    thread.start()
    try:
        conn = tls.new_connection(ours, "localhost")
        _drive(conn, a, lambda: conn.do_handshake() or True)
        assert tls.verify_result(conn) is None
        conn.send(b"interop")
        assert _drive(conn, a, lambda: conn.recv(1024)) == b"INTEROP"
    finally:
        a.close()
        thread.join(10)
    assert "error" not in result, result
    assert result["version"] == version.replace("_", ".")
    assert result["peer"]      # both sides presented verified certificates


def test_every_dh_name_perl_accepts_is_accepted_and_serves_dhe():
    """AnyEvent::TLS's DH names (read from Perl's module): each makes a context
    whose server completes a DHE handshake."""
    out = subprocess.run([require_tool("perl"), "-MAnyEvent::TLS", "-e",
                          'print join " ", sort keys %AnyEvent::TLS::DH_PARAMS'],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "ffdhe8192" in out and "schmorp4096" in out
    rsa = C.ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    pem = rsa.private_key_and_cert_chain_pem.bytes()
    dhe = "DHE-RSA-AES128-GCM-SHA256"
    for name in out:
        pair = Pair(client(method="TLSv1_2", cipher_list=dhe), TLS(cert=pem, dh=name)).run()
        assert pair.ok and pair.c.get_cipher_name() == dhe, name


def test_without_pyopenssls_private_binding_the_texts_fall_back(monkeypatch):
    """OpenSSL's string tables (the verification reasons, the error codes) are
    only reachable through pyOpenSSL's private binding; without it the messages
    keep the reason, without the code."""
    monkeypatch.setitem(sys.modules, "OpenSSL._util", None)     # import fails
    monkeypatch.setattr(aetls, "_codes", {})
    assert aetls._x509_error_string(10) == "X.509 verification error 10"
    conn = server().new_connection("accept")
    assert error_message(SSL.Error([("SSL routines", "", "wrong version number")]), conn) == \
        "wrong version number"
