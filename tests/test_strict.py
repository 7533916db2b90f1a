"""Strict mode (AnyEvent::Strict): clear errors for misused facade calls."""

import json
import os
import socket
import subprocess
import sys

import pytest

from anyevent import AE, AnyEvent, strict
from anyevent.reactor import CondVar


@pytest.fixture
def strict_mode():
    was_on = strict.enabled()
    strict.enable()
    yield
    if not was_on:
        strict.disable()


@pytest.fixture
def sock():
    a, b = socket.socketpair()
    yield a
    a.close()
    b.close()


def _noop(*args):
    pass


def _io_on_this_file():
    with open(__file__) as f:
        AE.io(f, 0, _noop)


MISUSES = [
    # (call, exception, words the message must contain)
    (lambda s: AE.timer(1, 0, "not callable"), TypeError, ["AE.timer", "cb"]),
    (lambda s: AE.timer("1", 0, _noop), TypeError, ["after", "'1'"]),
    (lambda s: AE.timer(1, -0.5, _noop), ValueError, ["interval"]),
    (lambda s: AE.timer(0, float("nan"), _noop), ValueError, ["interval", "nan"]),
    (lambda s: AE.timer(True, 0, _noop), TypeError, ["after"]),
    (lambda s: AnyEvent.timer(cb=_noop), TypeError, ["after"]),
    (lambda s: AnyEvent.timer(after=1, cb=_noop, every=2), TypeError, ["every"]),
    (lambda s: AE.io(s, 2, _noop), ValueError, ["poll", "2"]),
    (lambda s: AE.io(s, "rw", _noop), ValueError, ["poll"]),
    (lambda s: AnyEvent.io(fh=s, poll=0, cb=_noop), ValueError, ["AnyEvent.io", "poll"]),
    (lambda s: AE.io(object(), 0, _noop), TypeError, ["fileno"]),
    (lambda s: AE.io(-1, 0, _noop), ValueError, ["closed"]),
    (lambda s: AE.io(999999, 0, _noop), ValueError, ["not open"]),
    (lambda s: _io_on_this_file(), ValueError, ["regular file"]),
    (lambda s: AE.io(s, 0, None), TypeError, ["cb"]),
    (lambda s: AE.signal("NOPE", _noop), ValueError, ["unknown signal", "NOPE"]),
    (lambda s: AE.signal(9999, _noop), ValueError, ["unknown signal"]),
    (lambda s: AE.signal(2.0, _noop), TypeError, ["signal"]),
    (lambda s: AnyEvent.signal(signal="INT", cb=1), TypeError, ["cb"]),
    (lambda s: AE.child("123", _noop), TypeError, ["pid", "'123'"]),
    (lambda s: AnyEvent.child(pid=1.5, cb=_noop), TypeError, ["pid"]),
    (lambda s: AE.idle(42), TypeError, ["AE.idle"]),
    (lambda s: AE.postpone("x"), TypeError, ["AE.postpone"]),
    (lambda s: AE.cv(5), TypeError, ["AE.cv"]),
    (lambda s: AnyEvent.condvar(cb=5), TypeError, ["AnyEvent.condvar"]),
    (lambda s: AE.cv().cb(5), TypeError, ["CondVar.cb"]),
    (lambda s: AE.cv().begin("x"), TypeError, ["CondVar.begin"]),
    (lambda s: AE.log("loud", "msg"), ValueError, ["level"]),
    (lambda s: AE.log("info", b"bytes"), TypeError, ["msg"]),
]


@pytest.mark.parametrize("call,exc,words", MISUSES)
def test_misuse_raises_clear_error(strict_mode, sock, call, exc, words):
    with pytest.raises(exc) as info:
        call(sock)
    for word in words:
        assert word in str(info.value)


