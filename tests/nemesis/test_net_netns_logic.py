"""The netns network's pure logic, which needs neither root nor iptables: the subnet choice.

(What needs the kernel, namespaces and iptables is in test_net_netns.py.)
"""

from __future__ import annotations

import ipaddress
import shutil

import pytest

from nemesis.net import netns
from nemesis.net.netns import NetnsError

OURS = ipaddress.ip_network("10.213.0.0/16")


def test_the_subnet_is_a_24_of_ours_derived_from_the_tag(monkeypatch) -> None:
    monkeypatch.setattr(netns, "used_networks", lambda: [])
    chosen = {tag: netns.choose_subnet(tag) for tag in ("abc123", "def456", "0a1b2c", "ffffff")}
    for subnet in chosen.values():
        assert subnet.prefixlen == 24 and subnet.subnet_of(OURS)
        assert subnet.network_address.packed[2] != 0, "10.213.0.0/24 is never used"
    assert netns.choose_subnet("abc123") == chosen["abc123"], "the same tag gives the same subnet"
    assert len(set(chosen.values())) > 1, "different tags spread over different subnets"


def test_the_subnet_avoids_networks_already_in_use(monkeypatch) -> None:
    monkeypatch.setattr(netns, "used_networks", lambda: [])
    first = netns.choose_subnet("abc123")
    monkeypatch.setattr(netns, "used_networks", lambda: [first])
    second = netns.choose_subnet("abc123")
    assert second != first and not second.overlaps(first) and second.subnet_of(OURS)
    # A wider network in use covers many of ours: the choice skips all of them.
    wide = ipaddress.ip_network(f"{first.network_address}/20", strict=False)
    monkeypatch.setattr(netns, "used_networks", lambda: [wide])
    assert not netns.choose_subnet("abc123").overlaps(wide)
    monkeypatch.setattr(netns, "used_networks", lambda: [ipaddress.ip_network("10.0.0.0/8")])
    with pytest.raises(NetnsError, match="none is free"):
        netns.choose_subnet("abc123")


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs `ip` (apt package iproute2); not root")
def test_networks_in_use_include_loopback() -> None:
    """Read from `ip -j` as any user: the loopback network is always there."""
    used = netns.used_networks()
    assert ipaddress.ip_network("127.0.0.0/8") in used
    assert all(isinstance(net, ipaddress.IPv4Network) for net in used)
