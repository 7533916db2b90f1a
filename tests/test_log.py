"""anyevent.log: AnyEvent::Log on top of logging: levels, contexts, targets,
ANYEVENT_VERBOSE / ANYEVENT_LOG, fatal; compared with Perl's AnyEvent::Log where
Perl is installed."""

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anyevent import AE, log

HAVE_PERL = shutil.which("perl") is not None and subprocess.run(
    ["perl", "-MAnyEvent::Log", "-e1"], capture_output=True).returncode == 0
needs_perl = pytest.mark.skipif(not HAVE_PERL, reason="Perl's AnyEvent is not installed")


@pytest.fixture(autouse=True)
def _fresh_contexts():
    """Each test starts and ends with AnyEvent::Log's defaults (``reset``)."""
    log.reset()
    yield
    log.reset()


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


def _run(code, prelude="", **env_changes):
    env = dict(os.environ)
    env.pop("ANYEVENT_VERBOSE", None)
    env.pop("ANYEVENT_LOG", None)
    env.update(env_changes)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, "-c", prelude + "from anyevent import AE\n" + code],
                          env=env, capture_output=True, text=True, timeout=20)


SAY_ALL = "\n".join('AE.log(%d, "level-%d")' % (n, n) for n in range(2, 10))


@pytest.mark.parametrize("verbose,shown", [
    (None, []), ("4", [2, 3, 4]), ("5", [2, 3, 4, 5]), ("9", list(range(2, 10))),
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


# -- importing changes nothing; the environment applies only when set --------------------

def test_import_leaves_levels_and_application_setup_alone():
    prelude = textwrap.dedent("""\
        import logging
        logging.basicConfig(level=logging.DEBUG, format="APP %(name)s %(levelname)s %(message)s")
        before = {n: l.level for n, l in logging.root.manager.loggerDict.items()
                  if isinstance(l, logging.Logger)}
        """)
    code = textwrap.dedent("""\
        after = {n: l.level for n, l in logging.root.manager.loggerDict.items()
                 if isinstance(l, logging.Logger)}
        assert all(after.get(n) == lvl for n, lvl in before.items())
        assert all(l.level == logging.NOTSET for n, l in logging.root.manager.loggerDict.items()
                   if n.startswith("anyevent") and isinstance(l, logging.Logger))
        assert logging.root.level == logging.DEBUG
        AE.log("warn", "seen at %s", "warn")
        AE.log("debug", "seen at debug")
        """)
    res = _run(code, prelude)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == ["APP anyevent WARNING seen at warn",
                                       "APP anyevent DEBUG seen at debug"]


def test_unconfigured_application_sees_nothing_but_fatal():
    res = _run('AE.log("error", "quiet")\nAE.log("warn", "quiet")')
    assert res.returncode == 0 and res.stderr == ""
    names = [type(h).__name__ for h in logging.getLogger("anyevent").handlers]
    assert names == ["NullHandler"]


def test_unconfigured_application_still_sees_callback_exceptions():
    """A callback's exception is never swallowed: with no logging set up
    (only the library's NullHandler) it is printed as Python's last resort
    prints an unhandled record, traceback included."""
    code = textwrap.dedent("""\
        cv = AE.cv()
        def boom():
            cv.send()
            raise ValueError("boom in a timer")
        t = AE.timer(0, 0, boom)
        cv.recv()
        print("loop survived")
        """)
    res = _run(code)
    assert res.returncode == 0 and res.stdout == "loop survived\n"
    assert "exception in timer callback" in res.stderr
    assert "ValueError: boom in a timer" in res.stderr


def test_without_environment_log_is_detached():
    assert not log.FILTER._slaves and log.FILTER.logging_logger.level == logging.NOTSET


def test_anyevent_log_spec_writes_perl_format_to_file(tmp_path):
    path = tmp_path / "ae.log"
    res = _run('AE.log("debug", "dbg %d", 1)\nAE.log("trace", "not at debug")\n'
               'AE.log("warn", "w\\nx")', ANYEVENT_LOG="filter=debug:log=file=%s" % path)
    assert res.returncode == 0 and res.stderr == ""
    assert _strip_times(path.read_text()) == ["debug anyevent: dbg 1", "warn  anyevent: w", "+ x"]


@needs_perl
def test_anyevent_log_spec_matches_perl(tmp_path):
    ours, theirs = tmp_path / "py.log", tmp_path / "pl.log"
    _run('AE.log("debug", "dbg %d", 1)\nAE.log("trace", "tr")\nAE.log("warn", "w\\nx")',
         ANYEVENT_LOG="filter=debug:log=file=%s" % ours)
    env = dict(os.environ, PERL_ANYEVENT_LOG="filter=debug:log=file=%s" % theirs)
    subprocess.run(["perl", "-MAnyEvent", "-e", 'package anyevent; AE::log debug => "dbg %d", 1; '
                    'AE::log trace => "tr"; AE::log warn => "w\\nx"'],
                   env=env, capture_output=True, check=True, timeout=20)
    perl_lines = [l for l in _strip_times(theirs.read_text()) if "AnyEvent::IO" not in l]
    assert _strip_times(ours.read_text()) == perl_lines


def _strip_times(text):
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} [+-]\d{4} ")
    return [stamp.sub("", line) for line in text.splitlines()]


@pytest.mark.parametrize("spec,error", [
    ("filter=loud", "parse error at 'loud'"), ("filter=warn junk", "parse error at 'junk'"),
    ("log=cap=never", "parse error at 'cap=never'"),
])
def test_anyevent_log_parse_errors(spec, error):
    with pytest.raises(ValueError, match=error):
        log.configure(spec)


def test_anyevent_log_parse_error_stops_import_as_perl_dies():
    res = _run("", ANYEVENT_LOG="filter=loud")
    assert res.returncode == 1 and "ANYEVENT_LOG (filter=loud): parse error at 'loud'" in res.stderr


def test_configure_anonymous_contexts_escapes_and_slaves(tmp_path):
    path = tmp_path / "a,b"
    log.configure(" filter=+%%file,only,warn,error  %%file=file=%s\\,b:x::y::=+,debug " % (tmp_path / "a"))
    AE.log("warn", "to file")
    AE.log("info", "filtered")
    assert _strip_times(path.read_text()) == ["warn  anyevent: to file"]
    pkg = log.ctx("x.y")
    assert pkg.logging_logger.propagate is False and pkg.logging_logger.level == 10


# -- contexts, compared with Perl --------------------------------------------------------

CONTEXTS_PL = r"""
use AnyEvent; use AnyEvent::Log; $| = 1;
my $fmt = sub { my ($t, $ctx, $lvl, $msg) = @_; sprintf "<%d>%s:%s\n", $lvl, $ctx->title, $msg =~ s/\n/|/gr };
my %c;
for my $n (qw(A B C D)) {
   $c{$n} = AnyEvent::Log::Ctx->new(title => $n, fmt_cb => $fmt,
      log_cb => sub { print "$n ", shift; $n eq "C" });
}
$c{A}->attach($c{B}, $c{C}); $c{B}->attach($c{A}); $c{C}->attach($c{D});
$c{B}->levels("debug", "error"); $c{B}->cap("warn");
my $p = AnyEvent::Log::ctx "Pkg"; $p->slaves($c{A}); $p->level("info");
$p->log(debug => "masked at Pkg"); $p->log(info => "info %d", 7);
$p->log(error => "error\nline two"); $p->log(alert => "alert");
$c{A}->detach($c{C}); $c{B}->enable("alert");
$p->log(alert => "alert again"); $c{A}->log(debug => "debug on A");
$c{A}->slaves; $c{A}->log(note => "alone");
my $o = AnyEvent::Log::Ctx->new(title => "O", fmt_cb => $fmt, log_cb => sub { print "O ", shift; 0 });
$o->levels("trace", "crit"); $o->log($_ => "lvl $_") for 2..9;
$o->disable("all"); $o->enable("warn"); $o->log($_ => "again $_") for 2..9;
$o->level(0); $o->log(warn => "off");
"""


def _contexts_py(out):
    def fmt(_t, context, lvl, msg):
        return "<%d>%s:%s\n" % (lvl, context.title(), msg.replace("\n", "|"))

    def printer(name):
        return lambda text: out.append("%s %s" % (name, text)) or name == "C"

    c = {n: log.Ctx(title=n, fmt_cb=fmt, log_cb=printer(n)) for n in "ABCD"}
    c["A"].attach(c["B"], c["C"]); c["B"].attach(c["A"]); c["C"].attach(c["D"])
    c["B"].levels("debug", "error"); c["B"].cap("warn")
    p = log.ctx("Pkg"); p.slaves(c["A"]); p.level("info")
    p.log("debug", "masked at Pkg"); p.log("info", "info %d", 7)
    p.log("error", "error\nline two"); p.log("alert", "alert")
    c["A"].detach(c["C"]); c["B"].enable("alert")
    p.log("alert", "alert again"); c["A"].log("debug", "debug on A")
    c["A"].slaves(); c["A"].log("note", "alone")
    o = log.Ctx(title="O", fmt_cb=fmt, log_cb=printer("O"))
    o.levels("trace", "crit")
    for n in range(2, 10):
        o.log(n, "lvl %d" % n)
    o.disable("all"); o.enable("warn")
    for n in range(2, 10):
        o.log(n, "again %d" % n)
    o.level(0); o.log("warn", "off")


EXPECTED_CONTEXTS = """\
A <7>Pkg:info 7
C <7>Pkg:info 7
A <4>Pkg:error|line two
B <5>Pkg:error|line two
C <4>Pkg:error|line two
A <2>Pkg:alert
C <2>Pkg:alert
A <2>Pkg:alert again
B <5>Pkg:alert again
A <8>A:debug on A
B <8>A:debug on A
A <6>A:alone
O <3>O:lvl 3
O <9>O:lvl 9
O <5>O:again 5
"""


def test_contexts_levels_cap_slaves_and_consuming_log_cb():
    out = []
    _contexts_py(out)
    assert "".join(out) == EXPECTED_CONTEXTS


@needs_perl
def test_contexts_behave_as_perl():
    res = subprocess.run(["perl", "-e", CONTEXTS_PL], capture_output=True, text=True,
                         check=True, timeout=20)
    # Perl visits slaves in hash order: compare the lines, not their order
    assert sorted(res.stdout.splitlines()) == sorted(EXPECTED_CONTEXTS.splitlines())


def test_package_context_is_the_logger_and_propagates_to_the_application(caplog):
    pkg = log.ctx("My::Module")
    assert pkg is log.ctx("My.Module") and pkg.logging_logger is logging.getLogger("My.Module")
    assert pkg.title() == "My.Module" and log.ctx() is log.ctx(__name__)
    assert log.ctx("") is log.COLLECT and log.ctx(pkg) is pkg and log.ctx(None) is not log.ctx(None)
    with caplog.at_level(logging.DEBUG):
        pkg.log("note", "to the root")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("My.Module", "NOTE", "to the root")]
    assert caplog.records[0].filename == os.path.basename(__file__)


