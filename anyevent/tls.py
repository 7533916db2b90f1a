"""TLS contexts for :mod:`anyevent.handle`: a port of Perl's AnyEvent::TLS on pyOpenSSL.

A :class:`TLS` object is a reusable set of TLS settings (versions, certificates, trust,
peer verification) wrapping one ``OpenSSL.SSL.Context`` (``tls.ctx``).  Any number of
connections can be made from it.  Handles normally make it for you from their ``tls_ctx``
option (an object or a dict of the options below)::

    hdl = Handle(connect=("example.org", 443), tls="connect",
                 tls_ctx={"verify": 1, "verify_peername": "https"})

Which contexts verify the peer
------------------------------
A Handle **without** ``tls_ctx`` uses :func:`default_ctx`, and its **client**
connections (``tls="connect"``, ``starttls("connect")``) verify the server as
``TLS(verify=1, verify_peername="https")`` does: the chain against
``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH`` when set, else the system trust store
(OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` replace that), and the host name given to
``connect=`` (or ``peername=``).  An expired, self-signed or wrong-host certificate is a
fatal ``EPROTO`` error whose message is OpenSSL's, as Perl's, then why
(``"error:0A000086:SSL routines::certificate verify failed: certificate has expired"``,
``"...: hostname mismatch: certificate is for a.test, not b.test"``).  Server
connections from it (``tls="accept"``) keep Perl's defaults.  This is a deliberate
difference from Perl (see below)::

    hdl = Handle(connect=("example.org", 443), tls="connect")   # verified

An explicit context -- a ``TLS(...)`` object or a ``tls_ctx`` dict, even ``{}`` --
follows Perl, and Perl's defaults are NOT secure: ``verify`` is off, so any certificate
(expired, self-signed, for another host) is accepted and a man in the middle can read
everything.  ``verify_peername`` is unset, so even with ``verify=1`` a valid certificate
for *another* host is accepted.  (Clients also do not ask for session tickets, Perl's
``session_ticket`` default; that costs speed, not security.)  So ``tls_ctx={"verify":
0}`` restores Perl's unverified client, and a client with a context of its own (a
``ca_file``, a certificate) should say::

    TLS(verify=1, verify_peername="https", ca_file=...)
    tls_ctx={"verify": 1, "verify_peername": "https", "ca_file": ...}   # the same

which checks the chain against the system CAs (or ``ca_file``/``ca_path``/``ca_cert``,
or the ``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH`` environment variables) and the host name.

Interface used by the Handle
----------------------------
``tls.new_connection(mode, peername=None, ref=None) -> OpenSSL.SSL.Connection``
    a memory-BIO connection (``Connection(ctx, None)``) in connect or accept state.
    The Handle feeds ciphertext with ``bio_write``, collects it with ``bio_read`` and
    moves plaintext with ``send``/``recv``.
``tls.verify_result(conn, peername=None) -> None | str``
    after the handshake: ``None`` when the peer is acceptable, else why not.
``error_message(exc_or_conn, conn=None) -> str``
    the message for a failed TLS operation, OpenSSL's text as Perl gives it
    (``"error:0A00010B:SSL routines::wrong version number"``); pass the connection too
    so that a verification failure also says *why* (``"...::certificate verify failed:
    certificate has expired"``, ``"...: hostname mismatch: ..."``).
``tls_ctx_from(value) -> TLS``
    the Handle's ``tls_ctx`` option: a :class:`TLS`, a dict of options (one object per
    distinct dict content, cached) or ``None`` (:func:`default_ctx`, shared).

Differences from Perl
---------------------
* **Deliberate: the default context verifies servers.**  Perl's ``TLS_CTX`` (a Handle
  without ``tls_ctx``) accepts any server certificate; here client connections made
  from it check the chain against the system trust store (or ``ANYEVENT_CA_FILE``/
  ``ANYEVENT_CA_PATH``) and the host name given to ``connect=``/``peername=`` under
  ``verify_peername="https"`` rules, as asyncio (``ssl=True``), Twisted
  (``optionsForClientTLS``) and Python's ``ssl.create_default_context()`` do.  A failure
  is a fatal ``EPROTO`` with the reason in the message.  A client handle made from a
  bare ``fh`` needs ``peername=`` (else: ``"hostname mismatch: no peername ..."``).
  Any explicit context (``TLS(...)``, a ``tls_ctx`` dict, ``{"verify": 0}``) keeps
  Perl's behaviour, as do server connections and a ``tls=Connection`` of the user's.
* ``sslv2=1`` and ``sslv3=1`` are accepted and ignored, as in Perl with a current
  OpenSSL: OpenSSL >= 1.1 has no SSLv2 (``OP_NO_SSLv2`` is 0) and is built without
  SSLv3, so Perl's context is the default one and still negotiates TLS 1.2/1.3.
  (AnyEvent::HTTP's default ``tls_ctx`` is ``{cache => 1, sslv2 => 1}``.)  The port
  says so in one ``DEBUG`` line on the ``anyevent.tls`` logger; Perl is silent.
  ``method="SSLv2"``/``"SSLv3"`` raise ``ValueError`` (Perl 7.17 dies too: Net::SSLeay
  no longer has those methods).  ``method="TLSv1_3"`` and ``tlsv1_3`` are added.
  TLS 1.0/1.1 are also refused by OpenSSL's default security level unless
  ``cipher_list`` lowers it (``"DEFAULT:@SECLEVEL=0"``).
* Perl's ``debug`` (a no-op in 7.17) and ``cache`` (a key of the Handle's ``tls_ctx``)
  are also accepted and ignored with a debug line.  Any other unknown option raises
  ``TypeError``, where Perl ignores every unknown key silently.
* Unknown ``verify_peername`` scheme names are an error (Perl silently accepts any peer).
* With ``verify_peername`` set, a client connection without a peername fails verification
  (Perl skips the check).  Server connections without a peername skip it, as in Perl.
* ``verify_cb`` gets the X.509 error number where Perl passes the X509_STORE_CTX, and
  certificates are ``cryptography.x509.Certificate`` objects.
* Wildcards never match across a public-suffix-like boundary: ``*.org`` or ``*`` match
  only literally (Perl documents this but does not enforce it).
* The DH names are Perl's: the RFC 7919 groups ``ffdhe2048`` to ``ffdhe8192`` are built
  in, and Perl's other names (``schmorp1024`` ... ``schmorp8192``, ``skip512`` ...
  ``skip4096``) stand for the RFC 7919 group of at least their size (those primes are
  not copied; below 2048 bits they are too weak to offer).
* Beyond Perl: ``sni`` (server-side certificate selection by name), ``alpn``,
  ``session_cache`` (client-side session resumption), ``tlsv1_3``.
"""

from __future__ import annotations

import atexit
import collections
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Optional, Sequence, Union, cast

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

