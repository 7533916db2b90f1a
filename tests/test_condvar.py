"""Condition variables (AnyEvent t/04_condvar.t, begin/end from t/09_multi.t),
plus a side-by-side run of the same scenario through Perl's AnyEvent."""

import os
import subprocess
import sys
import textwrap

import pytest

from anyevent import AE, AnyEvent
from conftest import require_tool, own_loop_only


def test_cb_recv_inside_cb_like_04_condvar():
    out = []
    cv = AnyEvent.condvar()

    def on_ready(c):
        out.append(("ready", c.ready()))
        out.append(("recv", c.recv()))
        out.append(("again", cv.recv()))

    cv.cb(on_ready)
    t = AnyEvent.timer(after=0, cb=lambda: (out.append("timer"), cv.send(7, 5)))
    assert cv.recv() == (7, 5)
    assert out == ["timer", ("ready", True), ("recv", (7, 5)), ("again", (7, 5))]
    assert cv.recv() == (7, 5)  # recv again gives the same
    del t


def test_croak_wins_over_later_send():
    out = []
    cv = AE.cv()

    def on_ready(c):
        with pytest.raises(RuntimeError, match="^kill$"):
            c.recv()
        out.append("cb")

    cv.cb(on_ready)

    def fire():
        cv.croak("kill")
        out.append("croaked")
        cv.send(8, 6, 4)  # the callback is not called again
        out.append("sent")

    t = AE.timer(0, 0, fire)
    with pytest.raises(RuntimeError, match="^kill$"):
        cv.recv()
    assert out == ["cb", "croaked", "sent"]
    del t


def test_croak_with_exception_instance():
    cv = AE.cv()
    err = ConnectionRefusedError(111, "Connection refused")
    cv.croak(err)
    with pytest.raises(ConnectionRefusedError) as info:
        cv.recv()
    assert info.value is err


def test_condvar_is_a_callback():
    cv = AE.cv()
    t = AnyEvent.timer(after=0, cb=cv)
    assert cv.recv() is None
    cv2 = AE.cv()
    cv2("one")
    assert cv2.recv() == "one" and cv2.ready()
    del t


def test_cb_set_after_ready_runs_at_once_and_is_read_back():
    cv = AE.cv()
    seen = []
    f = seen.append
    assert cv.cb(f) is f and cv.cb() is f
    cv.send()
    assert seen == [cv] and cv.cb() is None
    assert cv.cb(f) is None  # ready: runs at once, nothing left pending
    assert seen == [cv, cv]


def test_constructor_callback():
    seen = []
    cv = AE.cv(lambda c: seen.append(c.recv()))
    cv.send(3)
    assert seen == [3]
    cv2 = AnyEvent.condvar(cb=lambda c: seen.append("kw"))
    cv2.send()
    assert seen == [3, "kw"]


def test_begin_end_group_with_callback():
    # the documented pattern: the outer begin holds the group open while jobs start
    results = {}
    cv = AE.cv()
    cv.begin(lambda c: c.send(dict(results)))
    timers = []
    for i, delay in enumerate([0.02, 0, 0.01]):
        cv.begin()

        def done(i=i):
            results[i] = True
            cv.end()

        timers.append(AE.timer(delay, 0, done))
    cv.end()
    assert not cv.ready()
    assert cv.recv() == {0: True, 1: True, 2: True}
    del timers


def test_end_without_begin_sends_nothing():
    # as Perl: only a count reaching exactly zero sends
    cv = AE.cv()
    cv.end()
    assert not cv.ready()
    cv.begin()
    assert not cv.ready()
    cv.begin()
    cv.end()
    assert cv.ready()


@own_loop_only("recv() cannot nest inside a callback (it raises, see test_models)")
def test_recv_nested_inside_callback():
    out = []
    outer = AE.cv()
    inner = AE.cv()

    def first():
        out.append("first")
        out.append(("inner got", inner.recv()))  # runs the loop nested
        outer.send("done")

    t1 = AE.timer(0, 0, first)
    t2 = AE.timer(0.02, 0, lambda: (out.append("second"), inner.send(42)))
    assert outer.recv() == "done"
    assert out == ["first", "second", ("inner got", 42)]
    del t1, t2


def test_exception_in_condvar_callback_is_reported(callback_errors):
    cv = AE.cv(lambda c: 1 / 0)
    cv.send()
    assert cv.ready()
    assert [(w, type(e)) for w, e in callback_errors] == [("condvar", ZeroDivisionError)]


