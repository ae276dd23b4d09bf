"""Build the Cython hot path.

Every extension is optional: if the compiler or Cython is missing, or a module
fails to compile, the install still succeeds and tcpio runs on the pure-Python
twins in tcpio/_fast/ (with a warning at build time); a pure-Python-mode
source (tcp_fast.py) then simply runs interpreted.
"""

import os
import sys
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Turn a compile failure into a warning: the pure twins take over."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back
            warnings.warn(f"tcpio: C extensions not built ({exc}); using pure Python",
                          stacklevel=1)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"tcpio: extension {ext.name} not built ({exc}); using pure Python",
                          stacklevel=1)


def extensions() -> list:
    if os.environ.get("TCPIO_NO_EXTENSIONS") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        warnings.warn("tcpio: Cython not available; using pure Python", stacklevel=1)
        return []
    here = os.path.dirname(os.path.abspath(__file__))
    fast = os.path.join(here, "tcpio", "_fast")
    # The .pyx modules, and the pure-Python-mode sources: a .py with an
    # augmenting .pxd of the same name (tcp_fast.py + tcp_fast.pxd), which
    # also runs interpreted (tcpio._fast.PURE_MODE).
    sources = sorted(f for f in os.listdir(fast) if f.endswith(".pyx")
                     or (f.endswith(".py") and os.path.exists(os.path.join(fast, f[:-3] + ".pxd"))))
    from setuptools import Extension

    exts = [
        Extension(
            f"tcpio._fast.{os.path.splitext(name)[0]}",
            [os.path.join("tcpio", "_fast", name)],
            extra_compile_args=["-O3"] if sys.platform != "win32" else [],
        )
        for name in sources
    ]
    directives = {
        "language_level": "3",
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
    }
    built = []
    # One module at a time: a Cython error in one (cythonize raises on the
    # first) leaves that module to its pure twin, not the whole build.
    for ext in exts:
        try:
            built += cythonize([ext], compiler_directives=directives, quiet=True)
        except Exception as exc:  # noqa: BLE001 - any Cython failure falls back
            warnings.warn(f"tcpio: {ext.name} not cythonized ({exc}); using pure Python",
                          stacklevel=1)
    # cythonize() drops Extension(optional=True); set it on what it returns.
    for ext in built:
        ext.optional = True
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