#: A Perl-style switch: any true or false value (``1``/``0``, ``True``/``False``).
Flag = Union[bool, int, None]
#: PEM data given inline.
Pem = Union[str, bytes]
#: ``verify_peername``: a scheme name, ``(cn_wildcards, alt_wildcards, check_cn)``, or
#: ``callback(tls, peername, cert) -> bool``.
PeernameScheme = Union[str, Sequence[int], Callable[["TLS", str, x509.Certificate], object]]
#: ``verify_cb(tls, ref, peername, depth, preverify_ok, errnum, cert) -> bool``.
VerifyCb = Callable[["TLS", Any, Optional[str], int, bool, int, x509.Certificate], object]

# OpenSSL's SSL_MODE_ENABLE_PARTIAL_WRITE (pyOpenSSL sets it on every new
# context and exports no name for it)
_MODE_ENABLE_PARTIAL_WRITE = 0x1

__all__ = ["TLS", "tls_ctx_from", "default_ctx", "error_message", "verify_hostname",
           "match_cn", "certname", "CN_SCHEME", "DH_PARAMS"]

#: RFC 7919 finite-field DH groups (PKCS#3 DER, base64), as written by
#: ``openssl genpkey -genparam -algorithm DH -pkeyopt group:NAME | openssl dhparam``.
DH_PARAMS = {
    "ffdhe2048": (
        "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75"
        "fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fi"
        "pona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W"
        "7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8"
        "vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEoXJf//////////wIBAg=="
    ),
    "ffdhe3072": (
        "MIIBiAKCAYEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75"
        "fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fi"
        "pona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W"
        "7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8"
        "vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0m"
        "kff37lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8Ui"
        "NjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZsYuN///////////AgEC"
    ),
    "ffdhe4096": (
        "MIICCAKCAgEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75"
        "fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fi"
        "pona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W"
        "7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8"
        "vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0m"
        "kff37lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8Ui"
        "NjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWI"
        "V7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qxiu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0A"
        "OAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC4caKAH5eZV9q"
        "//////////8CAQI="
    ),
    "ffdhe6144": (
        "MIIDCAKCAwEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75"
        "fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fi"
        "pona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W"
        "7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8"
        "vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0m"
        "kff37lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8Ui"
        "NjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWI"
        "V7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qxiu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0A"
        "OAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC4caKAH5eDdkC"
        "C/1ktkUDbHpOZ30sOFMqOiO6RELK9T6mO7RUMpt2JMiRe91kscD9TLOOjDNMcBw6za0GV/zP7HGb"
        "H1w+TkYEHziBR/tM/bR3pSRx96mpaRC4VTIu22NA2KAO8JI1BRHjCr7B//njom5/sp+MGDAjw1h+"
        "ONoAd9m0dj5OS5Syu8GUxmUed8r5ku6qwCMqKBv2s6c5wSJhFoIK6NtYR6Z8vvnJCRtGLVOM1ysD"
        "dGrnf15iKSwxFWKoRlBdyC24VDOK5J9SNclbkReMzy3Vys70A+ydGBDGJysEWztx+dxrgNY/3UqO"
        "mtseaWKmlSbUMWHBpB1XDXk42tSkDjKc0OQOZf//////////AgEC"
    ),
    "ffdhe8192": (
        "MIIECAKCBAEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz+8yTnc4kmz75"
        "fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a87VXE15/V8k1mE8McODmi3fi"
        "pona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W"
        "7edjcrsZCwenyO4KbXCeAvzhzffi7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8"
        "vC7CIAXFjvGDfRaDssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0m"
        "kff37lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32nuhtK8Ui"
        "NjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e8W5vUsMWTfT7eTDp5OWI"
        "V7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qxiu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0A"
        "OAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0KzAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC4caKAH5eDdkC"
        "C/1ktkUDbHpOZ30sOFMqOiO6RELK9T6mO7RUMpt2JMiRe91kscD9TLOOjDNMcBw6za0GV/zP7HGb"
        "H1w+TkYEHziBR/tM/bR3pSRx96mpaRC4VTIu22NA2KAO8JI1BRHjCr7B//njom5/sp+MGDAjw1h+"
        "ONoAd9m0dj5OS5Syu8GUxmUed8r5ku6qwCMqKBv2s6c5wSJhFoIK6NtYR6Z8vvnJCRtGLVOM1ysD"
        "dGrnf15iKSwxFWKoRlBdyC24VDOK5J9SNclbkReMzy3Vys70A+ydGBDGJysEWztx+dxrgNY/3UqO"
        "mtseaWKmlSbUMWHBpB1XDXk42tSkDjKcz/RqqjatAEz2AMg4HkJaMdlRrmT9sj/OyVCdQ2h/62nt"
        "0cxeC4zDvfZLEO+GtjFCo6uIKVVbL3R8kyZlyywPHMAb1wIpOIg50q8F5FRQSseLdYKCKEbAujXD"
        "X1xZFgzARv2CUVQfxoychrAiu3CZh2pGDnRRqKkxCXA/7hwhfmw4JuUsUappHg5CPPyZ6eMWUMEh"
        "e2JIFs2tmpX51bgBlIjZwKCh/jB1pXfiMYP4HUo/L6RXHvyM4LqKT+i2hV3+crCmbt7S+6v75Yow"
        "+vq+HF1xqH4vdB74wf6G/qa7/eUwZ38Nl9EdSfeoRD0IIuUGqfRhTgEeKpSDj/iM1oyLt8XGQkz/"
        "/////////wIBAg=="
    ),
}

#: AnyEvent::TLS's other DH names (its own ``schmorpNNNN`` sets and the
#: SKIP ones) are not copied: each stands for the RFC 7919 group of at
#: least its size (512 to 1539 bits are too weak to offer today, and
#: OpenSSL 3 refuses them anyway).
_DH_ALIASES = {"schmorp1024": "ffdhe2048", "schmorp1539": "ffdhe2048",
               "schmorp2048": "ffdhe2048", "schmorp4096": "ffdhe4096",
               "schmorp8192": "ffdhe8192", "skip512": "ffdhe2048", "skip1024": "ffdhe2048",
               "skip2048": "ffdhe2048", "skip4096": "ffdhe4096"}

#: verify_peername schemes, as in Perl: (cn_wildcards, alt_wildcards, check_cn).
#: ``*_wildcards``: 0 none, 1 only a whole leftmost label (``*.example.org``), 2 anywhere in the
#: leftmost label (``www*.example.org``).  check_cn: 0 never, 1 only when the certificate
#: has no DNS subjectAltName, 2 always.  A string value is an alias.
CN_SCHEME: dict[str, Union[str, tuple[int, int, int]]] = {
    "rfc4513": (0, 1, 2),
    "rfc2818": (0, 2, 1),
    "rfc3207": (0, 0, 2),
    "ldap": "rfc4513", "ldaps": "ldap",
    "http": "rfc2818", "https": "http",
    "smtp": "rfc3207", "smtps": "smtp",
    "xmpp": "rfc3920", "rfc3920": "http",
    "pop3": "rfc2595", "pop3s": "pop3",
    "imap": "rfc2595", "imaps": "imap",
    "acap": "rfc2595", "rfc2595": "ldap",
    "nntp": "rfc4642", "nntps": "nntp", "rfc4642": "ldap",
    "ftp": "rfc4217", "ftps": "ftp", "rfc4217": "http",
}