def test_log_to_file_and_path_append(tmp_path):
    files = tmp_path / "file.log", tmp_path / "path.log"
    kept, reopened = log.Ctx(title="k", log_to_file=str(files[0])), log.Ctx(log_to_path=str(files[1]))
    for n in range(2):
        kept.log("warn", "kept %d", n)
        reopened.log("error", "reopened %d", n)
        os.rename(files[1], str(files[1]) + ".old")   # log_to_path follows the name
    assert _strip_times(files[0].read_text()) == ["warn  k: kept 0", "warn  k: kept 1"]
    assert _strip_times(Path(str(files[1]) + ".old").read_text()) == ["error : reopened 1"]


def test_log_to_syslog_maps_levels_and_facility():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        target = log.Ctx(title="sys", level="trace")
        target.log_to_syslog("LOG_LOCAL0", address=server.getsockname())
        target.log("trace", "t\nmore")
        target.log("alert", "a")
        got = [server.recv(4096) for _ in range(2)]
    # local0 = 16: priority 16 * 8 + (level - 1), trace as debug
    assert got == [b"<135>(sys) t\n+ more\x00", b"<129>(sys) a\x00"]
    with pytest.raises(ValueError):
        log.Ctx().log_to_syslog("nowhere")


def test_log_wins_filter_attachment_when_given_a_target(capsys):
    AE.log("error", "nobody listens")
    assert capsys.readouterr().err == ""
    log.LOG.log_to_warn()
    log.FILTER.level("warn")
    AE.log("warn", "now %s", "printed")
    AE.log("info", "filtered")
    assert _strip_times(capsys.readouterr().err) == ["warn  anyevent: now printed"]


