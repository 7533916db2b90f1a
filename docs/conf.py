"""Sphinx configuration for the anyevent documentation (``make docs``)."""

import inspect
import os
import sys
import typing

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # document the tree, not an installed copy
# the .py files are the reference: a compiled core (make test builds it in
# place) would give autodoc Cython's functions, without their annotations
os.environ["ANYEVENT_PURE_PYTHON"] = "1"

import anyevent  # noqa: E402
import anyevent.reactor  # noqa: E402

# Until the model is fixed, Loop's watcher methods (and AE.io & co., bound to
# them) are stand-ins taking (*args, **kwargs); fixing it (the default model,
# as the first watcher would) puts the real methods and signatures back.
anyevent.reactor.detect("anyevent")

project = "anyevent"
author = "the anyevent authors"
copyright = "the anyevent authors; Perl AnyEvent by Marc Lehmann"
release = version = anyevent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_intersphinx"]
root_doc = "index"

# MyST: "#"-headings in the included PORTING.md and bench/README.md get anchors
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
# optional dependencies (uvloop is in the bench extra, not in the docs one):
# mocked, so that the modules using them are documented without them
autodoc_mock_imports = ["uvloop"]
autodoc_typehints = "description"

# Python's inventory is vendored (docs/_intersphinx/python3.inv, from the
# Python 3.11 documentation, PSF licence): CI reaches package registries only,
# so the build never fetches it.  Refresh: take html/objects.inv from the
# Debian package python3.X-doc.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/",
               os.path.join(HERE, "_intersphinx", "python3.inv")),
}
intersphinx_timeout = 1

# Every cross-reference must resolve (-n), except these, each with its reason.
nitpicky = True
nitpick_ignore_regex = [
    # dnspython, cbor2, pyOpenSSL and cryptography publish inventories only
    # online, and the build must not fetch (see intersphinx_mapping above)
    ("py:.*", r"(dns|cbor2|OpenSSL|cryptography|uvloop)(\..*)?"),
    # private names (base classes such as anyevent.reactor._ListWatcher,
    # TypeVars such as _T in annotations) are not documented
    ("py:(class|obj)", r"(anyevent\.(.*\.)?)?_[A-Za-z]\w*"),
    # Python 3.11's documentation describes re.Pattern and re.Match without a
    # class entry, so its inventory has none to link to
    ("py:class", r"re\.(Pattern|Match)(\[.*\])?"),
    # pyOpenSSL's Connection, named unqualified by a forward reference in a
    # type alias (anyevent.handle.TlsMode); no inventory (see above)
    ("py:class", r"Connection"),
]

html_theme = "alabaster"
html_title = "anyevent %s" % release
# the version on every page (the sidebar's description), and code that scrolls
# instead of being cut (_static/custom.css, which alabaster loads itself)
html_theme_options = {"description": "version %s" % release}
html_static_path = ["_static"]


# -- autodoc additions --------------------------------------------------------
# ``automodule`` lists what ``__all__`` names and documents data only where it
# has a ``#:`` comment in that module.  ``.. anyevent-more:: MODULE`` (after
# each automodule) adds what a reader meets in signatures and must be able
# to look up:
# * data that ``__all__`` names but another module assigns (a re-export) or
#   that has no ``#:`` comment;
# * type aliases, Protocols and TypedDicts the module defines outside
#   ``__all__`` (``HandleCb``, ``TlsCtx``...).
# Data is shown with its ``#:`` comment from whichever anyevent module
# assigns it, never with its type's docstring (``dict.__doc__``).

import importlib  # noqa: E402
import re  # noqa: E402

from docutils import nodes  # noqa: E402
from docutils.statemachine import StringList  # noqa: E402
from sphinx.errors import PycodeError  # noqa: E402
from sphinx.pycode import ModuleAnalyzer  # noqa: E402
from sphinx.util.docutils import SphinxDirective  # noqa: E402
from sphinx.util.nodes import make_refnode, nested_parse_with_titles  # noqa: E402

_TYPING_MODULES = ("typing", "types", "collections.abc", "typing_extensions")
_MISSING = object()


def _attr_docs(modname):
    try:
        return ModuleAnalyzer.for_module(modname).find_attr_docs()
    except PycodeError:
        return {}


def _is_data(obj):
    return not (inspect.ismodule(obj) or isinstance(obj, type) or callable(obj))


def _is_typing_construct(name, obj):
    """A type alias, TypeVar, Protocol or TypedDict (not a name imported from typing)."""
    if isinstance(obj, type):
        return bool(getattr(obj, "_is_protocol", False) or typing.is_typeddict(obj))
    if getattr(typing, name, _MISSING) is obj:
        return False
    return type(obj).__module__ in _TYPING_MODULES


def _private_anyevent(modname):
    """A private module of the package (``anyevent._resolve``): what it defines
    is documented where a public module re-exports it (autodoc then gives the
    entry the private name as its canonical one, which signatures use)."""
    parts = modname.split(".")
    return parts[0] == "anyevent" and any(part.startswith("_") for part in parts[1:])


