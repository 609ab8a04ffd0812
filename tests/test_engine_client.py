"""EngineClient.connect against servers that never answer: a clear error in time, naming the
address and not the token, with nothing left open. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest
from aiohttp import web

from pyjoy.devtools import run_async
from pyjoy.engine.client import MAP_GROUP_BYTES, EngineClient, EngineTimeout, map_groups

SECRET = "never-in-messages-" + "t" * 30


def test_connect_to_a_socket_that_never_answers_fails_in_time_naming_the_address() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # the kernel completes the TCP handshake; nobody ever reads or answers
    port = listener.getsockname()[1]

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(EngineTimeout) as caught:
            await EngineClient.connect(f"ws://127.0.0.1:{port}/?token={SECRET}", timeout=0.5)
        assert 0.45 < time.monotonic() - started < 5
        message = str(caught.value)
        assert message.startswith(f"the engine at ws://127.0.0.1:{port}/ did not answer within 0.5 s")
        assert SECRET not in message and "token" not in message

    try:
        run_async(main())
    finally:
        listener.close()


def test_connect_to_a_websocket_that_never_sends_the_engines_root_fails_in_time() -> None:
    async def main() -> None:
        accepted: list[web.WebSocketResponse] = []

        async def silent(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)  # the upgrade is answered; the engine's root never comes
            accepted.append(ws)
            async for _ in ws:
                pass
            return ws

        app = web.Application()
        app.router.add_get("/", silent)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(EngineTimeout, match=rf"the engine at ws://127.0.0.1:{port}/ did not answer within 1 s"):
                await EngineClient.connect(f"ws://127.0.0.1:{port}/?token={SECRET}", timeout=1)
            assert len(accepted) == 1
            deadline = time.monotonic() + 5
            while not accepted[0].closed:  # the client closed its socket: nothing left open
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await runner.cleanup()

    run_async(main())


def test_a_maps_items_are_grouped_into_as_few_messages_as_hold_them_in_order() -> None:
    MiB = 2**20
    assert MAP_GROUP_BYTES <= 15 * MiB  # under the engine's 16 MiB a message, with a margin
    assert map_groups([]) == [(0, 0)]
    assert map_groups([1, "two", {"three": 3}]) == [(0, 3)]  # no arrays: one map
    image = np.zeros(150_000, dtype=np.uint8)
    assert map_groups([1, image, 2]) == [(0, 3)]
    assert map_groups([image] * 96) == [(0, 96)]  # 14.4 MB: one map
    # 200 images (30 MB) in two maps of 100, not 104 + 96 or 104 + 104 + ...
    assert map_groups([image] * 200, limit=MAP_GROUP_BYTES) == [(0, 100), (100, 200)]
    for count, size in ((1000, 150_000), (37, 1_000_000), (5, 15 * MiB)):
        items = [np.zeros(size, dtype=np.uint8) for _ in range(count)]
        groups = map_groups(items)
        assert [start for start, _ in groups] == [0] + [end for _, end in groups[:-1]] and groups[-1][1] == count
        assert all(sum(items[i].nbytes for i in range(start, end)) <= MAP_GROUP_BYTES or end - start == 1
                   for start, end in groups)
        fewest = -(-count * size // MAP_GROUP_BYTES)  # counted another way: the bytes over the limit
        assert fewest <= len(groups) <= fewest + 1 or size > MAP_GROUP_BYTES // 2
    with pytest.raises(ValueError, match="map: item 1 holds 16777217 bytes of arrays, over the 16777216"):
        map_groups([image, np.zeros(16 * MiB + 1, dtype=np.uint8)])
