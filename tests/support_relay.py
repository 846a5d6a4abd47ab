"""A network fault the tests control: a TCP relay in front of a real Redis that can stall or freeze."""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType


class StallingRelay:
    """A TCP relay in front of a real Redis that can stall: it then keeps what the fake sends, answering nothing.

    A network fault the test controls, and can watch: `holding` is set once the fake has sent a
    command into the stall and waits on it; `hung_up` once the fake gave up and closed the connection.
    """

    def __init__(self, port: int) -> None:
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.holding = threading.Event()
        self.hung_up = threading.Event()
        self._stalled = False
        self._frozen: set[socket.socket] = set()  # connections that carry nothing, either way, and stay open
        self._selector = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._pump, name="stalling-relay", daemon=True)

    def __enter__(self) -> StallingRelay:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopping = True
        self._thread.join(5)
        for sock in [self._listener, *self._peers]:
            sock.close()

    def stall(self) -> None:
        """From now on, keep what the fake sends and forward nothing."""
        self._stalled = True

    def upstream_ports(self) -> dict[int, socket.socket]:
        """The relayed connections by the port Redis sees them come from."""
        upstream = [sock for sock in self._peers if self._selector.get_key(sock).data == "upstream"]
        return {sock.getsockname()[1]: sock for sock in upstream}

    def freeze(self, upstream_port: int) -> None:
        """Silence one connection both ways without closing it, as a NAT that forgot it would."""
        sock = self.upstream_ports()[upstream_port]
        self._frozen.update((sock, self._peers[sock]))

    def _pump(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        upstream = socket.create_connection(self._upstream)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, "client")
        self._selector.register(upstream, selectors.EVENT_READ, "upstream")

    def _forward(self, sock: socket.socket) -> None:
        from_client = self._selector.get_key(sock).data == "client"
        data = sock.recv(65536)
        if not data:
            if from_client and self._stalled:
                self.hung_up.set()
            peer = self._peers.pop(sock)
            self._peers.pop(peer, None)
            for end in (sock, peer):
                self._selector.unregister(end)
                end.close()
            return
        if self._stalled or sock in self._frozen:
            if from_client and self._stalled:
                self.holding.set()
            return  # dropped: a stalled server answers nothing
        self._peers[sock].sendall(data)
