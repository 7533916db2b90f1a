"""The compiled core (setup.py) and the pure-Python reference beside it."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from anyevent import _core

PACKAGE = pathlib.Path(_core.__file__).resolve().parent
# imports the package found on PYTHONPATH (an editable install's finder
# would otherwise point at the working tree whatever the path says)
PROBE = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
         "if '__editable__' not in getattr(f, '__module__', '')]; "
         "import anyevent, anyevent.handle._stream as h, anyevent.reactor as r; "
         "from anyevent import _core; print(_core.compiled(), h.__file__, r.__file__)")


def _probe(path, **env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         cwd=path, check=True, env=dict(os.environ, PYTHONPATH=str(path), **env))
    compiled, handle, reactor = out.stdout.split()
    return compiled == "True", handle, reactor, out.stderr


def _built():
    if not all(_core._extension(name) for name in _core.CORE):
        pytest.skip("the compiled core is not built here (make builds it; needs Cython and gcc)")


def test_pure_python_on_request():
    compiled, handle, reactor, _ = _probe(PACKAGE.parent, ANYEVENT_PURE_PYTHON="1")
    assert not compiled
    assert handle.endswith("_stream.py") and reactor.endswith("reactor.py")


def test_the_compiled_core_is_used_when_built():
    _built()
    compiled, handle, reactor, stderr = _probe(PACKAGE.parent, ANYEVENT_PURE_PYTHON="")
    assert compiled and not handle.endswith(".py") and not reactor.endswith(".py")
    assert "older than" not in stderr


def _source_tree(tmp_path):
    """A copy of the package as a freshly built source tree (setup.py beside it,
    every extension newer than its sources: an installed wheel's files carry
    the times they were unpacked at)."""
    shutil.copytree(PACKAGE, tmp_path / "anyevent", ignore=shutil.ignore_patterns("*.c"))
    (tmp_path / "setup.py").write_text("")
    built = time.time() + 5
    for extension in (tmp_path / "anyevent").rglob("*.so"):
        os.utime(extension, (built, built))


def test_an_edited_source_wins_over_a_stale_build(tmp_path):
    _built()
    _source_tree(tmp_path)
    source = tmp_path / "anyevent" / "handle" / "_stream.py"
    built = source.with_name(os.path.basename(_core._extension("handle._stream")))  # this Python's
    newer = os.path.getmtime(built) + 10
    os.utime(source, (newer, newer))
    compiled, handle, reactor, stderr = _probe(tmp_path, ANYEVENT_PURE_PYTHON="")
    assert not compiled and handle == str(source) and not reactor.endswith(".py")
    assert "_stream" in stderr and "older than its source" in stderr


def test_an_edited_declaration_file_makes_the_build_stale(tmp_path):
    _built()
    _source_tree(tmp_path)
    pxd = tmp_path / "anyevent" / "handle" / "_stream.pxd"
    built = pxd.with_name(os.path.basename(_core._extension("handle._stream")))
    newer = os.path.getmtime(built) + 10
    os.utime(pxd, (newer, newer))
    compiled, handle, reactor, stderr = _probe(tmp_path, ANYEVENT_PURE_PYTHON="")
    assert not compiled and handle.endswith("_stream.py") and "older than its source" in stderr