_VERSIONS = (("tlsv1", SSL.TLS1_VERSION), ("tlsv1_1", SSL.TLS1_1_VERSION),
             ("tlsv1_2", SSL.TLS1_2_VERSION), ("tlsv1_3", SSL.TLS1_3_VERSION))
_METHODS = {"any": None, "sslv23": None, **dict(_VERSIONS)}
_BROKEN = ("sslv2", "sslv3")
_MODES = ("connect", "accept")

# Options Perl's AnyEvent::TLS 7.17 accepts that do nothing with a current OpenSSL (or
# nothing in AnyEvent::TLS itself): name -> why, for the debug line logged when one is
# given a true value.
_IGNORED = {
    "sslv2": "OpenSSL no longer implements SSLv2",
    "sslv3": "OpenSSL no longer implements SSLv3",
    "debug": "it does nothing in Perl's AnyEvent::TLS 7.17 either",
    "cache": "it is a key of a Handle's tls_ctx (contexts made from a dict are always cached)",
}

_log = logging.getLogger("anyevent.tls")

# Per-connection records of connections made by TLS.new_connection (weak keys: a record
# lives exactly as long as its Connection).
_STATE: weakref.WeakKeyDictionary[SSL.Connection, _ConnState] = weakref.WeakKeyDictionary()


class _ConnState:
    """What verification needs to know about one connection."""

    __slots__ = ("mode", "peername", "ref", "failure", "checked")

    def __init__(self, mode: str | None, peername: str | None, ref: object) -> None:
        self.mode = mode
        self.peername = peername
        self.ref = _weak(ref)
        self.failure: str | None = None  # first reason the verify callback rejected the peer
        self.checked = False     # the peer certificate (depth 0) was accepted


def _weak(obj: object) -> Callable[[], Any]:
    """A callable returning ``obj`` (weakly held when possible, like Perl's weaken)."""
    if obj is None:
        return lambda: None
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


