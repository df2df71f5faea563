"""Bad input against a Python Agent: each bad connection is answered with
its SPEC code (an ERROR frame, then the close) or an HTTP refusal, while a
healthy client streaming from the same agent gets all of its output."""

import asyncio

import websockets

import agent_socket
from agent_socket import decode_frames
from agent_socket._core import Session, unpack
from conftest import free_port

CHUNKS = 400


async def error_of(ws):
    """The ERROR frame the agent sends before it closes: (id, code)."""
    message = await asyncio.wait_for(ws.recv(), 5)
    frames = decode_frames(message, 1 << 20)
    assert [f["type"] for f in frames] == ["ERROR"], frames
    payload = unpack(frames[0]["canonical"][8:])
    try:
        await asyncio.wait_for(ws.recv(), 5)
        raise AssertionError("the connection stayed open after a fatal error")
    except websockets.exceptions.ConnectionClosed:
        pass
    return frames[0]["request_id"], payload["code"]


async def opened_unchecked(url, token):
    """A raw WebSocket that has sent HELLO (from a client Session of the
    core) without reading the answer."""
    loop = asyncio.get_running_loop()
    session = Session.client({"name": "raw", "token": token}, None, loop.time())
    ws = await websockets.connect(url, subprotocols=["asp-v1"])
    await ws.send(session.poll_transmit())
    return ws, session


async def opened(url, token):
    """The same, once the agent's HELLO has arrived."""
    ws, session = await opened_unchecked(url, token)
    session.handle_message(await asyncio.wait_for(ws.recv(), 5), asyncio.get_running_loop().time())
    assert session.state == "open", session.state
    return ws, session


def test_bad_input_is_answered_with_its_code_while_a_healthy_client_streams():
    agent = agent_socket.Agent("sturdy", tokens=["good"])

    @agent.tool()
    async def ticks(args):
        for i in range(CHUNKS):
            yield f"{i:04d}\n"
            await asyncio.sleep(0.002)

    async def main():
        port = free_port()
        server = await agent.serve("127.0.0.1", port)
        url = f"ws://127.0.0.1:{port}/v1/agent-socket"
        try:
            healthy = await agent_socket.connect(url, token="good")
            streaming = asyncio.ensure_future(healthy.invoke("ticks").text())

            async def garbage_before_hello():
                async with websockets.connect(url, subprotocols=["asp-v1"]) as ws:
                    await ws.send(b"\xff" * 32)  # version nibble 15
                    return await error_of(ws)

            async def oversized_length():
                async with websockets.connect(url, subprotocols=["asp-v1"]) as ws:
                    await ws.send(bytes([0x11, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]))  # HELLO of 4 GiB
                    return await error_of(ws)

            async def text_message():
                async with websockets.connect(url, subprotocols=["asp-v1"]) as ws:
                    await ws.send("not binary")
                    return await error_of(ws)

            async def truncated_frame():
                async with websockets.connect(url, subprotocols=["asp-v1"]) as ws:
                    await ws.send(bytes([0x11, 0, 0, 0, 0, 0, 0, 20]) + b"\x80")  # 20 declared, 1 sent
                    return await error_of(ws)

            async def reserved_type_after_hello():
                ws, _ = await opened(url, token="good")
                async with ws:
                    await ws.send(bytes([0x1F, 0, 0, 0, 0, 0, 0, 0]))
                    return await error_of(ws)

            async def bad_token():
                ws, _ = await opened_unchecked(url, token="bad")
                async with ws:
                    return await error_of(ws)

            async def no_subprotocol():
                try:
                    await websockets.connect(url)
                except websockets.exceptions.InvalidStatus as refused:
                    return refused.response.status_code
                raise AssertionError("accepted without asp-v1")

            # Each kind of bad input, five connections of each at once.
            kinds = [garbage_before_hello, oversized_length, text_message, truncated_frame, reserved_type_after_hello, bad_token]
            answers = await asyncio.gather(*(kind() for kind in kinds for _ in range(5)))
            by_kind = {kind.__name__: answers[i * 5 : i * 5 + 5] for i, kind in enumerate(kinds)}
            assert by_kind == {
                "garbage_before_hello": [(0, 101)] * 5,  # UNSUPPORTED_VERSION
                "oversized_length": [(0, 200)] * 5,  # FRAME_TOO_LARGE
                "text_message": [(0, 110)] * 5,  # TEXT_MESSAGE
                "truncated_frame": [(0, 111)] * 5,  # TRUNCATED_FRAME
                "reserved_type_after_hello": [(0, 102)] * 5,  # RESERVED_TYPE
                "bad_token": [(0, 400)] * 5,  # UNAUTHENTICATED
            }, by_kind
            assert await no_subprotocol() == 400

            # The healthy client got every chunk, in order, and still works.
            text = await asyncio.wait_for(streaming, 30)
            assert text == "".join(f"{i:04d}\n" for i in range(CHUNKS))
            assert len(await healthy.invoke("ticks").text()) == CHUNKS * 5
            await healthy.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), 60))

