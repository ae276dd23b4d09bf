"""The packet hot path: compiled Cython modules, each with an interpreted form.

Two kinds of source live here:

- a ``.pyx`` with a pure-Python twin ``<name>_py.py`` (checksum, wire, ehash,
  rx, tx): byte-level code, written twice;
- one pure-Python-mode source ``<name>.py`` with an augmenting ``<name>.pxd``
  (``PURE_MODE``: tcp_fast, syn_fast, cong_fast, timer_fast): setup.py compiles it into ``tcpio._fast.<name>``
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
import logging
import os
import sys
from types import ModuleType

NO_EXTENSIONS = os.environ.get("TCPIO_NO_EXTENSIONS") == "1"

# Modules whose one .py source is both compiled and run interpreted.
PURE_MODE = frozenset({"tcp_fast", "syn_fast", "cong_fast", "timer_fast"})

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


# Why each compiled module is not in use (``build_info``), and whether the
# one warning about it was logged.
_fallbacks: dict[str, str] = {}
_warned = False


def load(name: str) -> ModuleType:
    """The compiled module if available and allowed, else the interpreted one
    (then, unless TCPIO_NO_EXTENSIONS=1 asked for it, a warning on the
    ``tcpio`` logger, once per process)."""
    global _warned
    if not NO_EXTENSIONS:
        module = load_compiled(name)
        if module is not None:
            return module
        _fallbacks[name] = _import_errors.get(name, "not built")
        if not _warned:
            _warned = True
            logging.getLogger("tcpio").warning(
                "tcpio: the compiled module tcpio._fast.%s is not in use (%s): running the "
                "pure-Python twins, several times slower; build them with `python setup.py "
                "build_ext --inplace` (or set TCPIO_NO_EXTENSIONS=1 to choose the twins "
                "quietly)", name, _fallbacks[name])
    return load_pure(name)


def build_info() -> dict[str, str]:
    """Which build of each hot-path module runs: "compiled", or "pure" with
    the reason (TCPIO_NO_EXTENSIONS=1, or the compiled module's import error)."""
    out = {}
    for name in ("checksum", "wire", "ehash", "rx", "tx", "devio", "tcp_fast", "syn_fast",
                 "cong_fast", "timer_fast"):
        if NO_EXTENSIONS:
            out[name] = "pure (TCPIO_NO_EXTENSIONS=1)"
        elif load_compiled(name) is not None:
            out[name] = "compiled"
        else:
            out[name] = f"pure ({_import_errors.get(name, 'not built')})"
    return out


_import_errors: dict[str, str] = {}


def load_pure(name: str) -> ModuleType:
    """The interpreted module (the twin, or the pure-mode source run as is)."""
    return importlib.import_module(f"tcpio._fast.{name}_py")


def load_compiled(name: str) -> ModuleType | None:
    """The compiled module, or None if it was not built (tests skip it then)."""
    try:
        module = importlib.import_module(f"tcpio._fast.{name}")
    except ImportError as e:
        _import_errors[name] = f"{type(e).__name__}: {e}"
        return None
    # A pure-mode source without its extension imports as the .py itself:
    # that is not a compiled module.
    if not is_compiled(module):
        _import_errors[name] = "not built"
        return None
    return module


def is_compiled(module: ModuleType) -> bool:
    """True for an extension module (what the loader says, not the name)."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)
