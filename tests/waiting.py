"""Small helpers the integration and browser tests share (``tests.waiting``)."""

from __future__ import annotations

import socket
import time


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming
    ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process, timeout: float = 15.0) -> int:
    """SIGTERM ``process`` (a subprocess.Popen), SIGKILL it if it has not exited within
    ``timeout`` seconds; returns its exit status."""
    import subprocess

    process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
