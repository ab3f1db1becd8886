"""The ``garbage`` fault: malformed input at every port, a cluster that keeps serving.

The inputs repeat with the seed; a live cluster under the fault keeps answering its
clients correctly, refuses the stranger's hellos and logs no traceback; the stop ends the
thrower at once and records what was sent.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from nemesis import garbage
from nemesis.schedule import Nemesis
from raftchat.client import SyncClient


def test_inputs_repeat_with_the_seed_and_cover_every_family():
    first = [garbage.make_input(random.Random(7), ["n1", "n2"]) for _ in range(3)]
    again = [garbage.make_input(random.Random(7), ["n1", "n2"]) for _ in range(3)]
    # os.urandom nonces differ between draws; everything else is the seed's.
    assert [len(a) for a in first] == [len(b) for b in again]
    rng = random.Random(1)
    inputs = [garbage.make_input(rng, ["n1"]) for _ in range(300)]
    assert all(inputs)
    assert any(data[:4] == b"\xff\xff\xff\xff" for data in inputs), "no frame announcing too much"
    assert any(b"create_account" in data or b"send_message" in data for data in inputs), "no request"
    assert any(b"nonce" in data for data in inputs), "no peer hello"


def test_a_cluster_without_addresses_is_refused_at_once():
    class Nameless:
        ids = ["n1"]

    with pytest.raises(ValueError, match="garbage"):
        Nemesis(Nameless(), None, ["garbage"], 1.0, random.Random(1), lambda *a: None)


@pytest.mark.cluster
def test_a_cluster_under_garbage_keeps_serving_correct_answers(cluster):
    events: list[tuple] = []
    nemesis = Nemesis(cluster, None, ["garbage"], 1.0, random.Random(3), lambda *a: events.append(a))

    def create_amy() -> str:
        with SyncClient(cluster.config) as client:
            return client.call("create_account", user="amy", password="p").status

    async def scenario() -> dict:
        await nemesis.start_fault("garbage")
        nemesis.thrower.rate = 100.0  # a short test: more inputs per second than a run throws
        await asyncio.sleep(3)
        assert await asyncio.to_thread(create_amy) == "ok"  # served while the fault is on
        began = time.monotonic()
        value = await nemesis.stop_fault()
        assert time.monotonic() - began < 5, "the thrower did not stop promptly"
        return value

    value = asyncio.run(scenario())
    assert value["action"] == "stop" and value["inputs"] > 20, value
    assert {name.split("/")[1] for name in value["sent"]} == {"client", "peer"}
    assert [e[2] for e in events] == ["start", "stop"]
    with SyncClient(cluster.config) as client:
        assert client.call("send_message", sender="amy", to="amy", text="hi", password="p").value == 1
        assert client.call("fetch_messages", user="amy", from_index=1, password="p").value == [["amy", "hi"]]
    for node_id in cluster.ids:
        assert cluster.alive(node_id)
        text = cluster.log_path(node_id).read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "refusing peer connection" in text
        assert cluster.status(node_id)["term"] < 10  # the stranger moved no term