def test_broadcast_and_wait_aliases():
    cv = AE.cv()
    cv.broadcast(1)
    assert cv.wait() == 1


# -- the same scenario through Perl and Python ---------------------------------
# (Perl croaks on a recv() nested inside a callback while an outer recv() waits:
# "recursive blocking wait attempted".  The port allows it, see above, so the
# shared scenario chains callbacks instead.)

PERL = r'''
use strict; use warnings;
use AnyEvent; use AnyEvent::Impl::Perl;
$| = 1;
my @w;
my $cv = AE::cv;
$cv->begin (sub { print "group done\n"; $_[0]->send ("all") });
for my $i (1 .. 3) {
   $cv->begin;
   push @w, AE::timer 0.03 * (4 - $i), 0, sub { print "timer $i\n"; $cv->end };
}
push @w, AE::timer 0, 0, sub { print "zero a\n" };
AE::postpone { print "postponed 1\n" };
push @w, AE::timer 0, 0, sub { print "zero b\n"; AE::postpone { print "postponed 2\n" } };
push @w, AE::timer 0.01, 0, sub {
   print "cb chain start\n";
   my $inner = AE::cv;
   $inner->cb (sub { print "cb chain got ", $_[0]->recv, "\n" });
   push @w, AE::timer 0.01, 0, sub { print "inner timer\n"; $inner->send (5) };
};
$cv->cb (sub { print "cb sees ", $_[0]->recv, "\n" });
$cv->end;
print "recv ", $cv->recv, "\n";
my $cv2 = AE::cv;
$cv2->end;
print "stray end ready ", ($cv2->ready ? 1 : 0), "\n";
$cv2->begin; $cv2->begin; $cv2->end;
print "after begin begin end ready ", ($cv2->ready ? 1 : 0), "\n";
'''

PYTHON = r'''
from anyevent import AE
w = []
cv = AE.cv()
cv.begin(lambda c: (print("group done"), c.send("all")))
for i in range(1, 4):
    cv.begin()
    w.append(AE.timer(0.03 * (4 - i), 0, lambda i=i: (print("timer %d" % i), cv.end())))
w.append(AE.timer(0, 0, lambda: print("zero a")))
AE.postpone(lambda: print("postponed 1"))
w.append(AE.timer(0, 0, lambda: (print("zero b"), AE.postpone(lambda: print("postponed 2")))))
def chain():
    print("cb chain start")
    inner = AE.cv()
    inner.cb(lambda c: print("cb chain got", c.recv()))
    w.append(AE.timer(0.01, 0, lambda: (print("inner timer"), inner.send(5))))
w.append(AE.timer(0.01, 0, chain))
cv.cb(lambda c: print("cb sees", c.recv()))
cv.end()
print("recv", cv.recv())
cv2 = AE.cv()
cv2.end()
print("stray end ready", int(cv2.ready()))
cv2.begin(); cv2.begin(); cv2.end()
print("after begin begin end ready", int(cv2.ready()))
'''


@pytest.mark.parametrize("debug", ["0", "1"])
def test_same_output_as_perl_anyevent(debug):
    """Also in the debug mode, whose import must not leave the loop's cached
    time stale (the 0.01 s timer would then run before "postponed 2")."""
    perl = require_tool("perl")
    expected = subprocess.run([perl, "-e", PERL], capture_output=True, text=True,
                              timeout=20, check=True).stdout
    got = subprocess.run([sys.executable, "-c", textwrap.dedent(PYTHON)],
                         capture_output=True, text=True, timeout=20, check=True,
                         env=dict(os.environ, ANYEVENT_DEBUG=debug)).stdout
    assert "timer 3" in expected and "postponed 2" in expected
    assert got == expected


def test_a_condvar_carries_user_data_as_perls_hash_does():
    """Perl code keeps its own state in the condvar (``$cv->{wanted} = 3``)."""
    from anyevent import AE
    cv = AE.cv()
    cv["wanted"] = 3
    cv.got = []
    assert cv["wanted"] == cv.wanted == 3 and cv["got"] == []
    assert "wanted" in cv and "missing" not in cv
    del cv["wanted"]
    with pytest.raises(KeyError):
        cv["wanted"]
    for own in ("send", "recv", "_ready"):
        with pytest.raises(KeyError):
            cv[own] = 1
    cv.send(1)
    assert cv.recv() == 1 and cv["got"] == []
