"""examples/chat_client.py --tls verifies the chat server's certificate.

The client runs to completion with its stdin piped (``/who``, then EOF: it says
``/quit`` for us) against examples/chat_server.py presenting the test CA's certificate,
a wrong-host one, or its own self-signed one.  Trust comes from ``--cafile`` or the
system store (no trust variables are passed on); ``--insecure`` accepts anything.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from tlsfixtures import certs, verify_failed

ROOT = Path(__file__).resolve().parent.parent
SERVER = str(ROOT / "examples" / "chat_server.py")
CLIENT = str(ROOT / "examples" / "chat_client.py")
TRUST_ENV = ("ANYEVENT_CA_FILE", "ANYEVENT_CA_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
WAIT = 15


@pytest.fixture
def chat_server(tmp_path):
    """start(*args) -> (port, cache dir) of a chat_server.py subprocess."""
    procs = []
    env = {k: v for k, v in os.environ.items() if k not in TRUST_ENV}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def start(*args):
        port = free_port()
        log = tmp_path / ("server-%d.log" % port)
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, SERVER, "--port", str(port), *args],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, env=env)
        procs.append(proc)
        deadline = time.monotonic() + WAIT
        while "listening on" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, "chat server did not start"
            time.sleep(0.02)
        assert proc.poll() is None, log.read_text()
        return port, tmp_path / "cache" / "anyevent-chat"
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def client(port, *args):
    """Run chat_client.py to the end: (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in TRUST_ENV}
    done = subprocess.run([sys.executable, CLIENT, "--port", str(port), *args],
                          input=b"/who\n", capture_output=True, timeout=WAIT, env=env)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_chatted(result):
    code, out, err = result
    assert code == 0, result
    assert "Welcome to the anyevent chat (TLS)" in out, result
    assert "Bye, guest" in out, result


def assert_refused(result, why):
    code, out, err = result
    assert code == 1 and out == "", result
    assert err.startswith("connection error: " + verify_failed(why)), result


def test_cafile_trusts_the_servers_ca(chat_server):
    port, _ = chat_server("--cert", certs().server_pem)
    assert_chatted(client(port, "--tls", "--cafile", certs().ca_file))


def test_default_is_the_system_store_which_does_not_know_the_test_ca(chat_server):
    port, _ = chat_server("--cert", certs().server_pem)
    assert_refused(client(port, "--tls"),
                   "certificate verify failed: unable to get local issuer certificate")


def test_insecure_accepts_any_certificate(chat_server):
    port, _ = chat_server("--cert", certs().wronghost_pem)
    assert_chatted(client(port, "--tls", "--insecure"))


def test_the_host_name_is_checked(chat_server):
    port, _ = chat_server("--cert", certs().wronghost_pem)
    assert_refused(client(port, "--tls", "--cafile", certs().ca_file),
                   "hostname mismatch: certificate is for wrong.example, not 127.0.0.1")


def test_the_servers_own_selfsigned_certificate_file(chat_server):
    port, cache = chat_server()
    pem = str(cache / "selfsigned.pem")
    assert_refused(client(port, "--tls"), "certificate verify failed: self-signed certificate")
    assert_chatted(client(port, "--tls", "--cafile", pem))
    assert_chatted(client(port, "--tls", "--cafile", pem, "--host", "localhost"))


def test_plain_client_is_unchanged(chat_server):
    port, _ = chat_server("--cert", certs().server_pem)
    code, out, err = client(port)
    assert code == 0 and "Welcome to the anyevent chat." in out, (code, out, err)
