"""``python -m anyevent --version``: the report for bug reports, and
:data:`anyevent.COMPILED`."""

import os
import subprocess
import sys

import anyevent
from anyevent import _core


def _run(*args, **env):
    return subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-m", "anyevent", *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))


def test_version_report_names_the_core_the_model_and_the_libraries():
    out = _run("--version", ANYEVENT_MODEL="asyncio", ANYEVENT_PURE_PYTHON="")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "anyevent %s" % anyevent.__version__
    built = all(_core._extension(name) for name in _core.CORE)
    assert lines[1].startswith("compiled core: yes" if built else "compiled core: no")
    assert lines[2] == "model: asyncio"
    for name in ("Python 3.", "pyOpenSSL ", "dnspython ", "cbor2 ", "OpenSSL "):
        assert name in lines[3]
    assert out.stderr == ""


def test_pure_python_is_reported_with_its_reason():
    out = _run("--version", ANYEVENT_PURE_PYTHON="1", ANYEVENT_MODEL="")
    assert "compiled core: no, the .py files run (ANYEVENT_PURE_PYTHON is set)" in out.stdout
    assert "model: anyevent" in out.stdout


def test_without_version_it_shows_the_usage():
    out = _run()
    assert out.returncode == 2 and "--version" in out.stdout


def test_compiled_says_which_core_this_process_runs():
    assert anyevent.COMPILED is _core.compiled()
    assert anyevent.COMPILED is (not os.environ.get("ANYEVENT_PURE_PYTHON")
                                 and all(_core._extension(n) for n in _core.CORE))
