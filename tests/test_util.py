"""anyevent.util: pipes, socketpairs, fh_nonblocking, guard, close_all_fds_except,
run_cmd and fork_call, with run_cmd checked side by side against Perl's AnyEvent::Util."""

import errno
import fcntl
import os
import pickle
import socket
import subprocess
import sys
import time

import pytest

import anyevent.util as util
from anyevent import AE
from anyevent.util import (close_all_fds_except, fh_nonblocking, fork_call, fork_error,
                           guard, portable_pipe, portable_socketpair, run_cmd)
from conftest import require_tool

BIG = os.urandom(1 << 20)  # 1 MiB: larger than any pipe buffer, forces partial I/O


def exit_code(status):
    return os.waitstatus_to_exitcode(status)


def run(cmd, **kw):
    """run_cmd and wait; return the exit code."""
    return exit_code(run_cmd(cmd, **kw).recv())


# ---------------------------------------------------------------------------
# pipes, socketpairs, blocking mode
# ---------------------------------------------------------------------------

def test_portable_pipe_is_a_blocking_cloexec_pipe_with_watchable_ends():
    r, w = portable_pipe()
    assert os.get_blocking(r.fileno()) and not os.get_inheritable(r.fileno())
    assert not os.get_inheritable(w.fileno())
    got = AE.cv()
    watcher = AE.io(r, 0, lambda: got.send(r.read(100)))
    w.write(b"ping")
    assert got.recv() == b"ping"
    del watcher
    w.close()
    assert r.read(1) == b""
    r.close()


def test_portable_socketpair_is_bidirectional_and_blocking():
    a, b = portable_socketpair()
    assert a.family == socket.AF_UNIX and a.type == socket.SOCK_STREAM
    assert a.gettimeout() is None and os.get_blocking(b.fileno())
    a.sendall(b"to b")
    b.sendall(b"to a")
    assert b.recv(10) == b"to b" and a.recv(10) == b"to a"
    a.close()
    b.close()


def test_fh_nonblocking_on_socket_file_and_fd(tmp_path):
    a, b = portable_socketpair()
    fh_nonblocking(a, True)
    assert a.gettimeout() == 0.0 and not os.get_blocking(a.fileno())
    with pytest.raises(BlockingIOError):
        a.recv(1)
    fh_nonblocking(a, False)
    assert a.gettimeout() is None and os.get_blocking(a.fileno())

    r, w = portable_pipe()
    fh_nonblocking(r, 1)
    assert r.read(1) is None  # FileIO's "would block"
    fh_nonblocking(r.fileno(), 0)
    assert os.get_blocking(r.fileno())

    with open(tmp_path / "f", "ab") as f:
        fh_nonblocking(f, True)
        assert not os.get_blocking(f.fileno())
        assert fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & os.O_APPEND  # other flags kept
    with pytest.raises(OSError) as exc:
        fh_nonblocking(w.fileno() + 1000, True)
    assert exc.value.errno == errno.EBADF
    for fh in (a, b, r, w):
        fh.close()


# ---------------------------------------------------------------------------
# guard
# ---------------------------------------------------------------------------

def test_guard_runs_once_when_dropped():
    ran = []
    g = guard(lambda: ran.append(1))
    g2 = g
    del g
    assert ran == []
    del g2
    assert ran == [1]


def test_guard_cancel_and_context_manager():
    ran = []
    g = guard(lambda: ran.append("cancelled"))
    g.cancel()
    del g
    with guard(lambda: ran.append("with")) as g:
        assert ran == []
    assert ran == ["with"]
    del g
    assert ran == ["with"]  # not a second time


def test_guard_exception_is_reported_not_raised(callback_errors):
    g = guard(lambda: 1 / 0)
    del g
    assert [(where, type(exc)) for where, exc in callback_errors] == [("guard", ZeroDivisionError)]


# ---------------------------------------------------------------------------
# close_all_fds_except
# ---------------------------------------------------------------------------

def test_close_all_fds_except_keeps_only_the_listed_fds():
    keep_r, keep_w = os.pipe()
    other_r, other_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            close_all_fds_except(0, 1, 2, keep_w)
            alive = [fd for fd in (keep_r, keep_w, other_r, other_w) if _is_open(fd)]
            os._exit(0 if alive == [keep_w] else 1)
        finally:
            os._exit(2)
    for fd in (keep_r, keep_w, other_r, other_w):
        os.close(fd)
    done = AE.cv()
    w = AE.child(pid, lambda pid, status: done.send(status))
    assert exit_code(done.recv()) == 0
    del w