def test_correct_calls_still_work(strict_mode, sock):
    assert strict.enabled()
    cv = AE.cv()
    assert isinstance(cv, CondVar)
    ws = [AE.io(sock, "w", _noop), AnyEvent.io(fh=sock.fileno(), poll="r", cb=_noop),
          AE.timer(0, None, _noop), AnyEvent.timer(after=0.0, interval=1, cb=_noop),
          AE.signal("USR1", _noop), AE.idle(_noop),
          AE.child(os.getpid(), _noop), AnyEvent.child(pid=os.getpid(), cb=_noop)]
    t = AE.timer(0.01, 0, cv)
    cv.begin(lambda c: c.send("ok"))
    cv.end()
    assert cv.recv() == "ok"
    assert "strict mode" in AE.timer.__doc__
    AE.log("debug", lambda: "built only when debug is on")  # Perl's lazy message
    del ws, t


def test_disable_restores_unchecked_entries():
    strict.enable()
    strict.enable()  # idempotent
    strict.disable()
    assert not strict.enabled()
    w = AE.timer(-1, 0, _noop)  # accepted without checks
    del w


SCRIPT = r'''
import json
from anyevent import AE, strict
out = {"enabled": strict.enabled()}
try:
    AE.timer(1, 0, "nope")
except TypeError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
'''


@pytest.mark.parametrize("value,on", [("1", True), ("0", False), (None, False)])
def test_environment_variable_enables_strict_mode(value, on):
    env = dict(os.environ)
    env.pop("ANYEVENT_STRICT", None)
    if value is not None:
        env["ANYEVENT_STRICT"] = value
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=20, check=True)
    out = json.loads(res.stdout)
    assert out["enabled"] is on
    if on:
        assert "AE.timer: cb must be callable" in out["error"]
    else:
        assert "error" not in out


PERL_NEGATIVE_AFTER = r'''
use AnyEvent; use AnyEvent::Strict;
my $cv = AE::cv; my $n = 0; my $t;
my $again; $again = sub { $t = AE::timer -0.001, 0, sub { ++$n < 3 ? $again->() : $cv->send } };
$again->();
$cv->recv; print "$n\n";
'''


@pytest.mark.filterwarnings("ignore:the timer watcher made here was dropped")  # (on purpose)
def test_a_negative_after_fires_at_once_as_in_perl(strict_mode):
    """AnyEvent::Handle::UDP re-arms its timeout with the time left, slightly
    negative when the timer fired late: under strict mode Perl accepts it and
    the timer fires at once, every time."""
    fired, cv = [], AE.cv()

    def again():
        fired.append(1)
        if len(fired) < 3:
            holder[0] = AE.timer(-0.001, 0, again)
        else:
            cv.send()
    holder = [AE.timer(-0.001, 0, again)]
    assert AnyEvent.timer(after=-5, cb=_noop) is not None
    cv.recv()
    assert len(fired) == 3
    env = dict(os.environ, PERL_ANYEVENT_STRICT="1")
    perl = subprocess.run(["perl", "-e", PERL_NEGATIVE_AFTER], capture_output=True, text=True,
                          timeout=20, env=env)
    assert perl.stdout == "3\n", perl.stderr