class TLS:
    """A TLS context (Perl: ``AnyEvent::TLS->new``); all arguments are keywords.

    Protocol versions
        ``method``: ``"any"`` (default) or ``"TLSv1"``, ``"TLSv1_1"``, ``"TLSv1_2"``,
        ``"TLSv1_3"`` (case-insensitive) for exactly that version.  ``tlsv1``, ``tlsv1_1``,
        ``tlsv1_2``, ``tlsv1_3``: pass a false value to disable a version.  The result
        becomes OpenSSL's minimum/maximum version, so the enabled versions must be
        contiguous.  ``method="SSLv2"/"SSLv3"`` raises ``ValueError`` (broken protocols,
        not in OpenSSL; Perl dies too).

    Accepted and ignored, as Perl does with a current OpenSSL
        ``sslv2``, ``sslv3``: OpenSSL no longer implements SSLv2 or SSLv3, so enabling
        them changes nothing: the context still negotiates TLS 1.2/1.3 (and
        ``tlsv1_2`` etc. still apply).  ``debug``: a no-op in Perl's AnyEvent::TLS too.
        ``cache``: a key of the Handle's ``tls_ctx`` dict (see :func:`tls_ctx_from`),
        meaningless for ``TLS()`` itself.  A true value of any of these is reported by one
        ``DEBUG`` line on the ``anyevent.tls`` logger (visible with
        ``ANYEVENT_VERBOSE=8`` or a lower threshold there).

    Peer verification
        All off unless ``verify`` is true, as in Perl; a Handle without
        ``tls_ctx`` uses :func:`default_ctx` instead, which verifies servers.
        ``verify``: check the peer certificate chain, validity dates and (with
        ``verify_peername``) its names.  Clients always require a certificate; servers
        request one and, with ``verify_require_client_cert``, reject clients without.
        ``verify_client_once``: servers skip re-verification on renegotiation.
        ``verify_peername``: a scheme name (``"http"``/``"https"``, ``"ldap"``,
        ``"smtp"``, ``"pop3"``/``"imap"``/``"acap"``, ``"nntp"``, ``"ftp"``, ``"xmpp"``,
        RFC names, ``"none"``; see :data:`CN_SCHEME`), a 3-sequence
        ``(cn_wildcards, alt_wildcards, check_cn)`` (the order Perl's code uses; its
        documentation swaps the first two), or ``callback(tls, peername, cert) -> bool``.
        ``verify_cb``: ``callback(tls, ref, peername, depth, preverify_ok, errnum, cert)
        -> bool`` called for every certificate in the chain (depth 0 is the peer) with the
        verdict so far; its return value is the new verdict.  ``ref`` is what the Handle
        passed to :meth:`new_connection` (the Handle itself), held weakly.
        ``ca_file`` (PEM file), ``ca_path`` (hashed directory), ``ca_cert`` (PEM string or
        bytes, may hold several certificates and CRLs): trust anchors.  Without any of
        them ``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH`` are used, else the system store.
        ``check_crl``: require and check CRLs (from ``ca_file``, ``ca_path`` or ``ca_cert``).

    Own certificate
        ``cert_file`` (path) or ``cert`` (PEM str/bytes): certificate followed by its chain;
        ``key_file`` or ``key``: the private key, defaulting to the certificate's PEM (one
        file may hold both).  ``cert_password``: the key's password (str/bytes) or
        ``callback(tls) -> str``.

    Key exchange and ciphers
        ``dh``: a named group (``"ffdhe2048"``, ``"ffdhe3072"`` (default), ``"ffdhe4096"``,
        ``"ffdhe6144"``, ``"ffdhe8192"``, or Perl's ``"schmorp..."``/``"skip..."`` names),
        a PEM string of DH parameters, or ``None`` for no DHE suites (``:!kDHE`` is
        appended to the cipher list); ``dh_file``: a PEM file
        instead.  ``dh_single_use`` (default true; always the case in OpenSSL >= 1.1).
        ``cipher_list``: an OpenSSL cipher string (TLS <= 1.2 suites).

    Sessions
        ``session_ticket``: RFC 5077 tickets; default off for clients, on for servers.
        ``session_cache``: client side: remember the last session per peername and resume
        it on the next connection; ``True`` (100 names) or a number of names.

    Extensions
        ``sni``: server side: a mapping of lower-case host name -> :class:`TLS` (or dict of
        options), or ``callback(tls, name) -> TLS | None``; the certificate and key of the
        chosen context answer the client (verification settings stay this context's).
        Clients always send their peername (unless it is an IP address).
        ``alpn``: protocols (str or bytes) in order of preference; a server picks its first
        one that the client offers.  Read the result with
        ``conn.get_alpn_proto_negotiated()``.
        ``prepare``: ``callback(tls)`` called last, to fine-tune ``tls.ctx``.

    Raises ``ValueError`` with the offending file or value for unusable settings, and
    ``TypeError`` for unknown options.
    """

    ctx: SSL.Context
    verify: bool
    verify_require_client_cert: bool
    verify_peername: PeernameScheme | None
    verify_cb: VerifyCb | None
    session_ticket: Flag

    def __init__(self, *, method: str = "any", sslv2: Flag = None, sslv3: Flag = None,
                 tlsv1: Flag = None, tlsv1_1: Flag = None, tlsv1_2: Flag = None,
                 tlsv1_3: Flag = None, verify: Flag = False,
                 verify_require_client_cert: Flag = False,
                 verify_peername: PeernameScheme | None = None, verify_cb: VerifyCb | None = None,
                 verify_client_once: Flag = False, ca_file: str | None = None,
                 ca_path: str | None = None, ca_cert: Pem | None = None, check_crl: Flag = False,
                 key_file: str | None = None, key: Pem | None = None,
                 cert_file: str | None = None, cert: Pem | None = None,
                 cert_password: Pem | Callable[[TLS], Pem] | None = None,
                 dh_file: str | None = None, dh: str | None = "ffdhe3072",
                 dh_single_use: Flag = True, cipher_list: str | None = None,
                 session_ticket: Flag = None, session_cache: bool | int = False,
                 sni: (Mapping[str, TLS | Mapping[str, Any]] | Callable[[TLS, str], TLS | None]
                       | None) = None,
                 alpn: Iterable[str | bytes] | None = None,
                 prepare: Callable[[TLS], object] | None = None, debug: Flag = None,
                 cache: Flag = None) -> None:
        _log_ignored(sslv2=sslv2, sslv3=sslv3, debug=debug, cache=cache)
        self.ctx = ctx = SSL.Context(SSL.TLS_METHOD)
        # A handle's TLS writes go into a memory BIO, which never blocks: one
        # SSL_write then encrypts all it is given (records of up to 16 KiB)
        # instead of returning after each record, as in partial-write mode
        # (Perl's handle sets it; its write loop, like ours, takes whatever
        # each call wrote, so nothing observable changes -- fewer calls).
        ctx.clear_mode(_MODE_ENABLE_PARTIAL_WRITE)
        _set_versions(ctx, method, dict(tlsv1=tlsv1, tlsv1_1=tlsv1_1, tlsv1_2=tlsv1_2,
                                        tlsv1_3=tlsv1_3))
        if dh_single_use:
            ctx.set_options(SSL.OP_SINGLE_DH_USE)
        if dh_file is None and dh is None:      # Perl: dh => undef disables DHE
            cipher_list = (cipher_list or "DEFAULT") + ":!kDHE"
        else:
            _set_dh(ctx, dh_file, dh)
        if cipher_list is not None:
            _set_cipher_list(ctx, cipher_list)

        self._init_verify(verify, verify_require_client_cert, verify_peername, verify_cb,
                          verify_client_once, ca_file, ca_path, ca_cert, check_crl)
        _use_local_cert(ctx, cert_file, cert, key_file, key, _passphrase(self, cert_password))
        self._init_sessions(session_ticket, session_cache)
        self._init_extensions(sni, alpn)
        if prepare is not None:
            prepare(self)

    def _init_verify(self, verify: Flag, require_client_cert: Flag,
                     peername_scheme: PeernameScheme | None, verify_cb: VerifyCb | None,
                     client_once: Flag, ca_file: str | None, ca_path: str | None,
                     ca_cert: Pem | None, check_crl: Flag) -> None:
        self.verify = bool(verify)
        self.verify_require_client_cert = bool(require_client_cert)
        self.verify_peername = _check_scheme(peername_scheme)
        self.verify_cb = verify_cb
        if self.verify:
            self.ctx.set_verify(SSL.VERIFY_PEER
                                | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if require_client_cert else 0)
                                | (SSL.VERIFY_CLIENT_ONCE if client_once else 0),
                                self._verify_callback)
            _load_trust(self.ctx, ca_file, ca_path, ca_cert)
        if check_crl:
            store = cast(crypto.X509Store, self.ctx.get_cert_store())
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)

    def _init_sessions(self, session_ticket: Flag, session_cache: bool | int) -> None:
        # a per-object session id context: servers resume only their own sessions
        self.ctx.set_session_id(os.urandom(16))
        self.session_ticket = session_ticket
        self._options = {
            "connect": 0 if session_ticket else SSL.OP_NO_TICKET,
            "accept": SSL.OP_NO_TICKET if session_ticket is not None and not session_ticket else 0,
        }
        self._sessions: Any = None  # an OrderedDict peername -> SSL.Session when caching
        if session_cache:
            self._sessions = collections.OrderedDict()
            self._sessions_max = 100 if session_cache is True else int(session_cache)
            self.ctx.set_info_callback(self._info_callback)

    def _init_extensions(self, sni: Any, alpn: Iterable[str | bytes] | None) -> None:
        self._sni: Any = sni
        if sni is not None:
            self.ctx.set_tlsext_servername_callback(self._servername_callback)
        self._alpn = [_bytes(p) for p in alpn or ()]
        if self._alpn:
            self.ctx.set_alpn_protos(self._alpn)
            self.ctx.set_alpn_select_callback(self._alpn_select_callback)

    # -- the Handle's interface ------------------------------------------------------

    def new_connection(self, mode: str, peername: str | None = None,
                       ref: object = None) -> SSL.Connection:
        """A new ``OpenSSL.SSL.Connection`` on memory BIOs (Perl: ``_get_session``).

        ``mode``: ``"connect"`` (client) or ``"accept"`` (server), else ``ValueError``.
        ``peername``: the host name (str) the peer is expected to be: clients send it as
        SNI (unless it is an IP address), it keys the session cache and is what
        ``verify_peername`` checks.  ``ref``: any object, passed (weakly held) to
        ``verify_cb``; the Handle passes itself.
        The connection is in connect/accept state; the first ``do_handshake()``
        (or ``send``/``recv``) starts the handshake.  The session cached for ``peername``
        (``session_cache``) is offered for resumption.
        """
        if mode not in _MODES:
            raise ValueError(f"{mode!r}: unsupported TLS mode (must be either 'connect' or 'accept')")
        conn = SSL.Connection(self.ctx, None)
        _STATE[conn] = _ConnState(mode, peername, ref)
        if self._options[mode]:
            conn.set_options(self._options[mode])
        if mode == "accept":
            conn.set_accept_state()
            return conn
        server_name = _sni_name(peername)
        if server_name:
            conn.set_tlsext_host_name(server_name)
        session = self._sessions.get(peername) if self._sessions is not None else None
        if session is not None:
            conn.set_session(session)
        conn.set_connect_state()
        return conn

    def verify_result(self, conn: SSL.Connection, peername: str | None = None) -> str | None:
        """Why the peer of a handshaken ``conn`` is not acceptable, or ``None`` if it is.

        ``peername`` defaults to the one given to :meth:`new_connection`.  Always
        ``None`` when ``verify`` is off.  Connections made elsewhere (a Connection the
        user passed to the Handle) are checked here against this object's trust store and
        ``verify_peername``.  Messages: ``"certificate verify failed: <OpenSSL reason>"``,
        ``"hostname mismatch: ..."``, ``"no certificate from peer"``, or a
        ``verify_cb`` rejection.  Logged at DEBUG on ``anyevent.tls`` with the
        protocol and cipher.
        """
        problem = self._verify_problem(conn, peername)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("TLS handshake %s done: %s %s; %s", _who(conn, peername),
                       conn.get_protocol_version_name(), conn.get_cipher_name(),
                       "peer accepted" if problem is None else "peer rejected: " + problem)
        return problem

    def _verify_problem(self, conn: SSL.Connection, peername: str | None) -> str | None:
        if not self.verify:
            return None
        state = _STATE.get(conn)
        if state is not None:
            if state.failure is not None:
                return state.failure
            if state.checked and peername in (None, state.peername):
                return None
            peername = peername if peername is not None else state.peername
        mode = state.mode if state is not None else ("accept" if peername is None else "connect")
        cert = conn.get_peer_certificate()
        if cert is None:
            if mode == "connect" or self.verify_require_client_cert:
                return "no certificate from peer"
            return None
        if state is None:
            failure = self._chain_failure(cert, conn.get_peer_cert_chain() or [])
            if failure:
                return failure
        return self._peername_failure(mode, peername, cert.to_cryptography())

    # -- verification ---------------------------------------------------------------

    def _verify_callback(self, conn: SSL.Connection, cert: Any, errnum: int, depth: int,
                         ok: int) -> bool:
        """OpenSSL's per-certificate verify callback (Perl: ``AnyEvent::TLS::verify``)."""
        state = _STATE.get(conn) or _ConnState(None, None, None)
        reason = None if ok else _chain_reason(_x509_error_string(errnum), depth)
        if depth == 0 or self.verify_cb is not None:
            cert = cert.to_cryptography()
        if reason is None and depth == 0:
            reason = self._peername_failure(state.mode, state.peername, cert)
        ok = reason is None
        if self.verify_cb is not None:
            ok, why = _call_check(self.verify_cb, self, state.ref(), state.peername,
                                  depth, ok, errnum, cert)
            reason = None if ok else (reason or why or f"certificate rejected by verify_cb at depth {depth}")
        if not ok:
            state.failure = state.failure or reason
        elif depth == 0:
            state.checked = True
        return ok

    def _peername_failure(self, mode: str | None, peername: str | None,
                          cert: x509.Certificate) -> str | None:
        """Why ``cert`` does not belong to ``peername`` under ``verify_peername``, or None."""
        scheme = self.verify_peername
        if scheme is None or scheme == "none":
            return None
        if peername is None:
            if mode == "connect":
                return ("hostname mismatch: no peername to check the certificate against "
                        "(give the Handle connect= or peername=)")
            return None
        if callable(scheme):
            ok, why = _call_check(scheme, self, peername, cert)
            return None if ok else f"hostname mismatch: {why or 'rejected by verify_peername callback'}"
        if verify_hostname(peername, cert, scheme):
            return None
        dns_names, ip_names = _alt_names(cert)
        names = ", ".join(dns_names + ip_names) or _common_name(cert) or "no names"
        return f"hostname mismatch: certificate is for {names}, not {peername}"

    def _chain_failure(self, cert: crypto.X509, chain: Sequence[crypto.X509]) -> str | None:
        """Check a foreign connection's chain against our trust store; reason or None."""
        store_ctx = crypto.X509StoreContext(cast(crypto.X509Store, self.ctx.get_cert_store()),
                                            cert, chain[1:])
        try:
            store_ctx.verify_certificate()
        except crypto.X509StoreContextError as exc:
            return _chain_reason(str(exc), exc.errors[1] if len(exc.errors) > 1 else 0)
        return None

    # -- extensions -----------------------------------------------------------------

    def _info_callback(self, conn: SSL.Connection, where: int, ret: int) -> None:
        """Remember a client's session whenever the state machine completes: after the
        handshake and after each TLS 1.3 ticket."""
        if where & SSL.SSL_CB_CONNECT_EXIT and ret == 1:
            state = _STATE.get(conn)
            session = conn.get_session()
            if state is not None and state.peername is not None and session is not None:
                self._sessions[state.peername] = session
                self._sessions.move_to_end(state.peername)
                if len(self._sessions) > self._sessions_max:
                    self._sessions.popitem(last=False)

    def _servername_callback(self, conn: SSL.Connection) -> None:
        """Switch the connection to the context chosen for the client's SNI name."""
        name: Any = conn.get_servername()
        if not name:
            return
        name = name.decode("ascii", "replace").lower()
        chosen: Any = self._sni(self, name) if callable(self._sni) else self._sni.get(name)
        if chosen is not None:
            conn.set_context(tls_ctx_from(chosen).ctx)

    def _alpn_select_callback(self, conn: SSL.Connection, offered: list[bytes]) -> Any:
        """Pick our most preferred protocol among those the client offers."""
        for proto in self._alpn:
            if proto in offered:
                return proto
        return SSL.NO_OVERLAPPING_PROTOCOLS


