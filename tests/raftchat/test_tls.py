"""Optional TLS on both ports, with certificates named in cluster.yaml (made here by trustme).

A cluster with ``tls`` elects a leader and serves clients over TLS; the bytes on the wire are
not the plain protocol; a plain client, and a peer without a certificate of the cluster's
CA, get nowhere.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl

import pytest

from raftchat import auth
from raftchat import config as cfg
from raftchat.client import OperationError, SyncClient
from raftchat.localcluster import LocalCluster, loopback_config
from raftchat.protocol import frame, pack, request_sync

trustme = pytest.importorskip(
    "trustme", reason="trustme makes the test certificates: pip install -e '.[test]'"
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def tls_cluster(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "node.pem"))
    files = {
        "ca": str(tmp_path / "ca.pem"),
        "cert": str(tmp_path / "node.pem"),
        "key": str(tmp_path / "node.pem"),
    }
    config = dataclasses.replace(loopback_config(3), tls=files)
    cluster = LocalCluster(tmp_path / "cluster", 3, config=config)
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=20)
        yield cluster
    finally:
        cluster.stop_all()


def test_a_cluster_with_tls_serves_clients_over_it(tls_cluster) -> None:
    loaded = cfg.load(tls_cluster.config_path)
    assert loaded.tls_files is not None
    with SyncClient(loaded) as client:
        assert client.call("create_account", user="tina", password="t").status == "ok"
        assert client.call("send_message", sender="tina", to="tina", text="over tls", password="t").value == 1
        assert client.call("fetch_messages", user="tina", from_index=1, password="t").value == [
            ["tina", "over tls"]
        ]
    # Every node is a follower or the leader of one term: the peers talk over TLS.
    terms = {s["term"] for s in tls_cluster.statuses().values()}
    assert len(terms) == 1 and all(s["commit"] >= 2 for s in tls_cluster.statuses().values())


def test_plain_clients_and_peers_get_nowhere(tls_cluster) -> None:
    node = tls_cluster.config.nodes[0]
    plain = dataclasses.replace(tls_cluster.config, tls={})
    with pytest.raises(OperationError), SyncClient(plain, timeout=2.0) as client:
        client.call("check_account", user="tina")
    with pytest.raises((OSError, ssl.SSLError)):
        request_sync(node.client_hostport, {"id": 1, "meta": "status"}, timeout=2)
    # A peer without a certificate of the CA cannot even start the hello.
    other = trustme.CA().issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_cluster.config.tls["ca"])
    context.check_hostname = False
    with other.private_key_and_cert_chain_pem.tempfile() as pem:
        context.load_cert_chain(pem)
    before = tls_cluster.status(node.id)
    with socket.create_connection(node.peer_hostport, timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as sock:
                nonce = b"n" * auth.NONCE_BYTES
                sock.sendall(
                    frame(
                        pack(
                            {
                                "cluster": tls_cluster.config.cluster_id,
                                "from": "n2",
                                "to": "n1",
                                "nonce": nonce,
                            }
                        )
                    )
                )
                assert sock.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass  # refused during the handshake: the certificate is not the cluster CA's
    after = tls_cluster.status(node.id)
    assert after is not None and after["term"] == before["term"]


def test_a_tls_section_must_name_three_files(tmp_path) -> None:
    data = {**loopback_config(1).to_dict(), "tls": {"ca": "x"}}
    with pytest.raises(cfg.ConfigError, match="'tls' must map exactly ca, cert and key"):
        cfg.parse(data)