def _is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------
# run_cmd: command forms and exit status
# ---------------------------------------------------------------------------

def test_shell_string_versus_argv():
    out = bytearray()
    assert run("echo $((6*7)) | tr 4 X", **{">": out}) == 0
    assert out == b"X2\n"
    out.clear()
    assert run(["echo", "$((6*7))", "|"], **{">": out}) == 0
    assert out == b"$((6*7)) |\n"


def test_exit_status_is_the_raw_wait_status():
    status = run_cmd(["sh", "-c", "exit 7"]).recv()
    assert os.WIFEXITED(status) and status >> 8 == 7
    status = run_cmd(["sh", "-c", "kill -TERM $$"]).recv()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 15


def test_child_failures_before_exec_use_perls_exit_codes(tmp_path):
    assert run(["cat"], **{"<": str(tmp_path / "missing")}) == 125
    assert run([str(tmp_path / "no-such-program")]) == 126
    assert run(["true"], on_prepare=lambda: 1 / 0) == 123
    assert run("no-such-program-anywhere 2>/dev/null") == 127  # the shell's verdict


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="unknown option"):
        run_cmd(["true"], bogus=1)
    with pytest.raises(TypeError, match="1>"):
        run_cmd(["true"], **{">": b"bytes cannot receive output"})
    with pytest.raises(TypeError, match="0<"):
        run_cmd(["true"], **{"<": 3.5})
    with pytest.raises(TypeError, match="pid"):
        run_cmd(["true"], pid=0)
    with pytest.raises(ValueError):
        run_cmd([])


# ---------------------------------------------------------------------------
# run_cmd: output redirections (">" and "2>") of every kind
# ---------------------------------------------------------------------------

WRITE_BOTH = ["sh", "-c", "printf out; printf err >&2"]


@pytest.mark.parametrize("key,expect", [(">", b"out"), ("2>", b"err")])
def test_output_to_file_name_truncates(tmp_path, key, expect):
    path = tmp_path / "o"
    path.write_bytes(b"old contents that must go")
    assert run(WRITE_BOTH, **{key: str(path), "1>" if key == "2>" else "2>": os.devnull}) == 0
    assert path.read_bytes() == expect
    assert run(WRITE_BOTH, **{key: path, "1>" if key == "2>" else "2>": os.devnull}) == 0  # PathLike


@pytest.mark.parametrize("key,expect", [(">", b"out"), ("2>", b"err")])
def test_output_to_file_object_and_fd(tmp_path, key, expect):
    with open(tmp_path / "o", "wb") as f:
        assert run(WRITE_BOTH, **{key: f, "1>" if key == "2>" else "2>": os.devnull}) == 0
    assert (tmp_path / "o").read_bytes() == expect
    r, w = os.pipe()
    assert run(WRITE_BOTH, **{key: w, "1>" if key == "2>" else "2>": os.devnull}) == 0
    os.close(w)
    assert os.read(r, 100) == expect
    os.close(r)


@pytest.mark.parametrize("key,expect", [(">", b"out"), ("2>", b"err")])
def test_output_to_callback_gets_chunks_then_none(key, expect):
    calls = []
    assert run(WRITE_BOTH, **{key: calls.append, "1>" if key == "2>" else "2>": os.devnull}) == 0
    assert calls[-1] is None and None not in calls[:-1]
    assert b"".join(calls[:-1]) == expect


def test_output_callback_receives_a_large_stream_intact():
    chunks = []
    assert run(["cat"], **{"<": BIG, ">": chunks.append}) == 0
    assert chunks.pop() is None
    assert b"".join(chunks) == BIG and len(chunks) > 1


def test_same_bytearray_for_stdout_and_stderr():
    both = bytearray()
    assert run(WRITE_BOTH, **{">": both, "2>": both}) == 0
    assert sorted([bytes(both[:3]), bytes(both[3:])]) == [b"err", b"out"]


def test_any_fd_number_can_be_redirected():
    three = bytearray()
    out = bytearray()
    assert run(["sh", "-c", "cat <&4 >&3"], **{"3>": three, "4<": b"via fd 4", ">": out}) == 0
    assert three == b"via fd 4" and out == b""


def test_redirecting_a_fd_onto_itself_clears_close_on_exec():
    r, w = os.pipe()  # close-on-exec, as Python makes every fd
    out = bytearray()
    assert run(["sh", "-c", "echo through >/dev/fd/%d" % w], **{"%d>" % w: w, ">": out}) == 0
    os.close(w)
    assert os.read(r, 100) == b"through\n"
    os.close(r)


