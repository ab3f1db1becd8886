"""The interface both network mechanisms implement.

Only traffic between nodes is ever cut or slowed: clients keep their connections, as in
Jepsen, so a partition shows up in the history as what the cluster does with requests,
not as clients that cannot reach anyone.
"""

from __future__ import annotations

from typing import Protocol

from raftchat.config import ClusterConfig

Pair = frozenset[str]  # two node ids that cannot reach each other (both directions)


class Network(Protocol):
    name: str  # "netns" or "proxy"
    tag: str  # short per-run tag carried by every resource it creates, for `harness cleanup`

    def setup(self, config: ClusterConfig) -> ClusterConfig:
        """Create the namespaces or proxies for these nodes; return the cluster config the
        nodes and clients must use (other addresses, or ``routes`` through proxies)."""

    def command_prefix(self, node_id: str) -> list[str]:
        """Prepended to a node's command line (``ip netns exec NS`` for netns; [] otherwise)."""

    def cut(self, pairs: set[Pair]) -> None:
        """From now on exactly these node pairs cannot talk (replaces the previous cut)."""

    def heal(self) -> None:
        """No pair is cut any more."""

    def slow(
        self, nodes: list[str], delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0
    ) -> None:
        """Link faults on traffic to and from ``nodes``: added delay and/or a loss fraction."""

    def clear_slow(self) -> None:
        """Remove every link fault."""

    def teardown(self) -> None:
        """Remove everything ``setup`` created. Idempotent; safe after a partial setup."""
