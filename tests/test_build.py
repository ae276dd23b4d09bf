"""The build contract: compiled modules when built, twins otherwise."""

import importlib
import os
import subprocess
import sys
import types

import pytest

import tcpio
from tcpio import _fast

FAST_MODULES = ["checksum", "wire", "ehash", "rx", "tx", "tcp_fast", "syn_fast", "devio",
                "cong_fast"]


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


def test_pure_mode_source_runs_interpreted_beside_the_extension():
    """tcp_fast.py is one source for both builds (tcpio._fast.PURE_MODE):
    load_pure runs the file itself, as tcpio._fast.tcp_fast_py, even where
    the extension built from it is importable; is_compiled tells them apart
    by the loader, and load_compiled never returns the interpreted file."""
    pure = _fast.load_pure("tcp_fast")
    assert pure.__name__ == "tcpio._fast.tcp_fast_py"
    assert os.path.basename(pure.__file__) == "tcp_fast.py"
    assert not _fast.is_compiled(pure)
    compiled = _fast.load_compiled("tcp_fast")
    if compiled is None:
        pytest.skip("tcp_fast not built")
    assert _fast.is_compiled(compiled) and compiled is not pure
    assert not compiled.__file__.endswith(".py")
    assert not isinstance(pure.TcpCb(), compiled.TcpCb)


def test_pure_mode_source_runs_without_cython():
    """Cython is a build dependency only: without it, tcp_fast.py imports
    through tcpio/_fast/_cython_shim.py and runs."""
    code = ("import sys; sys.modules['cython'] = None\n"
            "from tcpio import _fast\n"
            "m = _fast.load_pure('tcp_fast')\n"
            "print(m.cython.__name__, m.seq_diff(1, 0xFFFFFFFF), m.before(0xFFFFFFFF, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tcpio._fast._cython_shim", "2", "True"]
