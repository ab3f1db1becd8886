"""Snapshots written by a forked child: the state at the fork, whatever the parent does next."""

from __future__ import annotations

import asyncio

import pytest

from raftchat.forked import ChildFailed, ForkedBytes, Refused


def test_child_sees_the_state_at_the_fork_while_the_parent_moves_on():
    state = {"messages": list(range(200_000))}

    async def scenario() -> bytes:
        child = ForkedBytes(lambda: repr(state["messages"]).encode())
        state["messages"].append("later")  # after the fork: must not be in the snapshot
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        data = await child.result()
        task.cancel()
        assert ticks > 1, "the event loop must keep running while the child works"
        return data

    data = asyncio.run(scenario())
    assert data == repr(list(range(200_000))).encode()


def test_a_failing_child_is_reported():
    def explode() -> bytes:
        raise RuntimeError("no")

    async def scenario() -> None:
        await ForkedBytes(explode).result()

    with pytest.raises(ChildFailed):
        asyncio.run(scenario())


def test_a_child_that_refuses_says_why():
    def refuse() -> bytes:
        raise Refused("the bytes would not give the state back")

    async def scenario() -> None:
        await ForkedBytes(refuse).result()

    with pytest.raises(Refused, match="would not give the state back"):
        asyncio.run(scenario())
