"""The benchmarks: each module prints figures (see bench/README.md). Run one from the checkout's
root as a module, ``python -m bench.NAME``, so that it imports the packages and its siblings by
name, with no path set by hand; a benchmark's child process is started the same way."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: ``bench`` and the packages it measures


def module_command(name: str, *args: str) -> list[str]:
    """The command line that runs ``bench.<name>`` in a child Python (with :func:`child_env`)."""
    return [sys.executable, "-m", f"bench.{name}", *args]


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the checkout first on ``PYTHONPATH``, so that a
    child started with :func:`module_command` finds ``bench`` whatever its working directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