# -- construction helpers ---------------------------------------------------------------

def _log_ignored(**options: object) -> None:
    """One debug line for each ignored option (see :data:`_IGNORED`) given a true value."""
    for name, value in options.items():
        if value:
            _log.debug("TLS option %s=%r ignored: %s", name, value, _IGNORED[name])


def _set_versions(ctx: SSL.Context, method: str, switches: dict[str, Flag]) -> None:
    """Map Perl's ``method`` and the TLS version switches onto min/max protocol versions."""
    name = (method or "any").lower()
    if name in _BROKEN:
        raise ValueError(f"method {method!r}: SSLv2 and SSLv3 are broken and not supported "
                         "by OpenSSL; use method='any' or a TLS version")
    if name not in _METHODS:
        raise ValueError(f"{method!r} is not a valid TLS method (must be one of "
                         f"{', '.join(sorted(_METHODS))})")
    only = _METHODS[name]
    off = {n for n, _ in _VERSIONS if switches[n] is not None and not switches[n]}
    if only is None and not off:
        return
    enabled = [i for i, (n, v) in enumerate(_VERSIONS) if n not in off and only in (None, v)]
    if not enabled:
        raise ValueError(f"method {method!r} with these switches leaves no TLS version enabled")
    if enabled != list(range(enabled[0], enabled[-1] + 1)):
        raise ValueError("the enabled TLS versions must be contiguous (OpenSSL supports "
                         "only a minimum and a maximum version)")
    ctx.set_min_proto_version(_VERSIONS[enabled[0]][1])
    ctx.set_max_proto_version(_VERSIONS[enabled[-1]][1])


def _set_cipher_list(ctx: SSL.Context, cipher_list: str) -> None:
    try:
        ctx.set_cipher_list(_bytes(cipher_list))
    except SSL.Error as exc:
        raise ValueError(f"{cipher_list!r} was not accepted as a valid cipher list: "
                         f"{error_message(exc)}") from None


_DH_FILES: dict[str | None, str] = {}  # None: the directory


def _set_dh(ctx: SSL.Context, dh_file: str | None, dh: Any) -> None:
    """Load DH parameters from ``dh_file``, a named group or a PEM string."""
    source = dh_file if dh_file is not None else f"dh {dh[:40]!r}"
    if dh_file is None:
        dh_file = _DH_FILES.get(dh) or _dh_to_file(dh)
    try:
        ctx.load_tmp_dh(dh_file)
    except SSL.Error as exc:
        raise ValueError(f"{source}: failed to load DH parameters: {error_message(exc)}") from None


