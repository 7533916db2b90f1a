"""``python -m anyevent --version``: what this process would run on, for bug reports.

The twin of ``perl -MAnyEvent -e 'print AnyEvent::detect'``: the package's
version, whether the compiled core is in use (:data:`anyevent.COMPILED`) and
why not, the model :func:`anyevent.reactor.detect` chooses here (from
``ANYEVENT_MODEL``, else our own loop), and the versions of Python and of the
libraries the package runs on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata

import anyevent
from anyevent import _core
from anyevent.reactor import detect

#: the distributions whose versions a report shows (uvloop only when installed)
_LIBRARIES = ("pyOpenSSL", "cryptography", "dnspython", "cbor2", "idna", "uvloop")


def _core_line() -> str:
    if anyevent.COMPILED:
        return "compiled core: yes (%s)" % ", ".join(_core.CORE + _core.COMPILED_ONLY)
    if os.environ.get("ANYEVENT_PURE_PYTHON"):
        why = "ANYEVENT_PURE_PYTHON is set"
    elif not all(_core._extension(name) for name in _core.CORE):
        why = "not built"
    else:
        why = "the build is older than its sources"
    return "compiled core: no, the .py files run (%s)" % why


def _versions() -> str:
    found = ["Python %s (%s)" % (platform.python_version(), platform.python_implementation())]
    for name in _LIBRARIES:
        try:
            found.append("%s %s" % (name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    from OpenSSL import SSL
    found.append(SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode())
    return ", ".join(found)


def report() -> str:
    """The lines ``--version`` prints."""
    return "\n".join(["anyevent %s" % anyevent.__version__, _core_line(),
                      "model: %s" % detect(), _versions()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anyevent",
                                     description="What anyevent runs on here.")
    parser.add_argument("--version", action="store_true",
                        help="show the version, the compiled core, the model and the "
                             "libraries' versions")
    args = parser.parse_args(argv)
    if not args.version:
        parser.print_help()
        return 2
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
