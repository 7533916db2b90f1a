"""Loop and condvar behaviour checked against Perl's AnyEvent where Perl can
run the same scenario: io ``poll`` values, ``$cv->croak`` arguments, and
cancelled timers (which must not keep a blocking wait alive)."""

import os
import socket
import subprocess
from contextlib import contextmanager
from time import monotonic

import pytest

from anyevent import AE, AnyEvent, reactor, strict
from conftest import require_tool, settle


def _run_perl(script, *args, strict_mode=False):
    """Run ``script`` with Perl's pure-Perl loop; its stdout as text."""
    perl = require_tool("perl")
    env = dict(os.environ, PERL_ANYEVENT_MODEL="Perl")
    env.pop("PERL_ANYEVENT_STRICT", None)
    if strict_mode:
        env["PERL_ANYEVENT_STRICT"] = "1"
    out = subprocess.run([perl, "-e", script, *args], capture_output=True,
                         timeout=20, check=True, env=env).stdout
    return out.decode("utf-8", "backslashreplace")


@contextmanager
def _pair():
    """One end of a fresh socket pair: writable, with nothing to read while
    the other end stays open (closed, both, on exit)."""
    fh, peer = socket.socketpair()
    with fh, peer:
        yield fh


def _settle():
    """Run the loop for 50 ms from now (not from a stale cached loop time,
    which could let the timer expire before the loop polls at all)."""
    AE.now_update()
    settle(0.05)


@pytest.fixture(params=[False, True], ids=["plain", "strict"])
def any_mode(request):
    """Run the test once without and once with strict mode."""
    was_on = strict.enabled()
    if request.param:
        strict.enable()
    else:
        strict.disable()
    yield request.param
    (strict.enable if was_on else strict.disable)()


# -- 1. io poll values ------------------------------------------------------------

# The poll values every Perl backend reads alike, and the AnyEvent->io values
# AnyEvent::Strict rejects.  A socket with nothing to read is only writable.
PERL_IO = r'''
use strict; use warnings; use AnyEvent; use Socket;
$| = 1;
for my $case (@ARGV) {
   my ($api, $poll) = split /:/, $case, 2;
   socketpair my $fh, my $peer, AF_UNIX, SOCK_STREAM, PF_UNSPEC or die "socketpair: $!";
   my $fired = 0;
   my $w = eval {
      $api eq "ae" ? AE::io ($fh, $poll, sub { $fired = 1 })
                   : AnyEvent->io (fh => $fh, poll => $poll, cb => sub { $fired = 1 })
   };
   unless ($w) { print "$case error\n"; next }
   my $cv = AE::cv;
   my $t = AE::timer 0.05, 0, sub { $cv->send };
   $cv->recv;
   print "$case ", ($fired ? "write" : "none"), "\n";
}
'''

IO_CASES = ["any:r", "any:w", "any:write", "any:read", "any:1", "any:0", "any:",
            "ae:0", "ae:1"]


def _python_io_case(case):
    api, poll = case.split(":", 1)
    poll = int(poll) if poll.isdigit() else poll
    fired = []
    with _pair() as fh:
        try:
            if api == "ae":
                w = AE.io(fh, poll, lambda: fired.append(1))
            else:
                w = AnyEvent.io(fh=fh, poll=poll, cb=lambda: fired.append(1))
        except ValueError:
            return "%s error" % case
        _settle()
        w.cancel()
    return "%s %s" % (case, "write" if fired else "none")


def test_poll_values_match_perl_strict(any_mode):
    # Perl's AnyEvent->io accepts "r"/"w" only under strict mode (without it,
    # what other values mean depends on the backend); the port rejects them always.
    expected = _run_perl(PERL_IO, *IO_CASES, strict_mode=True)
    assert "any:w write" in expected and "any:write error" in expected
    got = "".join(_python_io_case(case) + "\n" for case in IO_CASES)
    assert got == expected


@pytest.mark.parametrize("poll", ["write", "read", "W", 2, -1, None, 0.5, [1]])
def test_invalid_ae_io_poll_is_value_error_in_every_mode(any_mode, poll):
    with socket.socket() as sock:
        with pytest.raises(ValueError, match="poll"):
            AE.io(sock, poll, lambda: None)
        with pytest.raises(ValueError, match="poll"):
            reactor.loop.io(sock, poll, lambda: None)


