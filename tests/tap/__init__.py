"""Tests with the Linux kernel as the peer (a package, so its conftest does not
shadow tests/conftest.py in sys.modules)."""
