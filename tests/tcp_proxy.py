"""A TCP proxy in front of a shared server (RabbitMQ, PostgreSQL), to make that server
unreachable for one process under test without touching the server others use.

    proxy = TcpProxy("127.0.0.1", 5672)     # picks a free port
    proxy.start()                           # clients connect to 127.0.0.1:<proxy.port>
    proxy.stop()                            # the listener and every live connection close
    proxy.start()                           # the same port again

The proxy runs in a process of its own (``python tcp_proxy.py PORT HOST:TARGET_PORT``):
stopping it is killing it, which closes the listener and every forwarded connection at
once, whatever the test process's threads (green under eventlet, or blocked in a grpc
call) are doing. Importable as ``tcp_proxy`` (tests/ is on the path).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time


class TcpProxy:
    """A forwarding proxy ``127.0.0.1:port`` -> ``host:target_port`` that can be stopped
    and started again on the same port."""

    def __init__(self, host: str, target_port: int, port: int | None = None):
        self.host, self.target_port = host, target_port
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(self.port),
                                         f"{self.host}:{self.target_port}"], stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # "listening" once bound (or EOF if it failed)
        if line.strip() != "listening":
            self.process.wait(timeout)
            raise RuntimeError(f"the proxy on port {self.port} did not start (exit {self.process.returncode})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> "TcpProxy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------ the proxy process


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [])
            for src in readable:
                data = src.recv(65536)
                if not data:
                    return
                (b if src is a else a).sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass


def _serve(port: int, target: tuple[str, int]) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10  # the port may still be held by the previous run's sockets
    while True:
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    listener.listen(128)
    print("listening", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()


if __name__ == "__main__":
    host, _, target_port = sys.argv[2].rpartition(":")
    _serve(int(sys.argv[1]), (host, int(target_port)))
