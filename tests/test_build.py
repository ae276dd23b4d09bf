"""The build contract: compiled modules when built, twins otherwise."""

import importlib
import os
import subprocess
import sys
import types

import pytest

import tcpio
from tcpio import _fast

FAST_MODULES = ["checksum", "wire", "ehash", "rx", "tx", "tcp_fast"]


def test_version():
    assert isinstance(tcpio.__version__, str) and tcpio.__version__.count(".") == 2


@pytest.mark.parametrize("name", FAST_MODULES)
def test_compiled_present_in_ci(name):
    mod = _fast.load(name)
    if os.environ.get("TCPIO_REQUIRE_COMPILED") == "1":
        assert _fast.is_compiled(mod), f"{name}: compiled module expected in CI"


@pytest.mark.parametrize("name", FAST_MODULES)
def test_no_extensions_switch_forces_twin(name):
    code = (f"from tcpio import _fast; m = _fast.load({name!r}); "
            "print(m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TCPIO_NO_EXTENSIONS": "1"}, check=True)
    assert out.stdout.strip() == f"tcpio._fast.{name}_py"


def _defined_here(module, name):
    """Public API = what the twin defines, not what it imported (modules, typing)."""
    obj = getattr(module, name)
    if isinstance(obj, types.ModuleType) or name == "annotations":
        return False
    owner = getattr(obj, "__module__", None)
    return owner is None or owner == module.__name__ or not isinstance(obj, type | types.FunctionType)


@pytest.mark.parametrize("name", FAST_MODULES)
def test_twins_export_the_same_api(name):
    pure = importlib.import_module(f"tcpio._fast.{name}_py")
    compiled = _fast.load_compiled(name)
    if compiled is None:
        pytest.skip(f"{name} not built")
    public = {n for n in dir(pure) if not n.startswith("_") and _defined_here(pure, n)}
    missing = {n for n in public if not hasattr(compiled, n)}
    assert not missing


def test_every_public_name_resolves():
    """tcpio.__all__ matches the lazy export table, and every name imports."""
    assert set(tcpio.__all__) == {"__version__", *tcpio._EXPORTS}
    for name in tcpio.__all__:
        assert getattr(tcpio, name) is not None
