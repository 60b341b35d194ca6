"""Python `websockets` broadcasting with websockets.broadcast(), as its documentation shows.

Every connection joins the one room whatever its path.

usage: python python_broadcast.py [--port PORT]
"""

import asyncio
import sys

from websockets.asyncio.server import broadcast, serve

CLIENTS = set()


async def member(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(websocket)


async def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    async with serve(member, "127.0.0.1", port, compression=None) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}", file=sys.stderr, flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