@pytest.mark.parametrize("poll", ["write", "read", 0, 1, True])
def test_invalid_anyevent_io_poll_is_value_error_in_every_mode(any_mode, poll):
    with socket.socket() as sock:
        with pytest.raises(ValueError, match="AnyEvent.io: poll"):
            AnyEvent.io(fh=sock, poll=poll, cb=lambda: None)


@pytest.mark.parametrize("poll, fires", [(True, True), (False, False), ("w", True), ("r", False)])
def test_loop_io_booleans_and_letters(poll, fires):
    # AE::io's poll is a Perl boolean: the loop takes True/False as 1/0
    fired = []
    with _pair() as fh:
        w = reactor.loop.io(fh, poll, lambda: fired.append(1))
        _settle()
        w.cancel()
    assert bool(fired) is fires


# -- 2. croak -------------------------------------------------------------------

# Perl's $cv->croak keeps only its first argument; recv croaks with it as is.
PERL_CROAK = r'''
use strict; use warnings; use AnyEvent;
$| = 1; binmode STDOUT;
for my $args (["a", "b", "c"], ["caf\xc3\xa9"], ["\xff-bytes"], ["line\n", "extra"]) {
   my $cv = AE::cv;
   $cv->croak (@$args);
   my $ok = eval { $cv->recv; 1 };
   (my $msg = $@) =~ s/ at \S+ line \d+\.\n\z//;
   print "ready=", ($cv->ready ? 1 : 0), " raised=", ($ok ? 0 : 1), " msg=[$msg]\n";
}
'''

CROAK_CASES = [("a", "b", "c"), (b"caf\xc3\xa9",), (b"\xff-bytes",), ("line\n", "extra")]


def _python_croak_case(args):
    cv = AE.cv()
    cv.croak(*args)
    try:
        cv.recv()
    except RuntimeError as exc:
        return "ready=%d raised=1 msg=[%s]\n" % (cv.ready(), exc)
    return "ready=%d raised=0 msg=[]\n" % cv.ready()


def test_croak_arguments_and_bytes_like_perl():
    expected = _run_perl(PERL_CROAK)
    assert "msg=[a]" in expected and "msg=[café]" in expected
    assert "".join(map(_python_croak_case, CROAK_CASES)) == expected


def test_croak_exception_with_extra_arguments_raises_it_unchanged():
    err = KeyError("k")
    cv = AE.cv()
    cv.croak(err, "ignored", 2)
    with pytest.raises(KeyError) as info:
        cv.recv()
    assert info.value is err


def test_croak_bytearray_message_is_text():
    cv = AE.cv()
    cv.croak(bytearray(b"broken pipe"))
    with pytest.raises(RuntimeError, match=r"^broken pipe$"):
        cv.recv()


# -- 3. cancelled timers --------------------------------------------------------

def _recv_raises_at_once(lp):
    start = monotonic()
    with pytest.raises(RuntimeError, match="no watchers"):
        lp.condvar().recv()
    assert monotonic() - start < 0.5


def test_recv_with_only_cancelled_timers_raises_at_once():
    lp = reactor.Loop()
    timers = [lp.timer(delay, 0, lambda: None) for delay in (1, 2, 1.5)]
    for t in timers:
        t.cancel()
    _recv_raises_at_once(lp)
    assert lp._timers == [] and lp._ncancelled == 0


def test_many_cancelled_timers_with_a_live_one_behind_them():
    # (more than 256 cancelled: the heap is also rebuilt on the way)
    lp = reactor.Loop()
    cancelled = [lp.timer(0.01 + i / 1e5, 0, lambda: None) for i in range(300)]
    cv = lp.condvar()
    live = lp.timer(0.1, 0, lambda: cv.send("live"))
    late = lp.timer(5, 0, lambda: None)
    for t in cancelled:
        t.cancel()
    late.cancel()
    assert cv.recv() == "live"
    del live
    _recv_raises_at_once(lp)
    assert lp._ncancelled == 0


def test_cancelled_periodic_timer_is_not_a_watcher():
    lp = reactor.Loop()
    cv = lp.condvar()
    ticks = []

    def tick():  # the first run re-queues the timer (2 s on), then cancels it
        ticks.append(1)
        periodic.cancel()
        cv.send()

    periodic = lp.timer(0, 2, tick)
    cv.recv()
    _recv_raises_at_once(lp)
    assert ticks == [1]


# -- 4. no wait hooks -------------------------------------------------------------

def test_loop_has_no_wait_hooks():
    # recv() only turns the loop: nothing may run before it waits
    assert not hasattr(reactor.Loop(), "wait_hooks")
    assert not hasattr(reactor.loop, "wait_hooks")