# ---------------------------------------------------------------------------
# run_cmd: input redirections ("<") of every kind
# ---------------------------------------------------------------------------

def test_input_from_bytes_large():
    out = bytearray()
    assert run(["cat"], **{"<": BIG, ">": out}) == 0
    assert out == BIG


def test_input_from_file_name_and_file_object(tmp_path):
    path = tmp_path / "in"
    path.write_bytes(b"from a file\n")
    out = bytearray()
    assert run(["cat"], **{"<": str(path), ">": out}) == 0
    with open(path, "rb") as f:
        assert run(["cat"], **{"<": f, ">": out}) == 0
    assert out == b"from a file\n" * 2


def test_input_from_callback_until_none():
    chunks = [b"one ", b"two ", b"three"]
    calls = []

    def produce():
        calls.append(1)
        return chunks.pop(0) if chunks else None

    out = bytearray()
    cv = run_cmd(["cat"], **{"<": produce, ">": out})
    assert len(calls) == 1  # the first chunk is asked for at once, as in Perl
    assert exit_code(cv.recv()) == 0
    assert out == b"one two three" and len(calls) == 4


def test_input_to_a_child_that_does_not_read_ends_quietly():
    assert run(["true"], **{"<": BIG}) == 0
    assert run(["true"], **{"<": lambda: b"x" * 65536}) == 0  # endless producer


