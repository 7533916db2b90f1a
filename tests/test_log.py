"""anyevent.log: AnyEvent::Log levels on top of logging, ANYEVENT_VERBOSE, fatal."""

import logging
import os
import subprocess
import sys

import pytest

from anyevent import AE, log


@pytest.mark.parametrize("level,expected", [
    (1, 50), (2, 48), (3, 45), (4, 40), (5, 30), (6, 25), (7, 20), (8, 10), (9, 5),
    ("fatal", 50), ("emerg", 50), ("exit", 50), ("alert", 48), ("crit", 45),
    ("critical", 45), ("error", 40), ("err", 40), ("warn", 30), ("warning", 30),
    ("note", 25), ("notice", 25), ("info", 20), ("debug", 10), ("trace", 5),
    ("WARN", 30), ("7", 20),
])
def test_level_mapping(level, expected):
    assert log.level_number(level) == expected


@pytest.mark.parametrize("bad", [0, 10, -1, "loud", "", None, 2.5])
def test_unknown_levels_raise(bad):
    with pytest.raises(ValueError):
        log.level_number(bad)


def test_levels_are_ordered_like_perl():
    values = [log.level_number(n) for n in range(1, 10)]
    assert values == sorted(values, reverse=True)
    assert logging.getLevelName(25) == "NOTE" and logging.getLevelName(5) == "TRACE"


def test_ae_log_formats_and_uses_context(caplog):
    with caplog.at_level(logging.DEBUG, logger="anyevent"):
        AE.log("warn", "%d apples from %s", 3, "tree")
        AE.log(6, "noted", context="dns")
    recs = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert recs == [("anyevent", 30, "3 apples from tree"), ("anyevent.dns", 25, "noted")]


def _run(code, **env_changes):
    env = dict(os.environ)
    env.pop("ANYEVENT_VERBOSE", None)
    env.update(env_changes)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, "-c", "from anyevent import AE\n" + code],
                          env=env, capture_output=True, text=True, timeout=20)


SAY_ALL = "\n".join('AE.log(%d, "level-%d")' % (n, n) for n in range(2, 10))


@pytest.mark.parametrize("verbose,shown", [
    (None, [2, 3, 4]), ("4", [2, 3, 4]), ("5", [2, 3, 4, 5]), ("9", list(range(2, 10))),
    ("12", list(range(2, 10))), ("info", [2, 3, 4, 5, 6, 7]), ("0", []),
])
def test_anyevent_verbose_sets_threshold(verbose, shown):
    env = {} if verbose is None else {"ANYEVENT_VERBOSE": verbose}
    res = _run(SAY_ALL, **env)
    assert res.returncode == 0, res.stderr
    printed = [n for n in range(2, 10) if "level-%d\n" % n in res.stderr]
    assert printed == shown


def test_invalid_anyevent_verbose_is_reported_not_fatal():
    res = _run('AE.log("error", "still here")', ANYEVENT_VERBOSE="chatty")
    assert res.returncode == 0
    assert "ANYEVENT_VERBOSE='chatty'" in res.stderr and "still here" in res.stderr


def test_fatal_logs_then_exits_1():
    res = _run('AE.log("fatal", "cannot go on: %s", "reason")\nprint("not reached")')
    assert res.returncode == 1
    assert "cannot go on: reason" in res.stderr
    assert "not reached" not in res.stdout
