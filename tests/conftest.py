"""Shared fixtures: real clusters of node processes on loopback."""

from __future__ import annotations

import pytest

from raftchat.localcluster import LocalCluster


@pytest.fixture
def make_cluster(tmp_path):
    """Factory for local clusters that are always stopped at the end of the test."""
    clusters: list[LocalCluster] = []

    def make(nodes: int = 3, **kwargs) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"cluster{len(clusters)}", nodes, **kwargs)
        clusters.append(cluster)
        cluster.start_all()
        cluster.wait_for_leader(timeout=15)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop_all()
