"""The packet hot path: compiled Cython modules, each with an interpreted form.

Two kinds of source live here:

- a ``.pyx`` with a pure-Python twin ``<name>_py.py`` (checksum, wire, ehash,
  rx, tx): byte-level code, written twice;
- one pure-Python-mode source ``<name>.py`` with an augmenting ``<name>.pxd``
  (``PURE_MODE``: tcp_fast): setup.py compiles it into ``tcpio._fast.<name>``
  and the same file runs interpreted as ``tcpio._fast.<name>_py``.  Python
  imports an extension module before a ``.py`` of the same name in one
  directory, so the interpreted form is loaded from the file under the
  ``_py`` name (``_PureModeFinder``), which also keeps it apart from the
  compiled module in ``sys.modules``: the differential tests run both in one
  process.

``load(name)`` returns the compiled module ``tcpio._fast.<name>`` or, when it
is missing or ``TCPIO_NO_EXTENSIONS=1`` is set, the interpreted one
``tcpio._fast.<name>_py``.  Both have the same API; tests run both.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

NO_EXTENSIONS = os.environ.get("TCPIO_NO_EXTENSIONS") == "1"

# Modules whose one .py source is both compiled and run interpreted.
PURE_MODE = frozenset({"tcp_fast"})

_HERE = os.path.dirname(os.path.abspath(__file__))


def pure_source(name: str) -> str:
    """The file the interpreted ``name`` runs: ``<name>.py`` for a
    pure-mode module, else its twin ``<name>_py.py``."""
    return os.path.join(_HERE, f"{name}.py" if name in PURE_MODE else f"{name}_py.py")


class _PureModeFinder(importlib.abc.MetaPathFinder):
    """``tcpio._fast.<name>_py`` for a PURE_MODE name: ``<name>.py`` as source."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, leaf = fullname.rpartition(".")
        if package != __name__ or not leaf.endswith("_py") or leaf[:-3] not in PURE_MODE:
            return None
        return importlib.util.spec_from_file_location(fullname, pure_source(leaf[:-3]))


# After the standard finders: they find no <name>_py.py for a PURE_MODE name.
# (tools/mutate_plugin.py puts its mutant loader in front of all of them.)
if not any(isinstance(f, _PureModeFinder) for f in sys.meta_path):
    sys.meta_path.append(_PureModeFinder())


def load(name: str) -> ModuleType:
    """The compiled module if available and allowed, else the interpreted one."""
    if not NO_EXTENSIONS:
        module = load_compiled(name)
        if module is not None:
            return module
    return load_pure(name)


def load_pure(name: str) -> ModuleType:
    """The interpreted module (the twin, or the pure-mode source run as is)."""
    return importlib.import_module(f"tcpio._fast.{name}_py")


def load_compiled(name: str) -> ModuleType | None:
    """The compiled module, or None if it was not built (tests skip it then)."""
    try:
        module = importlib.import_module(f"tcpio._fast.{name}")
    except ImportError:
        return None
    # A pure-mode source without its extension imports as the .py itself:
    # that is not a compiled module.
    return module if is_compiled(module) else None


def is_compiled(module: ModuleType) -> bool:
    """True for an extension module (what the loader says, not the name)."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)