def test_logger_is_true_while_enabled_and_follows_changes(caplog):
    debug = log.logger("debug", context="dns")
    caplog.set_level(logging.DEBUG, logger="anyevent")
    assert debug
    debug("%d sent", 3)
    log.FILTER.level("info")
    caplog.set_level(logging.NOTSET, logger="anyevent.dns")
    assert not debug
    assert not AE.logger("trace") and AE.logger("error")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("anyevent.dns", "3 sent")]


def test_callable_message_is_built_only_when_logged(caplog):
    calls = []
    caplog.set_level(logging.INFO, logger="anyevent")
    AE.log("debug", lambda: calls.append("debug") or "d")
    AE.log("info", lambda: calls.append("info") or "i")
    assert calls == ["info"] and caplog.records[0].getMessage() == "i"


def test_fatal_exit_is_replaceable(monkeypatch, caplog):
    exits = []
    monkeypatch.setattr(log, "fatal_exit", lambda: exits.append(1))
    with caplog.at_level(logging.DEBUG, logger="anyevent"):
        AE.log("fatal", "the end")
    assert exits == [1] and caplog.records[0].levelname == "CRITICAL"


def test_default_format_lines():
    text = log.default_format(0.5, log.Ctx(title="t"), 5, "one\ntwo\n")
    assert _strip_times(text) == ["warn  t: one", "+ two"]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.500000 [+-]\d{4}$", log.format_time(0.5))


