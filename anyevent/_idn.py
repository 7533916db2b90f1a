"""IDN for AnyEvent::Util's idna part: punycode, nameprep, ToASCII and ToUnicode.

Its own module so that the name resolvers (``anyevent.dns``,
``anyevent._resolve``) and ``anyevent.http`` can use it without importing
``anyevent.util``, which loads ``anyevent._resolve`` for Perl's
``inet_aton``; :mod:`anyevent.util` re-exports every name here, which is
where Perl has them.  UTS #46 non-transitional mapping (``ß``, final ``ς``,
ZWJ and ZWNJ are kept, as IDNA 2008 does), then NFKC; the mapping table is
the ``idna`` package's (``idna.uts46_remap``) and the raw algorithm the
stdlib ``punycode`` codec.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import idna

__all__ = ["punycode_encode", "punycode_decode", "idn_nameprep", "idn_to_ascii",
           "idn_to_unicode"]


_PUNY_DIGITS = re.compile(r"[a-z0-9]*\Z")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_SIMPLE = re.compile(r"[^0-9a-z\-.]")
_ACE_LABEL = re.compile(r"(^|\.)(..)--([^.]*)")
_ACE_PREFIX_OK = re.compile(r"[a-z0-9]{2}\Z")


def punycode_encode(string: str) -> str:
    """Punycode-encode ``string`` (str) and return the ASCII str (RFC 3492,
    no ``xn--`` prefix): ``punycode_encode("öko") == "ko-eka"``.  An all-ASCII
    string comes back unchanged (no trailing ``-``), as in Perl.  Uses the
    stdlib ``punycode`` codec.  Port of ``AnyEvent::Util::punycode_encode``.
    """
    if string.isascii():
        return string
    return string.encode("punycode").decode("ascii")


def punycode_decode(string: str) -> str:
    """Decode the punycode ``string`` (str, no ``xn--`` prefix) and return the
    Unicode str: ``punycode_decode("ko-eka") == "öko"``.  Digits are
    lower-case only, as in Perl.  Raises :class:`ValueError`
    ("punycode_decode: malformed punycode") on malformed input.  Uses the
    stdlib ``punycode`` codec.  Port of ``AnyEvent::Util::punycode_decode``.
    """
    basic, _, digits = string.rpartition("-")
    if not basic.isascii() or not _PUNY_DIGITS.match(digits):
        raise ValueError("punycode_decode: malformed punycode")
    try:
        return string.encode("ascii").decode("punycode")
    except UnicodeError:
        raise ValueError("punycode_decode: malformed punycode") from None


@functools.lru_cache(maxsize=4096)
def _uts46_valid(ch: str) -> bool:
    """Whether the code point ``ch`` is UTS #46 valid (or a deviation, kept by
    non-transitional processing), with the STD3 ASCII rules."""
    try:
        return idna.uts46_remap(ch, std3_rules=True, transitional=False) == ch
    except idna.IDNAError:
        return False


@functools.lru_cache(maxsize=4096)
def _uts46_mappable(ch: str) -> bool:
    """Whether UTS #46 (STD3 rules) accepts the code point ``ch`` at all."""
    try:
        idna.uts46_remap(ch, std3_rules=True, transitional=False)
        return True
    except idna.IDNAError:
        return False


def _nameprep_label(idn: str, m: re.Match[str]) -> str:
    pfx, ace, pc = m.group(1), m.group(2), m.group(3)
    if ace == "xn":
        pc = punycode_decode(pc)
        if pc != unicodedata.normalize("NFC", pc):
            raise ValueError("%s: punycode label not in NFC detected during idn_nameprep" % idn)
        return pfx + pc
    if not _ACE_PREFIX_OK.match(ace):
        return "%s%s--%s" % (pfx, ace, pc)
    raise ValueError("%s: hyphens in 3rd/4th position of a label are not allowed" % idn)


def idn_nameprep(idn: str, display: bool = False) -> str:
    """Normalise the domain name ``idn`` (str) and return it (str) in
    Unicode form: ASCII lower-cased; if anything else is in it, the UTS #46
    mapping (non-transitional: ``ß``, ``ς``, ZWJ/ZWNJ are kept; ``。`` and
    the other full stops become ``.``) and NFKC; ``xn--`` labels decoded
    (and required to be NFC).  Raises :class:`ValueError` for disallowed
    code points, malformed punycode, ``--`` in positions 3-4 of a non-``xn``
    label, or a label starting or ending with ``-`` next to a dot.

    As in Perl, no CONTEXTJ, bidi or leading-combining-mark checks are made.
    ``display`` is accepted for Perl's signature; deviations are kept either
    way.  Port of ``AnyEvent::Util::idn_nameprep``.
    """
    s = idn.translate(_ASCII_UPPER)
    if _NOT_SIMPLE.search(s):
        try:
            s = idna.uts46_remap(s, std3_rules=True, transitional=False)
        except idna.IDNAError:
            bad = next((ch for ch in s if not _uts46_mappable(ch)), "?")
            raise ValueError("%s: disallowed characters (U+%04X) during idn_nameprep"
                             % (idn, ord(bad))) from None
        s = unicodedata.normalize("NFKC", s)
    s = _ACE_LABEL.sub(lambda m: _nameprep_label(idn, m), s)
    if ".-" in s or "-." in s:
        raise ValueError("%s: invalid hyphens detected during idn_nameprep" % idn)
    if _NOT_SIMPLE.search(s):
        for ch in s:
            if ch not in "0123456789abcdefghijklmnopqrstuvwxyz-." and not _uts46_valid(ch):
                raise ValueError("%s: disallowed characters (U+%04X) during idn_nameprep"
                                 % (idn, ord(ch)))
    return s


def idn_to_ascii(idn: str) -> str:
    """Convert the domain name ``idn`` (str, e.g. ``"日本語。ＪＰ"``) to its
    ASCII form (str, ``"xn--wgv71a119e.jp"``): :func:`idn_nameprep`, then
    ``xn--`` + punycode for every non-ASCII label.  Idempotent; an all-ASCII
    name is returned as is.  Never raises: a name that cannot be converted
    is returned unchanged.  Empty leading labels are dropped (``".öko"`` ->
    ``"xn--ko-eka"``), as in Perl.  Port of ``AnyEvent::Util::idn_to_ascii``.
    """
    if idn.isascii():
        return idn
    try:
        labels = idn_nameprep(idn).split(".")
    except ValueError:
        return idn
    out = []
    for label in labels:
        if not label.isascii():
            try:
                label = "xn--" + punycode_encode(label)
            except UnicodeError:
                pass
        out.append(label)
    while len(out) > 1 and not out[0]:
        out.pop(0)
    return ".".join(out)


def idn_to_unicode(idn: str) -> str:
    """Convert the domain name ``idn`` (str, e.g. ``"www.xn--l-0ga.de"``) to
    Unicode form (str, ``"www.öl.de"``): ``idn_nameprep(idn, True)``, or
    ``idn`` unchanged when that fails.  Never raises.  Port of
    ``AnyEvent::Util::idn_to_unicode``.
    """
    try:
        return idn_nameprep(idn, True)
    except ValueError:
        return idn
