"""Choosing how node-to-node traffic is cut: network namespaces when we may, TCP proxies otherwise.

Namespaces with iptables are the faithful mechanism (the kernel drops packets, as in a real
partition) but need root; the proxies work anywhere. The modules are imported only when chosen,
so a missing or broken mechanism does not stop the other one from being used.
"""

from __future__ import annotations

from collections.abc import Iterable

from nemesis.faults import needing
from nemesis.net.base import Network

KINDS = ("auto", "netns", "proxy")


class NetworkUnavailable(RuntimeError):
    """The requested mechanism cannot run here; the message says why."""


def netns_available(faults: Iterable[str] = ()) -> tuple[bool, str]:
    """Whether namespaces can be used here for these faults, and if not, why.

    Link delay in namespaces needs the kernel's netem qdisc, which some kernels lack; the
    proxies emulate delay themselves, so a plan with "delay" is better served by them there.
    """
    try:
        from nemesis.net.netns import NetnsNetwork
    except ImportError as exc:
        return False, f"the netns mechanism cannot be loaded: {exc}"
    ok, reason = NetnsNetwork.available()
    needs_netem = sorted(set(faults) & needing("netem"))
    if ok and needs_netem and not NetnsNetwork.netem_available():
        listed = ", ".join(repr(f) for f in needs_netem)
        return False, f"the {listed} fault needs the netem qdisc, which this kernel does not have"
    return ok, reason


def choose_network(kind: str = "auto", tag: str | None = None, faults: Iterable[str] = ()) -> Network:
    """The network for ``kind``: "netns", "proxy", or "auto" (netns if it works here, else proxy).

    ``tag`` names the run's resources (None: the mechanism draws one). ``faults`` are the plan's
    faults, so that "auto" does not pick a mechanism that cannot inject one of them.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r} (known: {', '.join(KINDS)})")
    if kind in ("auto", "netns"):
        ok, reason = netns_available(faults)
        if ok:
            from nemesis.net.netns import NetnsNetwork

            return NetnsNetwork(tag=tag)
        if kind == "netns":
            raise NetworkUnavailable(f"the netns network cannot be used: {reason} (the proxy network can)")
    from nemesis.net.proxy import ProxyNetwork

    return ProxyNetwork(tag=tag)
