"""The module layering: imports only go down.

Bottom to top: the choice between the compiled core and the ``.py`` files
(``_core``), the loop (log, reactor, util, io), the models that run it on
asyncio or uvloop (``impl``), addresses and names
(``_sockaddr``, ``dns``, ``_resolve``), the connector, the public socket
module (``tcp_connect``/``tcp_server``/``tcp_bind`` and the re-exported
address and resolver functions), the TLS context, the handle (its wire
formats, its stream core, its other read/write types, its face), the
facades (``anyevent.strict`` wraps the ``anyevent`` package's entries), and
the companion modules on top (``anyevent.http``, Perl's AnyEvent::HTTP;
``anyevent.redis``).
A module may import only modules listed before it, at module level or inside
a function, and so may the compiled core's Cython files (``.pyx``, ``.pxd``:
their ``cimport`` too).  The exceptions are listed in ``UPWARD`` with their
reason: four are Perl's own lazy loads, one the C twin of the poll reading
the loop's records.  IDN (``_idn``) sits at the bottom, beside nothing: the
resolvers and the HTTP client use it without loading ``anyevent.util``.
"""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

from anyevent import _core

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "anyevent"

LAYERS = [
    ("build", ["anyevent._core", "anyevent._speedups"]),
    ("idn", ["anyevent._idn"]),
    ("loop", ["anyevent.log", "anyevent.reactor", "anyevent.util", "anyevent.io"]),
    ("models", ["anyevent.impl", "anyevent.impl.asyncio", "anyevent.impl.uvloop"]),
    ("socket/dns", ["anyevent._sockaddr", "anyevent.dns", "anyevent._resolve"]),
    ("connector", ["anyevent.connector"]),
    ("socket", ["anyevent.socket"]),
    ("tls", ["anyevent.tls"]),
    # the handle package: the wire formats (no handle), the stream core, the
    # other built-in types (registering into the core), the package's face
    ("handle", ["anyevent.handle._wire", "anyevent.handle._stream", "anyevent.handle._types",
                "anyevent.handle"]),
    ("facades", ["anyevent", "anyevent.strict"]),
    ("companions", ["anyevent.http", "anyevent.redis", "anyevent.debug", "anyevent.__main__"]),
]
ORDER = [name for _, names in LAYERS for name in names]

UPWARD = {
    ("anyevent.reactor", "anyevent.impl.asyncio"):
        "AnyEvent::detect loads the chosen AnyEvent::Impl::* module",
    ("anyevent.util", "anyevent._resolve"):
        "AnyEvent::Util::inet_aton forwards to AnyEvent::Socket's, loaded on first call",
    ("anyevent", "anyevent.strict"):
        "AnyEvent loads AnyEvent::Strict when ANYEVENT_STRICT is set",
    ("anyevent", "anyevent.debug"):
        "AnyEvent loads AnyEvent::Debug to wrap watchers when ANYEVENT_DEBUG_WRAP is set",
    ("anyevent._speedups", "anyevent.reactor"):
        "the C twin of reactor._ready_recs reads reactor's _FdEntry records as C structs "
        "(a cimport); reactor loads _speedups once _FdEntry is defined",
}


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported(path):
    """Every anyevent module ``path`` imports, at any depth of its code."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            subs = {base + "." + alias.name for alias in node.names} & set(ORDER)
            found.update(subs or {base})  # "from . import x": the submodule x
    return {name for name in found if name.split(".")[0] == "anyevent"} - {this}


SOURCES = sorted(PACKAGE.rglob("*.py"))
#: the compiled core's Cython sources and declarations (their cimports bind
#: modules at C level, and load them when the extension is)
C_SOURCES = sorted(PACKAGE.rglob("*.pyx")) + sorted(PACKAGE.rglob("*.pxd"))
_C_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import\b|c?import\s+([\w.]+))", re.M)


def c_imported(path):
    """Every anyevent module the Cython file ``path`` imports or cimports."""
    names = {a or b for a, b in _C_IMPORT.findall(path.read_text())}
    return {name for name in names if name.split(".")[0] == "anyevent"} - {module_name(path)}


def test_every_module_has_a_layer():
    compiled_only = ["anyevent." + name for name in _core.COMPILED_ONLY]  # no .py
    assert sorted(module_name(p) for p in SOURCES) == sorted(set(ORDER) - set(compiled_only))


def _upward(this, names):
    return sorted(name for name in names
                  if ORDER.index(name) > ORDER.index(this) and (this, name) not in UPWARD)


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_only_go_down(path):
    this = module_name(path)
    assert _upward(this, imported(path)) == [], "%s imports higher layers" % this


@pytest.mark.parametrize("path", C_SOURCES, ids=lambda p: p.name)
def test_c_level_imports_only_go_down(path):
    this = module_name(path)
    assert _upward(this, c_imported(path)) == [], "%s cimports higher layers" % this


def test_every_allowed_upward_import_is_made():
    """No stale exception: each pair in UPWARD is an import the code makes."""
    made = {(module_name(p), name) for p in SOURCES for name in imported(p)}
    made |= {(module_name(p), name) for p in C_SOURCES for name in c_imported(p)}
    assert set(UPWARD) <= made, set(UPWARD) - made


def test_fresh_interpreter_loads_nothing_higher():
    """Import each module alone, bottom-up, in a new interpreter: only itself
    and lower modules get loaded (besides what ``import anyevent`` loads)."""
    script = """
import importlib, json, sys
import anyevent
base = {m for m in sys.modules if m.split(".")[0] == "anyevent"}
mod = importlib.import_module(sys.argv[1])
print(json.dumps(sorted({m for m in sys.modules if m.split(".")[0] == "anyevent"} - base)))
"""
    import json
    compiled_only = ["anyevent." + name for name in _core.COMPILED_ONLY]
    for name in ORDER:
        if name in compiled_only and name not in sys.modules:
            continue  # not built, or stepping aside (ANYEVENT_PURE_PYTHON)
        if name.count(".") > 1:
            # a submodule of a package (anyevent.handle._stream): Python imports the
            # package first, whose face loads all of it; its own imports are the
            # static tests' above
            continue
        out = subprocess.run([sys.executable, "-c", script, name], check=True,
                             capture_output=True, text=True).stdout
        higher = [m for m in json.loads(out) if m in ORDER and ORDER.index(m) > ORDER.index(name)]
        assert higher == [], "importing %s loads %s" % (name, higher)
