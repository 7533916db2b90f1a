"""Certificates for the TLS tests, made once per test process.

``certs()`` returns a :class:`Certs` namespace of PEM files in a private
temporary directory (removed at exit).  Everything is signed with ECDSA keys
(fast to make) by ``trustme`` or, for the odd ones, by ``cryptography``:

==========================  ==============================================================
attribute                   file content
==========================  ==============================================================
``ca_file``                 the test CA certificate (trust anchor for every good cert)
``server_pem``              key + certificate in ONE file, for ``localhost``, ``127.0.0.1``
                            and ``::1``
``server_cert_file``        the same certificate alone
``server_key_file``         the same key alone
``server_key_encrypted``    the same key encrypted with ``PASSWORD``
``other_pem``               key + certificate for ``other.test`` (SNI tests)
``wildcard_pem``            key + certificate for ``*.wild.test`` with CN ``cn.test``
``expired_pem``             key + certificate for ``localhost`` that expired a day ago
``selfsigned_pem``          a self-signed leaf for ``localhost`` (no CA)
``wronghost_pem``           key + certificate for ``wrong.example`` only
``unknownca_pem``           key + certificate for ``localhost`` from another CA
``unknownca_file``          that other CA's certificate
``client_pem``              a client certificate (``client@example.test``) from the test CA
``client_unknownca_pem``    a client certificate from the other CA
``cn_only_pem``             CN ``*.cnwild.test``, no subjectAltName (peername schemes)
``partial_wild_pem``        subjectAltName ``www*.part.test``, CN ``cn.part.test``
==========================  ==============================================================

``Certs.ca_pem`` holds the CA certificate as bytes (for ``ca_cert=``).
"""

import atexit
import datetime
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PASSWORD = "s3cret pass"

_CACHE = {}


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: trustme.CA
    ca_pem: bytes
    ca_file: str
    server_pem: str
    server_cert_file: str
    server_key_file: str
    server_key_encrypted: str
    other_pem: str
    wildcard_pem: str
    expired_pem: str
    selfsigned_pem: str
    wronghost_pem: str
    unknownca_pem: str
    unknownca_file: str
    client_pem: str
    client_unknownca_pem: str
    cn_only_pem: str
    partial_wild_pem: str


def certs() -> Certs:
    """The process-wide set of test certificates (made on first call)."""
    if "certs" not in _CACHE:
        _CACHE["certs"] = _make()
    return _CACHE["certs"]


def _make() -> Certs:
    tmp = Path(tempfile.mkdtemp(prefix="aetls-"))
    atexit.register(shutil.rmtree, tmp, True)

    def write(name, data):
        path = tmp / name
        path.write_bytes(data)
        return str(path)

    def keycert(name, leaf):
        return write(name, leaf.private_key_and_cert_chain_pem.bytes())

    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = ca.issue_cert("localhost", not_before=now - datetime.timedelta(days=10),
                            not_after=now - datetime.timedelta(days=1))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(PASSWORD.encode()))
    return Certs(
        dir=tmp,
        ca=ca,
        ca_pem=ca.cert_pem.bytes(),
        ca_file=write("ca.pem", ca.cert_pem.bytes()),
        server_pem=keycert("server.pem", server),
        server_cert_file=write("server-cert.pem", server.cert_chain_pems[0].bytes()),
        server_key_file=write("server-key.pem", server.private_key_pem.bytes()),
        server_key_encrypted=write("server-key-enc.pem", encrypted),
        other_pem=keycert("other.pem", ca.issue_cert("other.test")),
        wildcard_pem=keycert("wild.pem", ca.issue_cert("*.wild.test", common_name="cn.test")),
        expired_pem=keycert("expired.pem", expired),
        selfsigned_pem=write("selfsigned.pem", _self_signed("localhost")),
        wronghost_pem=keycert("wronghost.pem", ca.issue_cert("wrong.example")),
        unknownca_pem=keycert("unknownca.pem", other_ca.issue_cert("localhost")),
        unknownca_file=write("other-ca.pem", other_ca.cert_pem.bytes()),
        client_pem=keycert("client.pem", ca.issue_cert("client@example.test")),
        client_unknownca_pem=keycert("client-other.pem", other_ca.issue_cert("client@example.test")),
        cn_only_pem=write("cn-only.pem", _issue(ca, "*.cnwild.test")),
        partial_wild_pem=write("partial.pem", _issue(ca, "cn.part.test", "www*.part.test")),
    )


def _issue(ca: trustme.CA, common_name: str, *dns_names: str) -> bytes:
    """Key + certificate PEM signed by ``ca`` with a chosen CN and DNS names (trustme
    always adds subjectAltNames; these tests need CN-only and partial wildcards)."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                       ca_cert.subject)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
    return _pem(key, builder.sign(ca_key, hashes.SHA256()))


def _builder(key, subject, issuer):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)))


def _pem(key, cert) -> bytes:
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _self_signed(host: str) -> bytes:
    """Key + certificate PEM of a self-signed, non-CA leaf for ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (_builder(key, name, name)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return _pem(key, cert)


#: OpenSSL's text (as Perl prints it) for a peer our verification refused
VERIFY_FAILED = "error:0A000086:SSL routines::certificate verify failed"


def verify_failed(reason: str) -> str:
    """The Handle's message when verification refused the peer for ``reason`` (the
    text ``TLS.verify_result`` gives): OpenSSL's text, then the reason."""
    rest = reason.removeprefix("certificate verify failed").removeprefix(": ")
    return f"{VERIFY_FAILED}: {rest}" if rest else VERIFY_FAILED
