"""The unit and engine tiers.

Bytecode is cached here whatever the shell says (PYTHONDONTWRITEBYTECODE): the unit tier starts
about 50 interpreters (``python -m depot`` in a project copy, import probes) and two workers that
each rewrite and compile every test module, and without the cache each one compiles the same
sources again — a third of a second per interpreter, seconds per worker. This runs before the
first import of ``depot`` (conftest imports it); ``__pycache__`` is git-ignored, and Python checks
a cached file against its source's mtime and size before using it.
"""

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # for the interpreters the tests start
