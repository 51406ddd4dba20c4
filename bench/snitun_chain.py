"""Runs one side of a SniTun chain, inside SniTun's own Python 3.13 virtualenv.

    python snitun_chain.py server PORT FERNET_KEY
    python snitun_chain.py client PORT TOKEN AES_KEY AES_IV END_PORT
    python snitun_chain.py token FERNET_KEY HOSTNAME   -> prints TOKEN AES_KEY AES_IV

This file only drives the `snitun` package from PyPI; it is a benchmark peer, not hagate.
"""

import asyncio
import os
import signal
import sys
from datetime import timedelta


async def server(port: int, key: str) -> None:
    from snitun.server.run import SniTunServerSingle

    srv = SniTunServerSingle([key], host="127.0.0.1", port=port)
    await srv.start()
    print("ready", flush=True)
    await wait_for_signal()
    await srv.stop()


async def client(port: int, token: str, aes_key: str, aes_iv: str, end_port: int) -> None:
    from snitun.client.client_peer import ClientPeer
    from snitun.client.connector import EndpointConnector
    from snitun.utils.server import PROTOCOL_VERSION

    peer = ClientPeer("127.0.0.1", port)
    await peer.start(
        EndpointConnector("127.0.0.1", end_port),
        token.encode(),
        bytes.fromhex(aes_key),
        bytes.fromhex(aes_iv),
        protocol_version=PROTOCOL_VERSION,
    )
    print("ready", flush=True)
    await wait_for_signal()
    await peer.stop()


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def token(key: str, hostname: str) -> None:
    from snitun.utils.server import generate_client_token

    aes_key, aes_iv = os.urandom(32), os.urandom(16)
    tok = generate_client_token([key], timedelta(days=1), hostname, aes_key, aes_iv)
    print(tok.decode(), aes_key.hex(), aes_iv.hex())


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "server":
        asyncio.run(server(int(args[0]), args[1]))
    elif mode == "client":
        asyncio.run(client(int(args[0]), args[1], args[2], args[3], int(args[4])))
    else:
        token(args[0], args[1])
