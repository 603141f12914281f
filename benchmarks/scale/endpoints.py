"""The 500 health endpoints of the scale benchmark: one asyncio HTTP/1.1 server on loopback (its own
process, so it takes no CPU time from the benchmark's samplers), answering each path as ``plan.json`` says
(status, delay). ``GET /_stats`` returns the number of requests served so far (it is not counted).

    python benchmarks/scale/endpoints.py PORT plan.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

SERVED = {"requests": 0}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: dict[str, dict]) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            if path == "/_stats":
                status, body, delay = 200, json.dumps(SERVED).encode(), 0.0
            else:
                SERVED["requests"] += 1
                answer = plan.get(path)
                if answer is None:
                    status, body, delay = 404, b"{}", 0.0
                else:
                    status, delay = int(answer["status"]), float(answer["delay"])
                    body = b'{"status":"ok"}' if status == 200 else b'{"status":"unavailable"}'
            if delay:
                await asyncio.sleep(delay)
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int, plan_file: Path) -> None:
    plan = json.loads(plan_file.read_text())
    server = await asyncio.start_server(lambda r, w: handle(r, w, plan), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