def test_child_gets_default_sigpipe():
    out = bytearray()
    assert run(["grep", "^SigIgn", "/proc/self/status"], **{">": out}) == 0
    ignored = int(out.split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE ignored in the child"


# ---------------------------------------------------------------------------
# run_cmd: on_prepare, close_all, pid, completion rules
# ---------------------------------------------------------------------------

def test_on_prepare_runs_in_the_child_before_exec(tmp_path):
    out = bytearray()
    before = os.getcwd()
    assert run(["pwd"], on_prepare=lambda: os.chdir(tmp_path), **{">": out}) == 0
    assert out.decode().strip() == str(tmp_path) and os.getcwd() == before


def test_close_all_closes_inherited_fds_but_not_redirected_ones():
    r, w = os.pipe()
    os.set_inheritable(w, True)
    probe = "for fd in %d 3; do [ -e /proc/$$/fd/$fd ] && echo $fd open || echo $fd closed; done" % w
    out = bytearray()
    assert run(["sh", "-c", probe], **{">": out, "3>": os.devnull}) == 0
    assert out == b"%d open\n3 open\n" % w
    out.clear()
    assert run(["sh", "-c", probe], close_all=True, **{">": out, "3>": os.devnull}) == 0
    assert out == b"%d closed\n3 open\n" % w
    os.close(r)
    os.close(w)


def test_pid_out_as_list_callable_and_perl_key():
    for how in ("list", "callable", "$$"):
        pids = []
        out = bytearray()
        opts = {">": out}
        if how == "list":
            opts["pid"] = pids
        elif how == "callable":
            opts["pid"] = pids.append
        else:
            opts["$$"] = pids
        cv = run_cmd(["sh", "-c", "echo $$"], **opts)
        assert len(pids) == 1  # known as soon as run_cmd returns
        cv.recv()
        assert int(out) == pids[0]


def test_status_waits_for_eof_of_every_output():
    out = bytearray()
    start = time.monotonic()
    # the shell exits at once; its background job keeps stdout open a while
    assert run(["sh", "-c", "(sleep 0.3; echo late) & exit 0"], **{">": out}) == 0
    assert out == b"late\n" and time.monotonic() - start >= 0.25


def test_loop_keeps_running_while_a_command_runs():
    ticks = []
    t = AE.timer(0.02, 0.02, lambda: ticks.append(1))
    assert run(["sleep", "0.2"]) == 0
    assert len(ticks) >= 2  # the loop ran while the child slept
    del t


def test_job_continues_when_the_condvar_is_dropped():
    chunks = []
    done = AE.cv()
    run_cmd(["sh", "-c", "sleep 0.05; echo kept"],
            **{">": lambda data: (chunks.append(data), data is None and done.send())})
    done.recv()
    assert chunks == [b"kept\n", None]


# ---------------------------------------------------------------------------
# run_cmd: the same scenarios through Perl's AnyEvent::Util
# ---------------------------------------------------------------------------

PERL_SCENARIOS = r'''
use AnyEvent; use AnyEvent::Util;
my $dir = shift;
sub show { my $s = shift; print join("|", map { defined ? $_ : "undef" } $s >> 8, $s & 127, @_), "\n" }
my @err;
my $st = run_cmd([qw(sh -c), 'tr a-z A-Z; echo oops >&2; exit 5'],
   "<", \"hello world\n", ">", \my $out,
   "2>", sub { push @err, defined $_[0] ? "chunk:$_[0]" : "EOF" })->recv;
show $st, $out, @err;
$st = run_cmd('echo $((6*7)) | tr 4 X', ">", \my $o2)->recv; show $st, $o2;
show run_cmd([qw(cat)], "<", "$dir/missing")->recv;
show run_cmd(["$dir/no-such-program"])->recv;
show run_cmd([qw(true)], on_prepare => sub { die "x" })->recv;
$st = run_cmd([qw(sh -c), 'echo three >&3; echo one'], "3>", \my $o3, ">", "$dir/perl.out")->recv;
open my $fh, "<", "$dir/perl.out"; show $st, $o3, scalar <$fh>;
my @in = ("a\n", "bb\n", "ccc\n");
$st = run_cmd([qw(wc -l)], "<", sub { shift @in }, ">", \my $o4)->recv; show $st, $o4;
show run_cmd([qw(sh -c), 'kill -KILL $$'])->recv;
'''


def python_scenarios(d):
    lines = []

    def show(status, *fields):
        lines.append("|".join(str(f) for f in (status >> 8, status & 127) + fields))

    err, out = [], bytearray()
    st = run_cmd(["sh", "-c", "tr a-z A-Z; echo oops >&2; exit 5"],
                 **{"<": b"hello world\n", ">": out,
                    "2>": lambda d: err.append("EOF" if d is None else "chunk:" + d.decode())}).recv()
    show(st, out.decode(), *err)
    o2 = bytearray()
    show(run_cmd("echo $((6*7)) | tr 4 X", **{">": o2}).recv(), o2.decode())
    show(run_cmd(["cat"], **{"<": d + "/missing"}).recv())
    show(run_cmd([d + "/no-such-program"]).recv())
    show(run_cmd(["true"], on_prepare=lambda: 1 / 0).recv())
    o3 = bytearray()
    st = run_cmd(["sh", "-c", "echo three >&3; echo one"], **{"3>": o3, ">": d + "/py.out"}).recv()
    with open(d + "/py.out") as f:
        show(st, o3.decode(), f.readline())
    chunks = [b"a\n", b"bb\n", b"ccc\n"]
    o4 = bytearray()
    show(run_cmd(["wc", "-l"], **{"<": lambda: chunks.pop(0) if chunks else None, ">": o4}).recv(),
         o4.decode())
    show(run_cmd(["sh", "-c", "kill -KILL $$"]).recv())
    return "\n".join(lines) + "\n"


def test_run_cmd_matches_perl(tmp_path):
    perl = require_tool("perl")
    got_perl = subprocess.run([perl, "-e", PERL_SCENARIOS, str(tmp_path)], capture_output=True,
                              text=True, timeout=20, check=True).stdout
    assert python_scenarios(str(tmp_path)) == got_perl
    assert got_perl.startswith("5|0|HELLO WORLD\n|chunk:oops\n|EOF\n")


# ---------------------------------------------------------------------------
# fork_call
# ---------------------------------------------------------------------------

def fork_and_wait(code, *args):
    """fork_call and wait; return (callback args, fork_error())."""
    cv = AE.cv()
    fork_call(code, *args, lambda *res: cv.send(res, fork_error()))
    return cv.recv()


def test_fork_call_runs_in_a_child_and_returns_values():
    parent = os.getpid()
    assert fork_and_wait(lambda a, b: (os.getpid() != parent, a + b), 2, 3) == ((True, 5), None)
    assert fork_and_wait(lambda: {"k": [1, b"x"]}) == (({"k": [1, b"x"]},), None)
    assert fork_and_wait(lambda: None) == ((None,), None)  # one argument, unlike an error


def test_fork_call_large_result():
    assert fork_and_wait(lambda: BIG) == ((BIG,), None)


def test_fork_call_with_keyword_callback():
    cv = AE.cv()
    fork_call(len, "four", cb=cv)
    assert cv.recv() == 4


def test_fork_call_exception_gives_no_args_and_fork_error():
    def fails(msg):
        raise KeyError(msg)

    res, err = fork_and_wait(fails, "lost")
    assert res == () and isinstance(err, KeyError) and err.args == ("lost",)
    assert "in fails" in str(err.__cause__)  # the child's traceback comes along
    assert fork_and_wait(lambda: 1) == ((1,), None)  # cleared for the next call


class NeedsTwoArgs(Exception):
    def __init__(self, a, b):
        super().__init__("%s/%s" % (a, b))


def test_fork_call_exception_that_cannot_be_rebuilt():
    def fails():
        raise NeedsTwoArgs(1, 2)

    res, err = fork_and_wait(fails)
    assert res == () and type(err) is RuntimeError and "NeedsTwoArgs('1/2')" in str(err)
    assert "in fails" in str(err.__cause__)


def test_fork_call_unpicklable_result_and_dead_child():
    res, err = fork_and_wait(lambda: (lambda: 0))
    assert res == () and isinstance(err, (pickle.PicklingError, AttributeError, TypeError))
    res, err = fork_and_wait(os._exit, 3)
    assert res == () and isinstance(err, ChildProcessError) and "768" in str(err)




def test_fork_call_child_does_not_disturb_the_parents_loop():
    a, b = portable_socketpair()
    got = AE.cv()
    w = AE.io(a, 0, lambda: got.send(a.recv(10)))

    def child():
        w.cancel()  # in the child only: must not touch the parent's epoll set
        return "done"

    assert fork_and_wait(child) == (("done",), None)
    b.send(b"still")
    t = AE.timer(2, 0, lambda: got.send("timeout"))
    assert got.recv() == b"still"
    del w, t
    a.close()
    b.close()


def count_children(parent):
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                n += 1
    return n


def test_fork_call_never_runs_more_than_max_forks(monkeypatch):
    monkeypatch.setattr(util, "MAX_FORKS", 3)
    parent = os.getpid()
    others = count_children(parent)  # servers started by other tests' fixtures

    def job(i):
        seen = count_children(parent)  # zombies not yet reaped count too
        time.sleep(0.05)
        return i, max(seen, count_children(parent))

    results = {}
    cv = AE.cv()
    for i in range(10):
        cv.begin()
        fork_call(job, i, lambda i, seen: (results.__setitem__(i, seen), cv.end()))
    assert util._forks == 3 and len(util._fork_queue) == 7  # queued, not blocking
    cv.recv()
    assert sorted(results) == list(range(10))
    assert max(results.values()) - others <= 3
    assert max(results.values()) - others >= 2  # they did run side by side
    assert util._forks == 0 and not util._fork_queue


def test_max_forks_from_environment():
    code = "import anyevent.util as u; print(u.MAX_FORKS)"
    for value, expect in (("4", "4"), ("0", "10"), ("junk", "10")):
        env = dict(os.environ, ANYEVENT_MAX_FORKS=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             cwd=os.path.dirname(os.path.dirname(util.__file__)),
                             text=True, check=True, timeout=20).stdout
        assert out.strip() == expect


def test_fork_failure_is_reported_through_the_callback(monkeypatch):
    def no_fork():
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", no_fork)
    res, err = fork_and_wait(lambda: 1)
    assert res == () and isinstance(err, OSError) and err.errno == errno.EAGAIN
    assert util._forks == 0


PERL_FORK_CALLS = r'''
use AnyEvent; use AnyEvent::Util;
$AnyEvent::Util::MAX_FORKS = 2;
my $cv = AE::cv;
my @jobs = (sub { (1, "two", 3) }, sub { () }, sub { "one" }, sub { die "boom\n" }, sub { (undef) });
for my $i (0..$#jobs) {
   $cv->begin;
   fork_call { $jobs[$i]->() } sub {
      printf "job%d n=%d err=%d first=%s\n", $i, scalar @_, defined $@ ? 1 : 0,
         defined $_[0] ? $_[0] : "undef";
      $cv->end;
   };
}
$cv->recv;
'''


def test_fork_call_matches_perl(monkeypatch):
    perl = require_tool("perl")
    got_perl = subprocess.run([perl, "-e", PERL_FORK_CALLS], capture_output=True, text=True,
                              timeout=20, check=True).stdout
    monkeypatch.setattr(util, "MAX_FORKS", 2)

    def boom():
        raise RuntimeError("boom")

    jobs = [lambda: (1, "two", 3), lambda: (), lambda: "one", boom, lambda: None]
    lines = []
    cv = AE.cv()
    for i, job in enumerate(jobs):
        cv.begin()
        fork_call(job, lambda *res, i=i: (lines.append("job%d n=%d err=%d first=%s\n" % (
            i, len(res), fork_error() is not None, "undef" if not res or res[0] is None
            else res[0])), cv.end()))
    cv.recv()
    assert sorted(lines) == sorted(got_perl.splitlines(keepends=True))
    assert len(lines) == 5