def _dh_to_file(dh: str) -> str:
    """Write named or PEM DH parameters to a private temporary file (pyOpenSSL loads
    them only from files) and remember it for the life of the process."""
    if re.fullmatch(r"\w+", dh):
        name = _DH_ALIASES.get(dh, dh)
        if name not in DH_PARAMS:
            raise ValueError(f"{dh!r}: unknown DH parameters (built in: "
                             f"{', '.join([*DH_PARAMS, *_DH_ALIASES])})")
        body = "".join(DH_PARAMS[name])
        pem = "-----BEGIN DH PARAMETERS-----\n" + "\n".join(
            body[i:i + 64] for i in range(0, len(body), 64)) + "\n-----END DH PARAMETERS-----\n"
    else:
        pem = dh
    if not _DH_FILES:
        _DH_FILES[None] = tempfile.mkdtemp(prefix="anyevent-tls-")
        atexit.register(shutil.rmtree, _DH_FILES[None], True)
    path = os.path.join(_DH_FILES[None], f"dh{len(_DH_FILES)}.pem")
    with open(path, "w") as fh:
        fh.write(pem)
    _DH_FILES[dh] = path
    return path


def _check_scheme(scheme: PeernameScheme | None) -> PeernameScheme | None:
    """Validate ``verify_peername``: None, a callable, a known name or a 3-sequence."""
    if scheme is None or callable(scheme):
        return scheme
    if isinstance(scheme, str):
        scheme = scheme.lower()
        if scheme != "none":
            _scheme_tuple(scheme)
        return scheme
    scheme = tuple(int(x) for x in scheme)
    if len(scheme) != 3:
        raise ValueError("verify_peername as a sequence needs 3 integers: "
                         "(cn_wildcards, alt_wildcards, check_cn)")
    return scheme


def _scheme_tuple(scheme: str | Sequence[int]) -> Sequence[int]:
    while isinstance(scheme, str):
        if scheme not in CN_SCHEME:
            raise ValueError(f"{scheme!r}: unknown verify_peername scheme "
                             f"(known: none, {', '.join(sorted(CN_SCHEME))})")
        scheme = CN_SCHEME[scheme]
    return scheme


def _load_trust(ctx: SSL.Context, ca_file: str | None, ca_path: str | None,
                ca_cert: Pem | None) -> None:
    """Trust anchors as Perl chooses them: explicit ones, else the environment, else
    the system's default store."""
    if ca_file or ca_path or ca_cert:
        if ca_cert:
            _add_pem_to_store(cast(crypto.X509Store, ctx.get_cert_store()), _bytes(ca_cert))
        if ca_file or ca_path:
            _load_locations(ctx, ca_file or None, ca_path or None)
    elif os.environ.get("ANYEVENT_CA_FILE") or os.environ.get("ANYEVENT_CA_PATH"):
        _load_locations(ctx, os.environ.get("ANYEVENT_CA_FILE") or None,
                        os.environ.get("ANYEVENT_CA_PATH") or None)
    else:
        ctx.set_default_verify_paths()


def _load_locations(ctx: SSL.Context, ca_file: str | None, ca_path: str | None) -> None:
    try:
        ctx.load_verify_locations(ca_file, ca_path)
    except SSL.Error as exc:
        raise ValueError(f"{ca_file or ca_path}: failed to load CA certificates: "
                         f"{error_message(exc)}") from None


_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


def _add_pem_to_store(store: crypto.X509Store, pem: bytes) -> None:
    """Add every certificate and CRL of a PEM string to an X509Store."""
    try:
        certs = x509.load_pem_x509_certificates(pem) if b"CERTIFICATE-----" in pem else []
        crls = [x509.load_pem_x509_crl(m.group()) for m in _PEM_CRL.finditer(pem)]
    except ValueError as exc:
        raise ValueError(f"ca_cert: not usable PEM: {exc}") from None
    if not certs and not crls:
        raise ValueError("ca_cert: no PEM certificate found")
    for cert in certs:
        store.add_cert(crypto.X509.from_cryptography(cert))
    for crl in crls:
        store.add_crl(crl)


def _passphrase(tls: TLS, password: Pem | Callable[[TLS], Pem] | None) -> Callable[[int], bytes]:
    """A pyOpenSSL passphrase callback for ``cert_password`` (never a terminal prompt)."""
    def callback(_rwflag: int) -> bytes:
        value = password(tls) if callable(password) else password
        return _bytes(value) if value is not None else b""
    return callback


def _use_local_cert(ctx: SSL.Context, cert_file: str | None, cert: Pem | None,
                    key_file: str | None, key: Pem | None,
                    passphrase: Callable[[int], bytes]) -> None:
    """Load our certificate chain and private key (Perl: cert_file/cert, key_file/key)."""
    if cert_file is not None and cert is not None:
        raise ValueError("specifying both cert_file and cert is not allowed")
    if key_file is not None and key is not None:
        raise ValueError("specifying both key_file and key is not allowed")
    if cert_file is None and cert is None:
        if key_file is not None or key is not None:
            raise ValueError("a private key (key_file or key) needs a certificate (cert_file or cert)")
        return
    cert_name, cert_pem = _pem_source(cert_file, cert, "cert")
    key_name, key_pem = (_pem_source(key_file, key, "key")
                         if key_file is not None or key is not None else (cert_name, cert_pem))
    try:
        pkey = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem, passphrase)
    except crypto.Error as exc:
        raise ValueError(f"{key_name}: failed to load local private key (key_file or key): "
                         f"{_key_error(exc, key_pem)}") from None
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ValueError(f"{cert_name}: failed to use local certificate chain "
                         f"(cert_file or cert): {exc}") from None
    ctx.use_certificate(chain[0])
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(extra)
    try:
        ctx.use_privatekey(pkey.to_cryptography_key())  # type: ignore[arg-type]  # a private key
        ctx.check_privatekey()
    except SSL.Error:
        raise ValueError(f"{key_name}: private key does not match the certificate "
                         f"in {cert_name}") from None


def _pem_source(path: str | None, data: Pem | None, what: str) -> tuple[str, bytes]:
    """(name for messages, PEM bytes) from a file path or an in-memory string."""
    if path is None:
        return what, _bytes(data)
    try:
        with open(path, "rb") as fh:
            return path, fh.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read {what} file: {exc.strerror}") from None


def _key_error(exc: Exception, pem: bytes) -> str:
    text = error_message(exc)
    # an encrypted key read with a wrong password usually fails as "bad decrypt",
    # but now and then the padding passes and the ASN.1 decoding fails instead
    if "decrypt" in text or "bad password" in text or b"ENCRYPTED" in pem:
        return f"{text} (wrong or missing cert_password?)"
    return text


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _sni_name(peername: str | None) -> bytes | None:
    """The SNI host name (bytes) for ``peername``, or None for IP addresses and junk."""
    if not peername or _ip(peername) is not None:
        return None
    try:
        return peername.rstrip(".").encode("idna")
    except UnicodeError:
        return None


