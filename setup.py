"""Build script for the optional compiled core.

The metadata lives in pyproject.toml.  This file only adds the compiled
core: ``anyevent/reactor.py`` and the modules of ``anyevent/handle/`` (the
poll -> dispatch -> read -> parse -> write path) compiled with Cython, unchanged,
into extension modules of the same names (the ``.pxd`` beside each gives its
hot classes C fields), and ``anyevent/_speedups.pyx``, a handle's socket calls
(without it the handle uses the socket's methods).  The pure-Python modules
stay the reference and the fallback: without Cython or a C compiler, or with ``ANYEVENT_PURE_PYTHON=1``
in the environment of the build, the package installs as pure Python.  At run
time ``ANYEVENT_PURE_PYTHON=1`` makes an installed compiled core step aside
(``anyevent/_core.py``).
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

#: ANYEVENT_BUILD_STRICT=1 (make sets it): a Cython warning is an error, and a
#: core that cannot be built fails the build instead of installing pure Python
STRICT = bool(os.environ.get("ANYEVENT_BUILD_STRICT"))

CORE = ["anyevent/reactor.py", "anyevent/handle/_stream.py", "anyevent/handle/_types.py",
        "anyevent/handle/_wire.py", "anyevent/_speedups.pyx"]


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when an extension cannot be built."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no headers: pure Python
            _skipped(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - as above, one module at a time
            _skipped(exc)


def _skipped(exc):
    if STRICT:
        raise SystemExit("anyevent: compiled core not built: %s" % exc)
    sys.stderr.write("anyevent: compiled core not built (%s); installing pure Python\n" % exc)


def _ext_modules():
    if os.environ.get("ANYEVENT_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _skipped("Cython is not installed")
        return []
    if STRICT:
        from Cython.Compiler import Options
        Options.warning_errors = True
    # annotation_typing off: the annotations are for type checkers, and the
    # compiled modules must accept exactly what the interpreted ones accept.
    return cythonize(CORE, quiet=True, compiler_directives={
        "language_level": 3, "annotation_typing": False, "embedsignature": True})


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
