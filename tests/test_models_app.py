"""examples/asyncio_app.py: the chat server and an asyncio HTTP status
endpoint in one process on one loop, driven by real clients."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import free_port
from tlsfixtures import certs

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "examples" / "asyncio_app.py")
WAIT = 10.0
#: the model the app runs on: ANYEVENT_MODEL if set, else the running asyncio
#: loop at its first watcher selects "asyncio"
MODEL = os.environ.get("ANYEVENT_MODEL") or "asyncio"


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


class ChatClient:
    """A plain-text chat client on a socket; ``expect(prefix)`` returns the
    first line starting with ``prefix``."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.lines = self.sock.makefile("rb")

    def send(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def expect(self, prefix):
        while True:
            line = self.lines.readline()
            assert line, "connection closed while waiting for %r" % prefix
            text = line.decode().rstrip("\r\n")
            if text.startswith(prefix):
                return text

    def close(self):
        self.lines.close()
        self.sock.close()


def status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=WAIT) as resp:
        assert resp.status == 200
        return json.load(resp)


def test_chat_and_status_endpoint_share_one_loop(tmp_path):
    port, status_port = free_port(), free_port()
    log = tmp_path / "app.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, APP, "--port", str(port), "--status-port", str(status_port),
             "--cert", certs().server_pem],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: "status on" in log.read_text() or proc.poll() is not None, "start")
        assert proc.poll() is None, log.read_text()
        assert "(model %s)" % MODEL in log.read_text()
        got = status(status_port)
        assert got.pop("uptime") >= 0
        assert got == {"model": MODEL, "clients": 0, "nicks": []}
        ann, bob = ChatClient(port), ChatClient(port)
        for client, nick in ((ann, "ann"), (bob, "bob")):
            client.expect("* Welcome to the anyevent chat")
            client.send("/nick " + nick)
            client.expect("* You are now known as " + nick)
        ann.send("hello from the asyncio model")
        assert bob.expect("<ann>") == "<ann> hello from the asyncio model"
        got = status(status_port)
        assert (got["clients"], got["nicks"]) == (2, ["ann", "bob"])
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % status_port) as resp:
            assert json.load(resp)["model"] == MODEL  # the endpoint keeps serving
        proc.send_signal(signal.SIGTERM)
        for client in (ann, bob):
            client.expect("* Server is shutting down. Goodbye!")
            client.close()
        assert proc.wait(WAIT) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "caught SIGTERM, shutting down" in text
    assert "Traceback" not in text, text