def _more_entries(modname):
    """The autodoc directives ``anyevent-more`` adds for ``modname``."""
    mod = importlib.import_module(modname)
    exported = getattr(mod, "__all__", ())
    documented = {name for ns, name in _attr_docs(modname) if ns == ""}
    for name in exported:
        obj = getattr(mod, name, _MISSING)
        if obj is not _MISSING and _is_data(obj) and name not in documented:
            yield ".. autodata:: %s.%s" % (modname, name)
    for name, obj in vars(mod).items():
        if name.startswith("_") or name in exported or not _is_typing_construct(name, obj):
            continue
        if not isinstance(obj, type):
            yield ".. autodata:: %s.%s" % (modname, name)
        elif obj.__module__ == modname or _private_anyevent(obj.__module__):
            yield ".. autoclass:: %s.%s" % (modname, name)
            yield "   :members:"


class MoreNames(SphinxDirective):
    """``.. anyevent-more:: MODULE``: see above."""
    required_arguments = 1

    def run(self):
        lines = list(_more_entries(self.arguments[0]))
        if not lines:
            return []
        content = StringList([".. rubric:: Types and data in signatures", ""] + lines,
                             source="anyevent-more:" + self.arguments[0])
        node = nodes.Element()
        nested_parse_with_titles(self.state, content, node)
        return node.children


def _package_attr_doc(name, obj):
    """The ``#:`` comment of ``name`` in whichever anyevent module assigns ``obj``."""
    for modname, mod in sorted(sys.modules.items()):
        if modname.split(".")[0] != "anyevent" or getattr(mod, name, _MISSING) is not obj:
            continue
        docs = _attr_docs(modname)
        if ("", name) in docs:
            return list(docs[("", name)])
    return None


def _data_doc(app, what, name, obj, options, lines):
    """Replace a data member's borrowed type docstring with its ``#:`` comment."""
    if what != "data" or not _is_data(obj) or _is_typing_construct(name, obj):
        return
    borrowed = inspect.getdoc(type(obj)) or ""
    if lines and "\n".join(lines).strip() != borrowed.strip():
        return  # its own documentation
    lines[:] = _package_attr_doc(name.rpartition(".")[2], obj) or []


# names a module imports only under TYPE_CHECKING (its annotations then stay
# strings that autodoc cannot evaluate), with the object each one names
_TYPE_CHECKING_NAMES = {"FileIO": "io.FileIO"}  # anyevent.util.portable_pipe
_DOTTED_NAME = re.compile(r"[A-Za-z_][\w.]*")


def _resolve_annotation_name(app, env, node, contnode):
    """Names autodoc writes for annotations that Sphinx cannot find as they are:

    * a class under its defining submodule (``asyncio.events.AbstractEventLoop``,
      documented as ``asyncio.AbstractEventLoop``) is looked up in the
      inventories under its package;
    * a bare name from a forward reference in an alias (``"TLS"`` in
      ``TlsCtx``) resolves when exactly one documented object has that name
      (aliases that autodoc notes for a re-export's canonical name aside);
    * a forward reference that is an expression (``"Ctx | None"`` in
      ``FmtCb``, ``"os.PathLike[str]"`` in ``anyevent.io.Path``) reaches
      Sphinx as one target: it links to the first name in it (not None);
    * a name imported only under TYPE_CHECKING (:data:`_TYPE_CHECKING_NAMES`).
    """
    if node.get("refdomain") != "py" or node.get("reftype") not in ("class", "obj"):
        return None
    names = [name for name in _DOTTED_NAME.findall(node.get("reftarget", "")) if name != "None"]
    if not names:
        return None
    target = _TYPE_CHECKING_NAMES.get(names[0], names[0])
    retry = node.deepcopy()
    retry["reftarget"] = target
    if target != node["reftarget"]:
        found = env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder,
                                                  node["reftype"], target, retry, contnode)
        if found is not None:
            return found
    from sphinx.ext.intersphinx import missing_reference
    if "." in target:
        if target.count(".") >= 2:
            retry["reftarget"] = target.partition(".")[0] + "." + target.rpartition(".")[2]
        elif target == node["reftarget"]:
            return None
        return missing_reference(app, env, retry, contnode)
    domain = env.get_domain("py")
    found = [name for name, entry in domain.objects.items()
             if name.rpartition(".")[2] == target and not entry.aliased]
    if len(found) == 1:
        entry = domain.objects[found[0]]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                            contnode, found[0])
    return missing_reference(app, env, retry, contnode) if target != node["reftarget"] else None


def _public_bases(app, name, obj, options, bases):
    """Handle's compiled base class is an implementation detail: its methods
    are documented as Handle's own (``:inherited-members:`` in handle.rst)."""
    bases[:] = [base for base in bases if not base.__name__.startswith("_")] or [object]


def setup(app):
    app.add_directive("anyevent-more", MoreNames)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("missing-reference", _resolve_annotation_name)
    app.connect("autodoc-process-docstring", _data_doc)
