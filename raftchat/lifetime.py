"""Child processes that die with their parent, even when the parent is killed with SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the kernel SIGKILLs the child when the thread that started it exits.

    PR_SET_PDEATHSIG survives exec, so it also holds through ``ip netns exec``; it fires on the
    *thread*'s exit, so start children with it only from a thread that lives as long as they
    should. Where prctl is missing (not Linux) the child simply does not get the guarantee.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
