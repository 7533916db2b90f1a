"""Lists the code keeps in step by hand, held to each other.

* The compiled core's ``.pxd`` files give some classes C fields; the ``.py``
  source names the same fields in ``__slots__``.  A field missing from one
  of them works interpreted and breaks compiled (or the reverse).
* ``setup.py``'s list of modules to compile and ``_core``'s of modules to import compiled.
* ``Handle``'s options: the names it accepts (``_OPTIONS``) and the
  ``HandleOptions`` TypedDict the type checkers see.
"""

import ast
import pathlib
import re

import pytest

from anyevent.handle import HandleOptions, _stream

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "anyevent"
PXDS = sorted(PACKAGE.rglob("*.pxd"))
_CDEF_CLASS = re.compile(r"^cdef class (\w+)\b.*?:\n((?:[ \t]+.*\n|\n)*)", re.M)
_FIELDS = re.compile(r"^\s+cdef (?:public |readonly )?\w+ ([\w ,]+)$", re.M)


def pxd_fields(pxd):
    """{class: {C field names}} of the ``cdef class`` blocks of a .pxd file."""
    out = {}
    for name, body in _CDEF_CLASS.findall(pxd.read_text()):
        fields = set()
        for names in _FIELDS.findall(body):
            fields.update(n.strip() for n in names.split(","))
        out[name] = fields
    return out


def py_slots(source):
    """{class: {slot names}} of the top-level classes of a .py file (slots set
    anywhere in the class body, also under ``if not TYPE_CHECKING:``)."""
    out = {}
    for node in ast.parse(source.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Assign) and len(sub.targets) == 1
                    and isinstance(sub.targets[0], ast.Name) and sub.targets[0].id == "__slots__"):
                out[node.name] = set(ast.literal_eval(sub.value)) - {"__weakref__", "__dict__"}
    return out


@pytest.mark.parametrize("pxd", PXDS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pxd_fields_are_the_slots(pxd):
    fields = pxd_fields(pxd)
    assert fields, "no cdef class in %s" % pxd
    slots = py_slots(pxd.with_suffix(".py"))
    for cls, names in fields.items():
        assert cls in slots, "%s has no __slots__ in the .py" % cls
        assert names == slots[cls], cls


def test_the_accepted_options_are_the_typed_ones():
    """``fh`` is a parameter of its own (``Handle(fh=None, **opts)``); every other
    option is a key of the TypedDict."""
    assert set(HandleOptions.__annotations__) | {"fh"} == set(_stream._OPTIONS)


def test_setup_compiles_the_modules_core_imports():
    """setup.py's CORE (what is compiled) and _core's (what is imported compiled)."""
    from anyevent import _core
    tree = ast.parse((PACKAGE.parent / "setup.py").read_text())
    [listed] = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "CORE" for t in n.targets)]
    built = {path.rpartition(".")[0].removeprefix("anyevent/").replace("/", ".")
             for path in listed}
    assert built == set(_core.CORE + _core.COMPILED_ONLY)
