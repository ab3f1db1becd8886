"""Only members that know the cluster secret may speak Raft to a node.

Each attack connects to every node's peer port of a live cluster, tries to join, and sends
the forged AppendEntries with a huge term that once moved a whole cluster from term 1 to
1,000,001. The node must hang up on it (we see the end of the stream, so it has read what we
sent), log why, and keep its term and log. The last test does the same with the real secret
and sees the term move, so the check above could fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import stat
import subprocess
import sys
import time

import pytest
import yaml

from raftchat import auth
from raftchat import config as cfg
from raftchat.localcluster import LocalCluster
from raftchat.protocol import frame, pack, recv_frame_sync, unpack
from raftchat.raft.messages import AppendEntries, Entry, encode

FORGED_TERM = 1_000_001


def _forged(src: str, dst: str, status: dict) -> bytes:
    entry = Entry(status["last_index"] + 1, FORGED_TERM, b"forged")
    msg = AppendEntries(src, dst, FORGED_TERM, status["last_index"], 0, [entry], status["commit"] + 1)
    return frame(encode(msg))


def _wait_for_hangup(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the node sent until it closed the connection (it must close it)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _old_hello(cluster_id: str, src: str, dst: str) -> bytes:
    return frame(pack({"cluster": cluster_id, "from": src}))  # what the cluster id alone allowed


def _attack(cluster: LocalCluster, hello_for) -> None:
    """Connect to every node as a peer it knows, run ``hello_for``'s opening, then forge."""
    before = cluster.statuses()
    ids = cluster.ids
    for i, node in enumerate(cluster.config.nodes):
        claimed = ids[(i + 1) % len(ids)]
        with socket.create_connection(node.peer_hostport, timeout=5) as sock:
            hello_for(sock, cluster.config.cluster_id, claimed, node.id)
            try:
                sock.sendall(_forged(claimed, node.id, before[node.id]))
            except (BrokenPipeError, ConnectionResetError):
                pass  # already refused
            _wait_for_hangup(sock)
    after = cluster.statuses()
    for node_id in ids:
        assert after[node_id] is not None, f"{node_id} stopped answering after the attack"
        assert after[node_id]["term"] < FORGED_TERM, (node_id, after[node_id])
        if after[node_id]["term"] == before[node_id]["term"]:  # no natural election meanwhile
            assert after[node_id]["last_index"] == before[node_id]["last_index"], (before, after)
    for node_id in ids:
        text = cluster.log_path(node_id).read_text()
        assert "refusing peer connection" in text, text[-2000:]


def _wrong_secret(sock: socket.socket, cluster_id: str, src: str, dst: str) -> None:
    """Follow the hello exactly, with a key of the right form that is not the cluster's."""
    nd = secrets.token_bytes(auth.NONCE_BYTES)
    sock.sendall(frame(pack({"cluster": cluster_id, "from": src, "to": dst, "nonce": nd})))
    challenge = unpack(recv_frame_sync(sock))
    assert set(challenge) == {"nonce", "proof"}
    wrong = secrets.token_hex(32).encode()
    proof = auth.proof(wrong, "dialer", cluster_id, src, dst, nd, challenge["nonce"])
    sock.sendall(frame(pack({"proof": proof})))


def _replayed_proof(sock: socket.socket, cluster_id: str, src: str, dst: str) -> None:
    """Send a proof of the right form made for other nonces (a recorded hello)."""
    nd = secrets.token_bytes(auth.NONCE_BYTES)
    sock.sendall(frame(pack({"cluster": cluster_id, "from": src, "to": dst, "nonce": nd})))
    sock.sendall(frame(pack({"proof": secrets.token_bytes(32)})))


@pytest.mark.parametrize(
    "opening",
    [
        pytest.param(lambda s, c, src, dst: s.sendall(_old_hello(c, src, dst)), id="cluster-id-only"),
        pytest.param(_wrong_secret, id="wrong-secret"),
        pytest.param(_replayed_proof, id="proof-for-other-nonces"),
        pytest.param(lambda s, c, src, dst: None, id="no-hello"),
    ],
)
def test_a_peer_without_the_secret_is_refused_and_changes_nothing(cluster, opening) -> None:
    _attack(cluster, opening)


