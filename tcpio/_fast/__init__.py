"""The packet hot path: compiled Cython modules, each with a pure-Python twin.

``load(name)`` returns the compiled module ``tcpio._fast.<name>`` (built from
``<name>.pyx``) or, when it is missing or ``TCPIO_NO_EXTENSIONS=1`` is set,
its twin ``tcpio._fast.<name>_py``.  Both have the same API; tests run both.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS = os.environ.get("TCPIO_NO_EXTENSIONS") == "1"


def load(name: str) -> ModuleType:
    """The compiled module if available and allowed, else the pure twin."""
    if not NO_EXTENSIONS:
        try:
            return importlib.import_module(f"tcpio._fast.{name}")
        except ImportError:
            pass
    return importlib.import_module(f"tcpio._fast.{name}_py")


def load_pure(name: str) -> ModuleType:
    return importlib.import_module(f"tcpio._fast.{name}_py")


def load_compiled(name: str) -> ModuleType | None:
    """The compiled module, or None if it was not built (tests skip it then)."""
    try:
        return importlib.import_module(f"tcpio._fast.{name}")
    except ImportError:
        return None


def is_compiled(module: ModuleType) -> bool:
    return not module.__name__.endswith("_py")