# -- the library's own debug lines ------------------------------------------------------

def _connect_refused_then_accepted():
    """Connector over [a refusing address, a listening one]; returns the connected socket."""
    from anyevent.connector import Connector
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        dead = gone.getsockname()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        live = srv.getsockname()
        cv = AE.cv()
        conn = Connector(addrs=[{"family": "inet", "ip": dead[0], "port": dead[1]},
                                {"family": "inet", "ip": live[0], "port": live[1]}],
                         on_connected=cv, on_connect_error=lambda *a: cv(None))
        sock = cv.recv()
    del conn
    return sock, dead, live


def test_connector_logs_each_attempt_failure_and_winner(caplog):
    caplog.set_level(logging.DEBUG, logger="anyevent.connector")
    sock, (_, dead), (_, live) = _connect_refused_then_accepted()
    with sock:
        local = sock.getsockname()[1]
    lines = [r.getMessage() for r in caplog.records if r.name == "anyevent.connector"]
    assert lines == [
        "addresses given: 2 address(es) to try: 127.0.0.1:%d, 127.0.0.1:%d" % (dead, live),
        "connect 127.0.0.1:%d: trying (fd %d)" % (dead, caplog.records[1].args[1]),
        "connect 127.0.0.1:%d failed: ECONNREFUSED (111): Connection refused" % dead,
        "connect 127.0.0.1:%d: trying (fd %d)" % (live, caplog.records[3].args[1]),
        "connect 127.0.0.1:%d: connected from 127.0.0.1:%d" % (live, local),
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_connector_formats_nothing_when_debug_is_off(caplog, monkeypatch):
    import anyevent.connector as connector
    built = []
    monkeypatch.setattr(connector, "_where", lambda sa: built.append(sa) or "?")
    monkeypatch.setattr(connector, "_errno_text", lambda exc: built.append(exc) or "?")
    made = []
    monkeypatch.setattr(connector._log, "makeRecord", lambda *a, **k: made.append(a))
    caplog.set_level(logging.INFO, logger="anyevent")
    sock, _, _ = _connect_refused_then_accepted()
    sock.close()
    assert built == [] and made == []


def _tls_session(pem):
    """A verifying TLS client against a server presenting ``pem``: the client's
    on_starttls result."""
    from anyevent.handle import Handle
    from anyevent.tls import TLS
    from conftest import Listener, run_until
    from tlsfixtures import certs
    cv, handles = AE.cv(), []
    with Listener() as server:
        port = server.serve(lambda fh, h, p: handles.append(Handle(
            fh=fh, tls="accept", tls_ctx=TLS(cert_file=pem), on_error=lambda *a: None)))
        hdl = Handle(connect=("127.0.0.1", port), tls="connect", peername="localhost",
                     tls_ctx={"verify": 1, "ca_file": certs().ca_file, "verify_peername": "https"},
                     on_starttls=lambda h, ok, msg: cv.send(ok), on_error=lambda *a: None)
        ok = run_until(cv)
    del hdl, handles
    return ok


def test_tls_handshake_results_are_debug_lines(caplog):
    from tlsfixtures import certs
    caplog.set_level(logging.DEBUG, logger="anyevent.tls")
    assert _tls_session(certs().server_pem) is True
    assert _tls_session(certs().expired_pem) is False
    lines = [r.getMessage() for r in caplog.records if r.name == "anyevent.tls"]
    assert any(re.fullmatch(r"TLS handshake connect to localhost done: TLSv1\.[23] \S+; "
                            r"peer accepted", l) for l in lines), lines
    assert "TLS connect to localhost failed: error:0A000086:SSL routines::certificate verify failed: certificate has expired" \
        in lines


def test_reset_restores_only_what_the_contexts_changed():
    root, pkg = logging.getLogger(), log.ctx("Some.Pkg")
    before = root.level, root.handlers[:]
    log.COLLECT.level("debug")
    log.COLLECT.attach(log.Ctx(title="extra"))
    pkg.slaves()
    assert root.level == 10 and pkg.logging_logger.propagate is False
    log.reset()
    assert (root.level, root.handlers) == before and pkg.logging_logger.propagate is True
    assert log.COLLECT.title() == "$AnyEvent::Log::COLLECT" and log.LOG.title() == "$AnyEvent::Log::LOG"
