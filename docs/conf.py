"""Sphinx configuration for the anyevent documentation (``make docs``)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # document the tree, not an installed copy

import anyevent  # noqa: E402

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
nitpick_ignore = [
    # anyevent/__init__.py says :meth:`Loop.io` in AnyEvent.io's docstring;
    # it means anyevent.reactor.Loop.io (the file's owner is to qualify it)
    ("py:meth", "Loop.io"),
]
nitpick_ignore_regex = [
    # dnspython, cbor2, pyOpenSSL and cryptography publish inventories only
    # online, and the build must not fetch (see intersphinx_mapping above)
    ("py:.*", r"(dns|cbor2|OpenSSL|cryptography)(\..*)?"),
    # private base classes (anyevent.reactor._ListWatcher) are not documented
    ("py:class", r"anyevent\.(.*\.)?_[A-Za-z].*"),
]

html_theme = "alabaster"
html_title = "anyevent %s" % release
html_static_path = []