def test_the_key_file_is_named_in_the_cluster_file_and_owner_only(cluster) -> None:
    data = yaml.safe_load(cluster.config_path.read_text())
    key = cluster.config_path.parent / data["secret_file"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = auth.load_secret(key)
    assert len(secret) >= 32
    # The secret never crosses the wire: a whole hello from the node holds nonces and a proof.
    node = cluster.config.nodes[0]
    with socket.create_connection(node.peer_hostport, timeout=5) as sock:
        nd = secrets.token_bytes(auth.NONCE_BYTES)
        hello = {"cluster": cluster.config.cluster_id, "from": "n2", "to": "n1", "nonce": nd}
        sock.sendall(frame(pack(hello)))
        sock.sendall(frame(pack({"proof": b"x" * 32})))
        received = _wait_for_hangup(sock)
    assert received and secret not in received and bytes.fromhex(secret.decode()) not in received


def test_a_node_with_a_wrong_key_file_is_refused_by_the_others(make_cluster, tmp_path) -> None:
    cluster = make_cluster(3)
    cluster.stop("n3")
    impostor_key = tmp_path / "impostor.key"
    auth.create_secret(impostor_key)
    impostor_yaml = tmp_path / "impostor.yaml"
    cfg.dump(cfg.parse({**cluster.config.to_dict(), "secret_file": str(impostor_key)}), impostor_yaml)
    before = {n: cluster.status(n) for n in ("n1", "n2")}
    log_path = tmp_path / "impostor.log"
    cmd = [sys.executable, "-m", "raftchat", "node", "--id", "n3", "--cluster", str(impostor_yaml)]
    cmd += ["--data-dir", str(cluster.data_dir / "n3")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            logs = [cluster.log_path(n).read_text() for n in ("n1", "n2")]
            mine = log_path.read_text()
            # The leader dials n3 with every heartbeat (a follower may send it nothing).
            if any("not talking to n3" in t and "failed the challenge" in t for t in logs) and (
                "failed the challenge" in mine
            ):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no refusal logged:\n{log_path.read_text()[-2000:]}")
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    for node_id in ("n1", "n2"):
        after = cluster.status(node_id)
        assert after["term"] < FORGED_TERM
        if after["term"] == before[node_id]["term"]:
            assert after["last_index"] == before[node_id]["last_index"]


def test_a_node_refuses_to_start_without_a_usable_secret(cluster, tmp_path) -> None:
    cluster.stop("n3")
    loose = tmp_path / "loose.key"
    loose.write_text(secrets.token_hex(32))
    os.chmod(loose, 0o644)
    cases = (("", "names no secret_file"), (str(loose), "chmod 600"), ("/nonexistent", "cannot read"))
    for secret_file, expected in cases:
        path = tmp_path / "c.yaml"
        data = {**cluster.config.to_dict(), "secret_file": secret_file}
        path.write_text(yaml.safe_dump(data))
        cmd = [sys.executable, "-m", "raftchat", "node", "--id", "n3", "--cluster", str(path)]
        cmd += ["--data-dir", str(cluster.data_dir / "n3")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr


def test_with_the_secret_the_same_forgery_moves_the_term(cluster) -> None:
    """The control: a member's key makes the forgery land, so the refusals above are real."""
    secret = auth.load_secret(cluster.config.secret_file)
    node = cluster.config.nodes[0]
    status = cluster.status(node.id)

    async def forge() -> None:
        reader, writer = await asyncio.open_connection(*node.peer_hostport)
        try:
            await auth.dial(reader, writer, secret, cluster.config.cluster_id, "n2", node.id)
            writer.write(_forged("n2", node.id, status))
            await writer.drain()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if (cluster.status(node.id) or {}).get("term", 0) >= FORGED_TERM:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the forged AppendEntries did not reach the core")
        finally:
            writer.close()

    asyncio.run(forge())