def test_unknown_handle_options_are_kept_under_strict_mode_and_a_misspelt_one_warned(
        strict_mode, sock, monkeypatch):
    """Perl keeps unknown options in the handle's hash (AnyEvent::Redis passes
    encoding and reads it back); strict mode refuses none, but names the
    option a misspelt one was probably meant to be."""
    import warnings

    from anyevent.handle import Handle
    monkeypatch.setenv("ANYEVENT_STRICT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hdl = Handle(fh=sock, encoding="utf-8", close_fh=False)
    assert hdl["encoding"] == "utf-8"
    hdl.destroy()
    with pytest.warns(UserWarning, match="'on_eror'.*'on_error'"):
        hdl = Handle(fh=sock, on_eror=_noop, close_fh=False)
    assert hdl["on_eror"] is _noop
    hdl.destroy()


# -- AnyEvent::Strict's checks, one by one, against Perl's ---------------------------------

#: name: (Perl's call, ours); each either is refused or makes a watcher that is kept
#: for 50 ms while its callbacks are counted
STRICT_CASES = {
    "after negative": ("AnyEvent->timer(after => -1, cb => $cb)",
                       lambda: AnyEvent.timer(after=-1, cb=_count)),
    "after inf": ("AnyEvent->timer(after => 9**9**9, cb => $cb)",
                  lambda: AnyEvent.timer(after=float("inf"), cb=_count)),
    "after nan": ("AnyEvent->timer(after => 'nan' + 0, cb => $cb)",
                  lambda: AnyEvent.timer(after=float("nan"), cb=_count)),
    "after missing": ("AnyEvent->timer(cb => $cb)", lambda: AnyEvent.timer(cb=_count)),
    "interval negative": ("AnyEvent->timer(after => 0, interval => -1, cb => $cb)",
                          lambda: AnyEvent.timer(after=0, interval=-1, cb=_count)),
    "interval nan": ("AnyEvent->timer(after => 0, interval => 'nan' + 0, cb => $cb)",
                     lambda: AnyEvent.timer(after=0, interval=float("nan"), cb=_count)),
    "interval inf": ("AnyEvent->timer(after => 0, interval => 9**9**9, cb => $cb)",
                     lambda: AnyEvent.timer(after=0, interval=float("inf"), cb=_count)),
    "interval 0": ("AnyEvent->timer(after => 0, interval => 0, cb => $cb)",
                   lambda: AnyEvent.timer(after=0, interval=0, cb=_count)),
    "timer extra": ("AnyEvent->timer(after => 0, every => 1, cb => $cb)",
                    lambda: AnyEvent.timer(after=0, every=1, cb=_count)),
    "timer cb": ("AnyEvent->timer(after => 0, cb => 'x')",
                 lambda: AnyEvent.timer(after=0, cb="x")),
    "child negative": ("AnyEvent->child(pid => -5, cb => $cb)",
                       lambda: AnyEvent.child(pid=-5, cb=_count)),
    "child any": ("AnyEvent->child(pid => 0, cb => $cb)",
                  lambda: AnyEvent.child(pid=0, cb=_count)),
    "child fraction": ("AnyEvent->child(pid => 1.5, cb => $cb)",
                       lambda: AnyEvent.child(pid=1.5, cb=_count)),
    "signal name": ("AnyEvent->signal(signal => 'USR2', cb => $cb)",
                    lambda: AnyEvent.signal(signal="USR2", cb=_count)),
    "signal unknown": ("AnyEvent->signal(signal => 'NOPE', cb => $cb)",
                       lambda: AnyEvent.signal(signal="NOPE", cb=_count)),
    "io poll rw": ("AnyEvent->io(fh => $sock, poll => 'rw', cb => $cb)",
                   lambda: AnyEvent.io(fh=_SOCK[0], poll="rw", cb=_count)),
    "io fd number": ("AnyEvent->io(fh => fileno $sock, poll => 'w', cb => $cb)",
                     lambda: AnyEvent.io(fh=_SOCK[0].fileno(), poll="w", cb=_count)),
    "io closed": ("AnyEvent->io(fh => $closed, poll => 'r', cb => $cb)",
                  lambda: AnyEvent.io(fh=-1, poll="r", cb=_count)),
    "io regular file": ("AnyEvent->io(fh => $file, poll => 'r', cb => $cb)",
                        lambda: AnyEvent.io(fh=_SOCK[1], poll="r", cb=_count)),
    "idle cb": ("AnyEvent->idle(cb => 'x')", lambda: AnyEvent.idle(cb="x")),
    "condvar cb": ("AnyEvent->condvar(cb => 'x')", lambda: AnyEvent.condvar(cb="x")),
}

PERL_STRICT = r"""
use AnyEvent; use AnyEvent::Strict; use Socket;
socketpair my $sock, my $peer, AF_UNIX, SOCK_STREAM, 0;
open my $file, "<", $0; open my $closed, "<", "/dev/null"; close $closed;
my $n; my $cb = sub { $n++ };
my %cases = (CASES);
for my $name (sort keys %cases) {
   $n = 0;
   my $w = eval { $cases{$name}->() };
   if ($@) { print "$name\trefused\n"; next }
   my $cv = AE::cv; my $t = AE::timer 0.05, 0, sub { $cv->send }; $cv->recv;
   print "$name\t", ($n ? "fired" : "silent"), "\n";
}
"""

_SOCK: list = []
_fired = [0]


def _count(*args):
    _fired[0] += 1


def _ours(call):
    _fired[0] = 0
    try:
        w = call()
    except (TypeError, ValueError):
        return "refused"
    cv = AE.cv()
    t = AE.timer(0.05, 0, cv)
    cv.recv()
    del w, t
    return "fired" if _fired[0] else "silent"


def test_strict_mode_accepts_and_refuses_what_perls_does(strict_mode, tmp_path):
    """Every check of AnyEvent::Strict, run in Perl and here: refused by both, or
    accepted by both with the same outcome (fires, or stays silent)."""
    cases = ",\n".join("'%s' => sub { %s }" % (name, perl)
                       for name, (perl, _) in STRICT_CASES.items())
    res = subprocess.run(["perl", "-e", PERL_STRICT.replace("CASES", cases)], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, PERL_ANYEVENT_STRICT="1"))
    perl = dict(line.split("\t") for line in res.stdout.splitlines())
    assert perl.keys() == STRICT_CASES.keys(), res.stderr
    a, b = socket.socketpair()
    regular = open(tmp_path / "regular", "w")
    _SOCK[:] = [a, regular]
    try:
        ours = {name: _ours(call) for name, (_, call) in STRICT_CASES.items()}
    finally:
        a.close(), b.close(), regular.close()
    assert ours == perl


