"""A type checker catches the mistakes a user makes with the API.

Each test writes a small user script and runs mypy on it (as a user would,
without ``--strict``, and with the lowest Python we support), then checks
that every planted mistake is reported on its line, and that the correct
script type-checks clean.  Skipped when mypy is not installed (the ``test``
extra installs it).
"""

import pathlib
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parent.parent

PREAMBLE = """\
import socket

from anyevent import AE
from anyevent.handle import Handle
from anyevent.socket import tcp_connect


def on_error(hdl: Handle, fatal: bool, message: str) -> None:
    print(message)


def on_line(hdl: Handle, line: bytes, eol: bytes) -> None:
    hdl.push_write(line + eol)


def connected(*args: object) -> None:
    print(args)


a, b = socket.socketpair()
"""

CORRECT = """\
hdl = Handle(fh=a, on_error=on_error, timeout=1.5, rbuf_max=4096)
hdl.push_write(b"hello\\n")
hdl.push_write("json", {"k": [1, 2]})
hdl.push_write("packstring", "N", b"data")
hdl.push_read("line", on_line)
hdl.push_read("line", b"\\r\\n", on_line)
hdl.push_read("chunk", 4, lambda h, data: print(data))
hdl.push_read("json", lambda h, value: print(value))
hdl.push_read(lambda h: True)
w = AE.timer(1.5, 0, lambda: None)
g = tcp_connect("localhost", 80, connected, prepare_cb=lambda sock: 5)
"""

# (line, what the checker must say about it)
MISTAKES = {
    "push_write_str": ('hdl.push_write("str")', "push_write"),
    "misspelled_option": ("Handle(fh=b, on_eror=on_error)", "on_eror"),
    # (mypy does not name a staticmethod made of a bound method: the type is the clue)
    "timer_str": ('w = AE.timer("1.5", 0, lambda: None)', 'incompatible type "str"; expected "float"'),
    "misspelled_keyword": ("g = tcp_connect(\"localhost\", 80, connected, prepare=lambda sock: 5)",
                           "prepare"),
    "line_callback_shape": ('hdl.push_read("line", lambda h, line: None)', "push_read"),
    "chunk_length_str": ('hdl.push_read("chunk", "4", lambda h, data: None)', "push_read"),
}


def mypy(directory, body):
    script = directory / "user_script.py"
    script.write_text(PREAMBLE + body)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", "3.10", "--follow-imports=silent",
         "--no-incremental", "--show-error-codes", "--no-error-summary",
         "--cache-dir", str(directory / "cache"), str(script)],
        capture_output=True, text=True, cwd=directory, env={"MYPYPATH": str(ROOT), "PATH": ""})
    assert proc.returncode in (0, 1), proc.stderr + proc.stdout
    return proc.stdout


def errors_on(output, lineno):
    return [line for line in output.splitlines() if ":%d: error:" % lineno in line]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One script with every mistake on a line of its own: (mypy's output, name -> line)."""
    body = "hdl = Handle(fh=a, on_error=on_error)\n" + "".join(
        code + "\n" for code, _ in MISTAKES.values())
    first = PREAMBLE.count("\n") + 2
    lines = {name: first + i for i, name in enumerate(MISTAKES)}
    return mypy(tmp_path_factory.mktemp("planted"), body), lines


def test_correct_script_is_clean(tmp_path):
    assert mypy(tmp_path, CORRECT) == ""


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_is_reported(planted, name):
    output, lines = planted
    reported = errors_on(output, lines[name])
    assert any(MISTAKES[name][1] in line for line in reported), output


def test_only_the_mistakes_are_reported(planted):
    output, lines = planted
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert all(any(errors_on(line, n) for n in lines.values()) for line in errors), output


def test_the_issues_four_planted_mistakes(planted):
    """The issue's script: four mistakes, four reports."""
    output, lines = planted
    four = ("push_write_str", "misspelled_option", "timer_str", "misspelled_keyword")
    missing = [name for name in four if not errors_on(output, lines[name])]
    assert missing == [], output
