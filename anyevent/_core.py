"""Which implementation of the core modules is imported: compiled or interpreted.

``setup.py`` compiles :mod:`anyevent.reactor` and the modules of the
:mod:`anyevent.handle` package with Cython when it can, into extension
modules beside the ``.py`` files, and
``_speedups`` (C twins of a few per-message functions, no ``.py``: the
interpreted core uses its own Python versions).  The ``.py`` files are the reference, and they are
imported instead, without ``_speedups``:

* when ``ANYEVENT_PURE_PYTHON`` is set (non-empty) in the environment;
* in a source tree (``setup.py`` next to the package) where a module's
  source (``.py``, the ``.pxd`` that types it, or ``.pyx``) is newer than its
  extension module: the edit wins over the stale build, with a
  :class:`RuntimeWarning` that says to rebuild (``make`` does).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings

#: The compiled modules, by their names under the package.
CORE = ("reactor", "handle._stream", "handle._types", "handle._wire")
#: Compiled modules with no ``.py``: the core does without them when interpreted.
COMPILED_ONLY = ("_speedups",)
_HERE = os.path.dirname(os.path.abspath(__file__))
_interpreted: frozenset[str] = frozenset()  # the core modules imported from their .py


def _path(name: str) -> str:
    """The path of module ``name`` (dotted under the package) without its suffix."""
    return os.path.join(_HERE, *name.split("."))


def _extension(name: str) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _path(name) + suffix
        if os.path.exists(path):
            return path
    return None


def _stale(name: str, extension: str) -> bool:
    if not os.path.exists(os.path.join(_HERE, os.pardir, "setup.py")):
        return False  # installed: the wheel's files belong together
    built = os.path.getmtime(extension)
    sources = [_path(name) + suffix for suffix in (".py", ".pxd", ".pyx")]
    return any(built < os.path.getmtime(path) for path in sources if os.path.exists(path))


class _Interpreted:
    """Meta path finder: load the named core modules from their ``.py`` files."""

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != __package__ or name not in self._names:
            return None
        if name in COMPILED_ONLY:
            raise ModuleNotFoundError("%s: the compiled core is not used" % fullname, name=fullname)
        return importlib.util.spec_from_file_location(fullname, _path(name) + ".py")


def install() -> None:
    """Choose the implementation before the core modules are first imported."""
    global _interpreted
    pure = bool(os.environ.get("ANYEVENT_PURE_PYTHON"))
    _interpreted = frozenset(name for name in CORE if _use_source(name, pure))
    if _interpreted:  # the compiled helpers go with the compiled modules
        _interpreted |= frozenset(COMPILED_ONLY)
    else:
        _interpreted = frozenset(name for name in COMPILED_ONLY if _use_source(name, pure))
    if _interpreted:
        sys.meta_path.insert(0, _Interpreted(_interpreted))


def _use_source(name: str, pure: bool) -> bool:
    extension = _extension(name)
    if extension is None:
        return False  # not compiled: the usual import finds the .py
    if pure:
        return True
    if _stale(name, extension):
        warnings.warn("anyevent: %s is older than its source; importing the .py files "
                      "(rebuild the compiled core: make, or pip install -e .)" % (
                          os.path.basename(extension)), RuntimeWarning, stacklevel=4)
        return True
    return False


def compiled() -> bool:
    """True when :mod:`anyevent.reactor` and the modules of :mod:`anyevent.handle`
    are the compiled ones, with ``_speedups``."""
    return all(_extension(name) is not None and name not in _interpreted
               for name in CORE + COMPILED_ONLY)