def _call_check(check: Callable[..., object], *args: Any) -> tuple[bool, str | None]:
    """Call a user verification callback: (verdict, reason if it raised)."""
    try:
        return bool(check(*args)), None
    except Exception as exc:     # a broken callback rejects, and says so
        return False, f"{getattr(check, '__name__', 'callback')} raised {exc!r}"


# -- public helpers (Perl: certname, match_cn, verify_hostname) -------------------------

def certname(cert: x509.Certificate | crypto.X509 | None) -> str | None:
    """A readable ``"issuer: subject"`` string for a certificate (cryptography or
    pyOpenSSL object), or None (Perl: ``AnyEvent::TLS::certname``)."""
    if cert is None:
        return None
    cert = _as_cryptography(cert)
    return f"{cert.issuer.rfc4514_string()}: {cert.subject.rfc4514_string()}"


def match_cn(name: str, peername: str, wildcards: int) -> bool:
    """Whether certificate name ``name`` matches ``peername`` (case-insensitive).

    ``wildcards``: 0 exact only; 1 ``*`` allowed as the whole leftmost label
    (``*.example.org``); 2 ``*`` allowed anywhere in the leftmost label
    (``www*.example.org``).  A wildcard matches one label or part of one, never a dot,
    and only if at least two labels follow it (``*.org`` is literal).
    """
    name = _strip_ctl(name).lower()
    peername = _strip_ctl(peername).lower()
    star = name.find("*")
    first_dot = name.find(".")
    if star >= 0 and wildcards and name.count(".") >= 2 and (first_dot < 0 or star < first_dot):
        prefix, suffix = name[:star], name[star + 1:]
        if (wildcards == 2 or (prefix == "" and suffix.startswith("."))) and "*" not in suffix:
            return (len(peername) >= len(prefix) + len(suffix)
                    and peername.startswith(prefix) and peername.endswith(suffix)
                    and "." not in peername[len(prefix):len(peername) - len(suffix)])
    return name == peername


def verify_hostname(peername: str, cert: x509.Certificate | crypto.X509,
                    scheme: str | Sequence[int]) -> bool:
    """Whether ``cert`` (cryptography or pyOpenSSL certificate) is valid for ``peername``
    (a host name or IP address string) under ``scheme`` (a :data:`CN_SCHEME` name or a
    ``(cn_wildcards, alt_wildcards, check_cn)`` sequence).  Perl: ``verify_hostname``.

    IP subjectAltNames match an IP ``peername``; DNS subjectAltNames are matched with
    ``alt_wildcards``; the subject's common name is checked with ``cn_wildcards`` when
    ``check_cn`` is 2, or 1 and there is no DNS subjectAltName.  ``"none"`` accepts all.
    """
    if scheme == "none":
        return True
    cn_wild, alt_wild, check_cn = _scheme_tuple(scheme)
    cert = _as_cryptography(cert)
    dns_names, ip_names = _alt_names(cert)
    ip = _ip(peername)
    if ip is not None and any(ipaddress.ip_address(a) == ip for a in ip_names):
        return True
    if any(match_cn(name, peername, alt_wild) for name in dns_names):
        return True
    if check_cn == 2 or (check_cn == 1 and not dns_names):
        common = _common_name(cert)
        return common is not None and match_cn(common, peername, cn_wild)
    return False


def _strip_ctl(text: str) -> str:
    return text.strip("".join(map(chr, range(32))))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _as_cryptography(cert: x509.Certificate | crypto.X509) -> x509.Certificate:
    return cert.to_cryptography() if isinstance(cert, crypto.X509) else cert


def _alt_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP address strings) of a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (san.get_values_for_type(x509.DNSName),
            [str(a) for a in san.get_values_for_type(x509.IPAddress)])


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _x509_error_string(errnum: int) -> str:
    """OpenSSL's text for an X.509 verification error number."""
    try:
        # private: pyOpenSSL has no public call for it (X509StoreContextError
        # carries the text of the error it raised, not of any number); without
        # it, the number is given (tests/test_tls_ctx.py covers that)
        from OpenSSL._util import ffi, lib
        text: str = ffi.string(lib.X509_verify_cert_error_string(errnum)).decode()
        return text
    except (ImportError, AttributeError):
        return f"X.509 verification error {errnum}"


def _chain_reason(text: str, depth: int) -> str:
    where = f" (in the chain at depth {depth})" if depth else ""
    return f"{_VERIFY_FAILED}: {text}{where}"


# -- errors ------------------------------------------------------------------------------

def error_message(exc_or_conn: BaseException | SSL.Connection | None,
                  conn: SSL.Connection | None = None) -> str:
    """A readable message for a TLS failure (Perl: ``_tls_error``'s message).

    ``exc_or_conn``: the ``OpenSSL.SSL.Error`` (or ``OpenSSL.crypto.Error``) raised by a
    TLS operation, or the ``Connection`` it was raised on; ``conn``: that connection when
    the first argument is the exception.  OpenSSL's errors read as Perl's do, code
    included: ``"error:0A00010B:SSL routines::wrong version number"``,
    ``"error:0A000418:SSL routines::tlsv1 alert unknown ca"`` (an alert from the peer).
    For a connection that is the first error of OpenSSL's queue, as Perl's
    ``ERR_get_error``; without one (loading a key, a certificate) every error of the
    queue, joined by ``"; "``.  When our verify callback rejected the peer on this
    connection, its reason follows OpenSSL's text: ``"error:0A000086:SSL
    routines::certificate verify failed: certificate has expired"``, ``"...: hostname
    mismatch: certificate is for a.test, not b.test"``.  A closed transport reads
    ``"unexpected EOF"``.
    """
    if isinstance(exc_or_conn, SSL.Connection):
        exc_or_conn, conn = None, exc_or_conn
    message = _error_text(exc_or_conn, conn)
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug("TLS %s failed: %s", _who(conn), message)
    return message


_VERIFY_FAILED = "certificate verify failed"


def _error_text(exc: BaseException | None, conn: SSL.Connection | None) -> str:
    state = _STATE.get(conn) if conn is not None else None
    failure = state.failure if state is not None else None
    text = _describe(exc, first_only=conn is not None) if exc is not None else None
    if failure is None:
        return text or "TLS error"
    if text is None:
        return failure
    # OpenSSL's "certificate verify failed", then why our verify callback said no
    return f"{text}: {failure.removeprefix(_VERIFY_FAILED + ': ')}"


def _who(conn: SSL.Connection | None, peername: str | None = None) -> str:
    """``"connect to example.org"`` / ``"accept"``: a connection, for log lines."""
    state = _STATE.get(conn) if conn is not None else None
    mode = state.mode if state is not None and state.mode else "connection"
    peername = peername if peername is not None else state.peername if state is not None else None
    return mode if peername is None else "%s to %s" % (mode, peername)


