"""redis-server for the tests: a private instance on a free loopback port."""

import socket
import subprocess
import time

import pytest

from conftest import free_port, require_tool


class RedisServer:
    """redis-server on 127.0.0.1:``port`` (a free one unless given)."""

    def __init__(self, *args, port=None):
        self.args = args
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [require_tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.01)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def restart(self):
        """Start again on the same port (empty: nothing is persisted)."""
        self.stop()
        self.__init__(*self.args, port=self.port)


@pytest.fixture
def redis():
    """A RedisServer for one test (import it into the test module)."""
    server = RedisServer()
    yield server
    server.stop()