def test_what_python_accepts_beyond_perl(strict_mode):
    """Perl's strict mode wants a signal's name without "SIG"; Python's own names
    (signal.SIGINT is an int named "SIGINT") are accepted too."""
    import signal
    ws = [AE.signal(signal.SIGUSR2, _noop), AE.signal("SIGUSR2", _noop),
          AnyEvent.condvar(cb=None)]
    del ws


PERL_CLOSED_FD = r"""
use AnyEvent; use AnyEvent::Strict; use Socket; use POSIX ();
socketpair my $a, my $b, AF_UNIX, SOCK_STREAM, 0;
my $w = AnyEvent->io(fh => $a, poll => "r", cb => sub {});
POSIX::close(fileno $a);
my $cv = AE::cv; my $t = AE::timer 4.5, 0, sub { $cv->send }; $cv->recv;
"""


def test_a_watched_fd_closed_behind_the_loops_back_is_logged_as_in_perl(strict_mode, caplog):
    """AnyEvent::Strict looks at the watched fds every 4 s and logs one closed
    under its watcher at critical; so do we, for every watcher of the loop."""
    perl = subprocess.Popen(["perl", "-e", PERL_CLOSED_FD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    a, b = socket.socketpair()
    fd = os.dup2(a.fileno(), 500)     # a number the loop's own new fds will not reuse
    a.close()
    w = AE.io(fd, 0, _noop)
    os.close(fd)
    cv = AE.cv()
    t = AE.timer(strict.FD_CHECK_INTERVAL + 0.5, 0, cv)
    cv.recv()
    del w, t
    b.close()
    out, err = perl.communicate(timeout=30)
    want = ("File descriptor %d registered with AnyEvent but prematurely closed, event loop "
            "might malfunction.")
    assert want % 3 in err
    lines = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert ("CRIT", "anyevent.strict", want % fd) in lines, lines