def _describe(exc: BaseException, first_only: bool) -> str:
    if isinstance(exc, SSL.ZeroReturnError):
        return "TLS connection closed by peer"
    if isinstance(exc, SSL.SysCallError):
        err = exc.args[0] if exc.args else -1
        return "unexpected EOF" if not isinstance(err, int) or err <= 0 else os.strerror(err)
    if exc.args and isinstance(exc.args[0], list):    # OpenSSL's error queue
        entries = exc.args[0][:1] if first_only else exc.args[0]
        return "; ".join(_openssl_text(entry) for entry in entries) or "TLS protocol error"
    return str(exc) or type(exc).__name__


def _openssl_text(entry: Any) -> str:
    """One entry of pyOpenSSL's error list, ``(library, function, reason)``, as Perl
    shows it: OpenSSL's ``ERR_error_string`` (``"error:0A00010B:SSL routines::wrong
    version number"``), which AnyEvent::Handle shortens to ``"function: reason"`` when
    OpenSSL names a function (1.x); the bare reason when the code cannot be found."""
    if not (isinstance(entry, tuple) and len(entry) == 3):
        return str(entry)
    library, function, reason = entry
    if function:
        return f"{function.lower()}: {reason}"
    code = _error_code(library, reason)
    return reason if code is None else f"error:{code:08X}:{library}::{reason}"


#: OpenSSL 3 error codes: library number << 23 | reason number (``ERR_PACK``)
_LIB_SHIFT, _LIB_MAX, _REASON_MAX = 23, 128, 4096
_codes: dict[str, dict[str, int]] = {}


def _error_code(library: str, reason: str) -> int | None:
    """The packed OpenSSL error code of a library's reason text, or None.

    pyOpenSSL hands out an error's texts but not its code, and no public API maps one
    to the other, so the codes come from OpenSSL's own string tables (through
    pyOpenSSL's private binding, as :func:`_x509_error_string`), read once per library."""
    table = _codes.get(library)
    if table is None:
        table = _reason_codes(library)
        if table:       # none yet: OpenSSL loads the SSL library's texts with a first context
            _codes[library] = table
    return table.get(reason)


def _reason_codes(library: str) -> dict[str, int]:
    try:
        # private: pyOpenSSL's SSL.Error carries the texts only, no code, and no
        # public call maps one to the other; without it, the bare reason is
        # given (tests/test_tls_ctx.py covers that)
        from OpenSSL._util import ffi, lib
        if lib.OpenSSL_version_num() < 0x30000000:
            return {}

        def text(code: int, lookup: Any) -> str | None:
            found = lookup(code)
            return None if found == ffi.NULL else ffi.string(found).decode()
        for number in range(1, _LIB_MAX):
            base = number << _LIB_SHIFT
            if text(base, lib.ERR_lib_error_string) == library:
                return {t: base | r for r in range(1, _REASON_MAX)
                        if (t := text(base | r, lib.ERR_reason_error_string)) is not None}
    except (ImportError, AttributeError):
        pass
    return {}


# -- contexts for the Handle --------------------------------------------------------------

_CACHE: dict[Any, TLS] = {}

# The environment variables that choose the default context's trust anchors: ours
# (``_load_trust``) and OpenSSL's (``set_default_verify_paths``).
_TRUST_ENV = ("ANYEVENT_CA_FILE", "ANYEVENT_CA_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR")


class _DefaultTLS(TLS):
    """The context of a Handle without ``tls_ctx`` (Perl's ``TLS_CTX``), which differs
    from Perl's: client connections are verified as with ``TLS(verify=1,
    verify_peername="https")`` (trust: ``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH``, else
    the system store, which OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` may replace);
    server connections come from a plain ``TLS()`` (``self.server``), Perl's defaults.
    ``self.ctx`` and the attributes are the client side's."""

    def __init__(self) -> None:
        super().__init__(verify=1, verify_peername="https")
        self.server = TLS()

    def new_connection(self, mode: str, peername: str | None = None,
                       ref: object = None) -> SSL.Connection:
        if mode == "accept":
            return self.server.new_connection(mode, peername, ref)
        return super().new_connection(mode, peername, ref)

    def verify_result(self, conn: SSL.Connection, peername: str | None = None) -> str | None:
        state = _STATE.get(conn)
        if state is None or state.mode != "connect" or conn.get_context() is not self.ctx:
            # a server connection, or a Connection the user made from a context of
            # their own (the Handle's tls=Connection): not ours to judge, as in Perl
            return None
        return super().verify_result(conn, peername)

    def __repr__(self) -> str:
        return "<anyevent.tls default context: clients verify the peer, servers as Perl>"


def default_ctx() -> TLS:
    """The shared context used when a Handle has no ``tls_ctx`` (Perl's ``TLS_CTX``).

    Unlike Perl's, its **client** connections verify the peer: the chain against
    ``ANYEVENT_CA_FILE``/``ANYEVENT_CA_PATH`` when set, else the system trust store
    (OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` replace that), and the host name the
    Handle was given (``connect=`` or ``peername=``) with ``verify_peername="https"``
    rules.  Its server (``"accept"``) connections keep Perl's defaults (no
    verification).  One object per value of those environment variables, made on
    first use.
    """
    key = ("default",) + tuple(os.environ.get(name) for name in _TRUST_ENV)
    tls = _CACHE.get(key)
    if tls is None:
        tls = _CACHE[key] = _DefaultTLS()
    return tls


#: What :func:`anyevent.handle.set_tls_ctx` put in place of :func:`default_ctx`.
_replacement: TLS | None = None


def _replace_default(value: TLS | Mapping[str, Any] | None) -> None:
    global _replacement
    _replacement = None if value is None else tls_ctx_from(value)


def tls_ctx_from(value: TLS | Mapping[str, Any] | None = None) -> TLS:
    """The :class:`TLS` object for a Handle's ``tls_ctx`` option.

    ``value``: a :class:`TLS` (returned as is); a mapping of :class:`TLS` options (one
    object per distinct content, cached for the life of the process; Perl's ``cache``
    key is accepted and ignored), which like ``TLS(...)`` keeps Perl's defaults (no
    verification unless ``verify`` is true); ``None``: the context set with
    :func:`anyevent.handle.set_tls_ctx` if any, else :func:`default_ctx`, whose
    client connections verify the peer.
    Raises ``TypeError`` for other values or unknown options, ``ValueError`` for
    unusable ones.
    """
    if isinstance(value, TLS):
        return value
    if value is None:
        return _replacement if _replacement is not None else default_ctx()
    if not isinstance(value, Mapping):
        raise TypeError(f"tls_ctx must be a TLS object or a dict of options, not {type(value).__name__}")
    options = {k: v for k, v in value.items() if k != "cache"}
    key = _freeze(options)
    tls = _CACHE.get(key)
    if tls is None:
        tls = _CACHE[key] = TLS(**options)
    return tls


def _freeze(value: Any) -> Any:
    """A hashable key for an options value (dicts and lists by content)."""
    if isinstance(value, Mapping):
        return ("dict",) + tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = tuple(_freeze(v) for v in value)
        return ("seq",) + (tuple(sorted(items, key=repr)) if isinstance(value, (set, frozenset)) else items)
    hash(value)
    return (type(value).__name__, value)
