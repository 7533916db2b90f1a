"""Write order and on_drain timing, side by side with the real AnyEvent::Handle.

tests/perl/write_order.pl and its line-for-line port write_order.py each
connect to a listener here, wait for one line, then push a write and touch
the fh directly (shutdown, a raw send) or watch on_drain.  The peer must see
the same bytes in the same order, and the trace of callbacks must match.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Listener, require_tool

HERE = Path(__file__).parent / "perl"


def run_scenario(command, scenario):
    """Run one side; return (bytes the peer received until EOF, stdout trace)."""
    with Listener() as listener:
        proc = subprocess.Popen(command + [str(listener.port), scenario],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with listener.accept(20) as conn:  # closed here: the peer waits for its EOF
                conn.settimeout(20)
                conn.sendall(b"go\n")
                received = b""
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    received += data
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    return received, out.decode().splitlines()


@pytest.fixture(scope="module")
def perl():
    require_tool("perl")
    return ["perl", str(HERE / "write_order.pl")]


PYTHON = [sys.executable, str(HERE / "write_order.py")]

EXPECTED = {
    # the pushed line reaches the peer before the EOF the shutdown sends
    "bye_shutdown": (b"bye\n", ["line go", "returned", "eof"]),
    # and before what is written to the fh directly afterwards
    "header_syswrite": (b"HEADER\nBODY\n", ["line go", "returned", "eof"]),
    # on_drain runs at once when set on an empty buffer, and again inside
    # push_write once the kernel took everything
    "drain_order": (b"data\n", ["line go", "on_drain", "pushing", "on_drain", "pushed",
                                "returned", "eof"]),
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_same_bytes_and_callback_order_as_perl(perl, scenario):
    perl_side = run_scenario(perl, scenario)
    python_side = run_scenario(PYTHON, scenario)
    assert perl_side == EXPECTED[scenario]
    assert python_side == perl_side
