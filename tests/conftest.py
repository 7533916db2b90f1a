"""Shared fixtures: callback exceptions fail the test; required tools."""

import os
import shutil

import pytest

import anyevent.reactor as reactor


@pytest.fixture(autouse=True)
def _fail_on_callback_exception():
    """Install an exception handler that records errors; the test fails on any."""
    errors = []
    old = reactor.set_exception_handler(lambda exc, where: errors.append((where, exc)))
    yield errors
    reactor.set_exception_handler(old)
    if errors and not getattr(errors, "expected", False):
        where, exc = errors[0]
        raise AssertionError("exception in %s callback: %r" % (where, exc)) from exc


@pytest.fixture
def callback_errors(_fail_on_callback_exception):
    """The list of (where, exc) reported by the loop; a test using it owns the check."""
    errors = _fail_on_callback_exception

    class Owned(list):
        expected = True

    owned = Owned()
    owned[:] = []
    reactor.set_exception_handler(lambda exc, where: owned.append((where, exc)))
    return owned


def require_tool(name):
    """Return the path of ``name`` or skip; with ANYEVENT_REQUIRE_TOOLS=1 fail instead."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("ANYEVENT_REQUIRE_TOOLS"):
            pytest.fail("required tool %r is not installed" % name)
        pytest.skip("%s not installed" % name)
    return path
