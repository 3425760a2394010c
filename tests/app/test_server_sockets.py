"""ui/boot.send_replies_at_once: the server's replies are not held back by Nagle's algorithm.

Streamlit's server listens on a socket made as ``socket.socket(family)`` (protocol 0), on which asyncio does not set
TCP_NODELAY; the check below builds such a listener, as Streamlit does, and looks at the connections it accepts.
"""

from __future__ import annotations

import socket
import sys

import pytest

from ui import boot

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux copies TCP_NODELAY to accepted connections")


def listener() -> socket.socket:
    server = socket.socket(family=socket.AF_INET)  # as streamlit.web.server.starlette.starlette_server binds it
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def accepted_nodelay(server: socket.socket) -> int:
    with socket.create_connection(server.getsockname()) as client:
        connection, _ = server.accept()
        with connection, client:
            return connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_connections_accepted_after_the_call_send_at_once(monkeypatch):
    monkeypatch.setattr(boot, "_sockets_checked", False)
    with listener() as server:
        assert accepted_nodelay(server) == 0  # what Streamlit's listener gives: Nagle on
        with socket.create_connection(server.getsockname()) as client:  # a connection open before the call
            connection, _ = server.accept()
            with connection:
                boot.send_replies_at_once()
                assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0  # every TCP socket here
        assert accepted_nodelay(server) != 0  # and the ones accepted later
        # the listener is still usable and still this process's: the call worked on duplicates of the sockets
        assert server.fileno() >= 0 and accepted_nodelay(server) != 0


def test_once_per_server(monkeypatch):
    monkeypatch.setattr(boot, "_sockets_checked", True)
    with listener() as server:
        boot.send_replies_at_once()
        assert accepted_nodelay(server) == 0
