"""Sphinx configuration for the geomjax documentation.

The API pages (``docs/api/<subpackage>.rst``) hold a title and one
``.. geomjax-api:: geomjax.<subpackage>`` directive. The directive reads the subpackage's
``__all__`` when the docs are built and writes the subpackage's docstring, an autosummary table
and one autodoc entry per name, so a new public name appears without editing any rst. After reading all pages, the build
checks that the documented top-level objects of each subpackage are exactly its ``__all__``, that
every public subpackage has a page and that every script in ``examples/`` has a page; a mismatch
is a warning, which ``sphinx-build -W`` turns into an error.

Building imports geomjax (and, through ``geomjax.nn`` and ``geomjax.ot``, flax and ott-jax) but
runs no computation and needs no network: no intersphinx, math is rendered by MathJax in the
reader's browser.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import textwrap
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import stringify_signature

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Keep the build on the CPU and quiet: importing geomjax must not grab a GPU.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import geomjax  # noqa: E402

logger = logging.getLogger("geomjax.docs")

project = "geomjax"
author = "the geomjax authors"
copyright = "the geomjax authors"
release = geomjax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
nitpicky = False

html_theme = "alabaster"
html_title = f"geomjax {release}"
html_theme_options = {
    "description": "Geometric primitives for machine learning in JAX",
    "fixed_sidebar": True,
    "page_width": "1200px",
    "sidebar_width": "260px",
}
html_static_path: list[str] = []

# autodoc: types go into the parameter descriptions (unresolvable types are not warned about with
# nitpicky off); signatures stay short.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autodoc_default_options = {"exclude-members": "__init__, __new__"}
autosummary_generate = False

# napoleon: Google-style docstrings (Args, Returns, Raises, Examples, References).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become ivar fields of the class entry, not separate attribute entries
# (which would duplicate what autodoc documents for dataclass and NamedTuple fields).
napoleon_use_ivar = True
napoleon_use_rtype = False

# The public subpackages documented, one page each (docs/api/<name>.rst).
SUBPACKAGES = tuple(name for name in geomjax.__all__ if name != "__version__")


def _public_names(modname: str) -> list[str]:
    module = importlib.import_module(modname)
    names = getattr(module, "__all__", None)
    if names is None:
        raise ValueError(f"{modname} has no __all__")
    return list(names)


def _entry(modname: str, name: str) -> list[str]:
    """The autodoc directive documenting ``modname.name``."""
    obj = getattr(importlib.import_module(modname), name)
    full = f"{modname}.{name}"
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return [f".. autoexception:: {full}"]
        return [f".. autoclass:: {full}", "   :members:", ""]
    if callable(obj):
        return [f".. autofunction:: {full}"]
    return [f".. autodata:: {full}", "   :no-value:"]


class GeomjaxApiDirective(SphinxDirective):
    """``.. geomjax-api:: geomjax.<subpackage>``: summary table and entries for its ``__all__``."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        self.env.note_dependency(str(ROOT / Path(*modname.split(".")) / "__init__.py"))
        names = _public_names(modname)
        lines = [
            f".. automodule:: {modname}",
            "",
            f".. currentmodule:: {modname}",
            "",
            ".. autosummary::",
            "   :nosignatures:",
            "",
            *(f"   {name}" for name in names),
            "",
        ]
        for name in names:
            lines += [*_entry(modname, name), ""]
        content = StringList(lines, source=f"<geomjax-api {modname}>")
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(content, self.content_offset, node, match_titles=False)
        return node.children


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields are described in the class docstring ("Attributes:"); skip the
    auto-generated "Alias for field number N" property entries."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return None


def _short_array_type(app, what, name, obj, options, lines):
    """Napoleon writes the field types of NamedTuples from their annotations with the full path of
    the array class (``jax.jaxlib._jax.Array``); show the public name."""
    lines[:] = [line.replace("jax.jaxlib._jax.Array", "jax.Array") for line in lines]


def _module_signature(app, what, name, obj, options, signature, return_annotation):
    """Flax NNX modules have a metaclass ``__call__(*args, **kwargs)``, which autodoc takes as
    the class signature; show the signature of ``__init__`` instead."""
    if what != "class" or signature != "(*args, **kwargs)" or "__init__" not in vars(obj):
        return None
    sig = inspect.signature(obj.__init__)
    defaults = _source_defaults(obj.__init__)
    params = [
        p.replace(default=_Source(defaults[p.name])) if p.name in defaults else p
        for p in list(sig.parameters.values())[1:]  # drop self
    ]
    sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    return stringify_signature(sig, show_annotation=False), return_annotation


class _Source:
    """A default value shown as its source text (``jnp.float32``, not ``<class ...>``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _source_defaults(fn) -> dict[str, str]:
    """The source text of each default value of ``fn`` (empty when the source is unavailable)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return {}
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef):
        return {}
    args = node.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return {a.arg: ast.get_source_segment(source, d) for a, d in pairs}


def _check_coverage(app, env):
    """Documented top-level objects of every subpackage == its ``__all__``; every subpackage and
    every example script has a page."""
    objects = env.get_domain("py").objects
    for sub in SUBPACKAGES:
        modname = f"geomjax.{sub}"
        if f"api/{sub}" not in env.found_docs:
            logger.warning("no API page docs/api/%s.rst for the public subpackage %s", sub, modname)
            continue
        documented = {
            full[len(modname) + 1 :]
            for full in objects
            if full.startswith(modname + ".") and "." not in full[len(modname) + 1 :]
        }
        expected = set(_public_names(modname))
        if documented != expected:
            logger.warning(
                "API docs of %s differ from its __all__: missing %s, extra %s",
                modname,
                sorted(expected - documented),
                sorted(documented - expected),
            )
    for script in sorted((ROOT / "examples").glob("*.py")):
        if f"examples/{script.stem}" not in env.found_docs:
            logger.warning("no page docs/examples/%s.rst for examples/%s", script.stem, script.name)


def setup(app):
    app.add_directive("geomjax-api", GeomjaxApiDirective)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    # After napoleon (priority 500) has turned the docstring into reST.
    app.connect("autodoc-process-docstring", _short_array_type, priority=600)
    app.connect("autodoc-process-signature", _module_signature)
    app.connect("env-check-consistency", _check_coverage)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
