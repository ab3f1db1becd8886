"""Helpers shared by several test modules (imported as ``support``; pytest puts tests/ on the path)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)"
)
# Flags that keep a headless Chromium off the network and free of first-run work.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")
ROOT = Path(__file__).resolve().parents[1]  # the checkout


def run_harness(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``harness ARGS...`` as a user runs it (a new process, from the checkout), its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def wait_until(what: str, check: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@functools.cache
def netns_missing() -> str | None:
    """Why the netns network cannot run here (None when it can), saying what it needs.

    The tests never install it: CI's ``.ci/run`` does (apt packages iproute2 and iptables)."""
    from nemesis.net.netns import NetnsNetwork

    ok, why = NetnsNetwork.available()
    if ok:
        return None
    return (
        "needs the netns network: root, `ip` (apt package iproute2) and `iptables`/`iptables-restore` "
        f"(apt package iptables) with network namespaces allowed; here: {why}"
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (e.g. a run's folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


def harness_in_process(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``harness ARGS`` run through the console script's own ``main`` in this process, answered as
    ``subprocess.run`` would (exit code, stdout, stderr): the same code path without an
    interpreter's start-up and imports (about half a CPU-second) per call. For commands that
    start no process of their own and leave nothing behind (``check``, usage errors)."""
    from harness import cli

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


HOSTILE = "</script><!-- <b>not markup</b> & \u2028"  # a value that would break a page built carelessly


def hostile_register_history(unit: int) -> list:
    """A write of :data:`HOSTILE` and a read of something else: not linearizable, every value
    and the title able to break a page's markup. ``unit``: the clock's step."""
    from histories import Op

    return [
        Op(0, "invoke", 0, "write", HOSTILE, 1 * unit),
        Op(1, "ok", 0, "write", HOSTILE, 2 * unit + unit // 2),
        Op(2, "invoke", 1, "read", None, 3 * unit),
        Op(3, "ok", 1, "read", HOSTILE + "!", 4 * unit),
    ]
