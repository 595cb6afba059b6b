"""A ThreadingHTTPServer for fault-injecting test servers: it knows its open connections, so
`cut_connections()` can end keep-alive ones at stop, and `reset(conn)` makes a connection end
with a bare RST (SO_LINGER 0, no FIN) when its handler returns, as a crashing peer would."""

from __future__ import annotations

import socket
import struct
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class ConnectionTrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when many clients connect at once; the retransmit
    # then costs the client a whole second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self.connections: set[socket.socket] = set()
        self.reset_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, handler)

    def reset(self, conn: socket.socket) -> None:
        """End `conn` with an RST once its handler is done."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self.conn_lock:
            self.reset_connections.add(conn)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
            reset = request in self.reset_connections
            self.reset_connections.discard(request)
        if reset:
            # No FIN first: close() with SO_LINGER 0 makes the kernel send a bare RST.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Shut down every open keep-alive connection so no handler answers after a stop."""
        with self.conn_lock:
            open_now = list(self.connections)
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
