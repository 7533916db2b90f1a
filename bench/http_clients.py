"""HTTP clients against nginx: anyevent.http against aiohttp, httpx and Perl's AnyEvent::HTTP.

nginx (tests/httpservers.py: keep-alive on, gzip off) serves a 1 KiB file and
a 200 MB file (sparse: generated instantly) over http and https (a trustme
certificate, tests/tlsfixtures.py).  Every client runs in its own subprocess,
pinned to CPU 0 with nginx on CPU 1 when there are two or more CPUs
(``--no-pin`` leaves both free), and reports its own rate, timed from its
first request to its last response (interpreter start, imports and the
client's setup are excluded; the connections are made inside the timed
phase).  Each checks that every response is status 200 with the expected
length and fails (exit 1, the table says FAILED) at the first that is not.

* small: REQUESTS GETs of the 1 KiB file, 10 in flight over keep-alive
  connections, requests/s.
* big: one GET of the 200 MB file, the body read whole into memory, MB/s.
* tls: the same as small over https; every client verifies the chain against
  the test CA and the host name.

The clients:

* ``anyevent``: ``anyevent.http.http_get(url, cb, persistent=1,
  keepalive=1)`` with ``anyevent.http.MAX_PER_HOST = 10``, our own loop
  (compiled core unless ``ANYEVENT_PURE_PYTHON=1``); the first 10 requests are
  issued at once, each callback issues the next.  Over TLS
  ``tls_ctx={"verify": 1, "verify_peername": "https", "ca_file": CA}``.
* ``aiohttp-uvloop`` / ``aiohttp-asyncio``: one ``aiohttp.ClientSession`` with
  ``TCPConnector(limit_per_host=10)`` (``ssl=`` an ``ssl.create_default_context
  (cafile=CA)`` over TLS); 10 tasks, each ``async with session.get(url)`` and
  ``await resp.read()`` in a loop until REQUESTS are done.
* ``httpx-uvloop`` / ``httpx-asyncio``: one ``httpx.AsyncClient(limits=
  httpx.Limits(max_connections=10, max_keepalive_connections=10),
  verify=<that ssl context>, trust_env=False)`` (HTTP/1.1); 10 tasks, each
  ``await client.get(url)`` in a loop.
* ``perl``: AnyEvent::HTTP on EV (bench/http_client.pl):
  ``$AnyEvent::HTTP::MAX_PER_HOST = 10``, ``persistent => 1, keepalive => 1``,
  refilled from the callbacks as ours; over TLS ``tls_ctx => {cache => 1,
  verify => 1, verify_peername => "https", ca_file => CA}``.

Proxy variables are removed from the clients' environment.  Each figure is
the best of ROUNDS runs (clients interleaved; default 1, as httpx alone, at
about 1,000 requests/s here, takes some 90 s of a two-minute run), the big
download's of 3 per round.  The ratios are anyevent's
rate over the other's (above 1: anyevent is faster), against the better of
aiohttp's two loops and against Perl.  Exits 1 when a client failed; a client
whose library is missing is skipped with a message (so is ``anyevent`` until
``anyevent/http.py`` exists).

usage: http_clients.py [--requests N] [--rounds R] [--only NAME[,NAME]] [--tests T[,T]]
               [--big-mb M] [--no-pin]
       http_clients.py --client KIND --url URL --count N --conc C --size S [--ca CA]  (internal)
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import _common

# this file is named like the standard library's http package (which aiohttp,
# httpx and urllib import): drop bench/ from the path
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
TESTS_DIR = os.path.join(os.path.dirname(HERE), "tests")
PERL_CLIENT = os.path.join(HERE, "http_client.pl")

CONC = 10
SMALL = 1024
SMALL_NAME = "bench-1k.bin"
BIG_NAME = "bench-big.bin"

PEERS = ["anyevent", "aiohttp-uvloop", "aiohttp-asyncio", "httpx-uvloop", "httpx-asyncio",
         "perl"]
LABELS = {
    "anyevent": "anyevent.http",
    "aiohttp-uvloop": "aiohttp, uvloop",
    "aiohttp-asyncio": "aiohttp, asyncio",
    "httpx-uvloop": "httpx, uvloop",
    "httpx-asyncio": "httpx, asyncio",
    "perl": "Perl AnyEvent::HTTP (EV)",
}
#: the configurations of each peer whose best is taken for a ratio
AIOHTTP = ("aiohttp-uvloop", "aiohttp-asyncio")
TESTS = ["small", "big", "tls"]
#: the big download is short (a second or less) and varies most: it runs this
#: many times per round (each client in turn, a fresh process each time)
BIG_REPEAT = 3
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")


# ---------------------------------------------------------------------------
# Clients (run by --client in a subprocess; print one JSON line)
# ---------------------------------------------------------------------------

class Failed(Exception):
    pass


def _check(i, status, body_len, size):
    if status != 200 or body_len != size:
        raise Failed("response %d: status %s, %s bytes; want 200 and %d bytes"
                     % (i, status, body_len, size))


def client_anyevent(a):
    _common.check_core()
    import anyevent.http as aehttp
    from anyevent import AE, AnyEvent, _core

    aehttp.MAX_PER_HOST = a.conc
    opts = {"persistent": 1, "keepalive": 1}
    if a.ca:
        opts["tls_ctx"] = {"verify": 1, "verify_peername": "https", "ca_file": a.ca}
    done_cv = AE.cv()
    state = {"issued": 0, "done": 0, "bytes": 0}

    def issue():
        state["issued"] += 1
        aehttp.http_get(a.url, on_done, **opts)

    def on_done(body, headers):
        if done_cv.ready():
            return
        n = state["done"] + 1
        got = None if body is None else len(body)
        if headers.get("Status") != 200 or got != a.size:
            return done_cv.croak("response %d: status %r (%s), %s bytes; want 200 and %d bytes"
                                 % (n, headers.get("Status"), headers.get("Reason"), got, a.size))
        state["done"] = n
        state["bytes"] += got
        if state["issued"] < a.count:
            issue()
        elif n == a.count:
            done_cv.send()

    t0 = time.perf_counter()
    for _ in range(min(a.conc, a.count)):
        issue()
    try:
        done_cv.recv()
    except Exception as e:  # the croak of on_done
        raise Failed(str(e)) from None
    secs = time.perf_counter() - t0
    core = "compiled core" if _core.compiled() else "pure Python"
    return dict(count=state["done"], bytes=state["bytes"], secs=secs,
                impl="anyevent.http, %s, model %s" % (core, AnyEvent.detect()))


def _ssl_ctx(a):
    import ssl
    return ssl.create_default_context(cafile=a.ca) if a.ca else None


async def _workers(a, fetch):
    """Run ``a.conc`` tasks calling ``fetch(i)`` until ``a.count`` calls are done;
    return (responses, bytes, seconds)."""
    import asyncio
    state = {"left": a.count, "done": 0, "bytes": 0}

    async def worker():
        while state["left"] > 0:
            state["left"] -= 1
            status, length = await fetch()
            n = state["done"] + 1
            _check(n, status, length, a.size)
            state["done"] = n
            state["bytes"] += length

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(a.conc, a.count))))
    return state["done"], state["bytes"], time.perf_counter() - t0


async def client_aiohttp(a):
    import aiohttp
    ctx = _ssl_ctx(a)
    connector = aiohttp.TCPConnector(limit_per_host=a.conc, **({"ssl": ctx} if ctx else {}))
    async with aiohttp.ClientSession(connector=connector) as session:
        async def fetch():
            async with session.get(a.url) as resp:
                body = await resp.read()
                return resp.status, len(body)
        count, nbytes, secs = await _workers(a, fetch)
    return dict(count=count, bytes=nbytes, secs=secs, impl="aiohttp %s" % aiohttp.__version__)


async def client_httpx(a):
    import httpx
    ctx = _ssl_ctx(a)
    limits = httpx.Limits(max_connections=a.conc, max_keepalive_connections=a.conc)
    async with httpx.AsyncClient(limits=limits, verify=ctx or True, trust_env=False,
                                 timeout=60) as client:
        async def fetch():
            resp = await client.get(a.url)
            return resp.status_code, len(resp.content)
        count, nbytes, secs = await _workers(a, fetch)
    return dict(count=count, bytes=nbytes, secs=secs, impl="httpx %s" % httpx.__version__)


def _run_async(coro_fn, a, loop_kind):
    import asyncio
    if loop_kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
        name = "uvloop %s" % uvloop.__version__
    else:
        loop = asyncio.new_event_loop()
        name = "asyncio %s" % type(loop).__name__
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(coro_fn(a))
    finally:
        loop.close()
    result["impl"] += ", " + name
    return result


def client(a):
    try:
        if a.client == "anyevent":
            result = client_anyevent(a)
        else:
            lib, loop_kind = a.client.split("-")
            result = _run_async(client_aiohttp if lib == "aiohttp" else client_httpx, a, loop_kind)
    except Failed as e:
        sys.exit("%s: %s" % (a.client, e))
    if result["count"] != a.count:
        sys.exit("%s: %d responses, want %d" % (a.client, result["count"], a.count))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Driving them
# ---------------------------------------------------------------------------

def _self(*args):
    return [sys.executable, os.path.abspath(__file__)] + [str(x) for x in args]


def available(peer):
    """None when ``peer`` can run here, else why not."""
    if peer == "perl":
        probe = subprocess.run(["perl", "-MEV", "-MAnyEvent::HTTP", "-MNet::SSLeay", "-e", "1"],
                               capture_output=True, text=True)
        return None if probe.returncode == 0 else (
            "Perl EV / AnyEvent::HTTP / Net::SSLeay missing: " + probe.stderr.strip())
    if peer == "anyevent":
        if importlib.util.find_spec("anyevent.http") is None:
            return "anyevent.http does not exist yet (anyevent/http.py)"
        try:
            import anyevent.http
        except Exception as e:  # a module being written
            return "anyevent.http does not import: %s: %s" % (type(e).__name__, e)
        if not hasattr(anyevent.http, "http_get"):
            return "anyevent.http has no http_get yet"
        return None
    need = [peer.split("-")[0]] + (["uvloop"] if peer.endswith("-uvloop") else [])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    return "not installed: " + ", ".join(missing) if missing else None


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def nginx_pids():
    """The nginx processes among our descendants (tests/httpservers.py starts them)."""
    found, todo = [], [os.getpid()]
    while todo:
        for kid in _children(todo.pop()):
            todo.append(kid)
            try:
                with open("/proc/%d/comm" % kid) as f:
                    if f.read().strip() == "nginx":
                        found.append(kid)
            except OSError:
                pass
    return found


def _can_pin(pin):
    return pin and len(os.sched_getaffinity(0)) >= 2


def run_client(peer, url, count, size, ca, pin):
    """One client subprocess; its result dict, or raises RuntimeError with its stderr."""
    if peer == "perl":
        cmd = ["perl", PERL_CLIENT, url, count, CONC, size] + ([ca] if ca else [])
        cmd = [str(x) for x in cmd]
    else:
        cmd = _self("--client", peer, "--url", url, "--count", count, "--conc", CONC,
                    "--size", size, *(["--ca", ca] if ca else []))
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    if _can_pin(pin):
        os.sched_setaffinity(proc.pid, {0})
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError((err.strip() or out.strip() or "exit status %d" % proc.returncode))
    result = json.loads(out.strip().splitlines()[-1])
    if result["count"] != count or result["bytes"] != count * size:
        raise RuntimeError("reported %(count)d responses, %(bytes)d bytes" % result)
    return result


def _table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    sys.stdout.flush()


def _rate(test, result):
    """requests/s, or MB/s for the big file."""
    if test == "big":
        return result["bytes"] / result["secs"] / 1e6
    return result["count"] / result["secs"]


def _fmt(test, value):
    if value is None:
        return "-"
    return "%.1f MB/s" % value if test == "big" else "{:,.0f}/s".format(value)


def _ratio(ours, theirs):
    return "%.2f×" % (ours / theirs) if ours and theirs else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", choices=PEERS[:-1], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--conc", type=int, default=CONC, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=20000,
                        help="GETs of the 1 KiB file per client (default 20000)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="best of R runs (default 1; the big download runs %d times "
                        "per round)" % BIG_REPEAT)
    parser.add_argument("--only", help="comma-separated clients (a name or its prefix: "
                        "aiohttp, httpx-uvloop, ...) of: " + ", ".join(PEERS))
    parser.add_argument("--tests", default=",".join(TESTS),
                        help="comma-separated, of: %s (default all)" % ", ".join(TESTS))
    parser.add_argument("--big-mb", type=int, default=200, help="size of the big file (MB)")
    parser.add_argument("--no-pin", action="store_true")
    a = parser.parse_args()
    if a.client:
        client(a)
        return 0

    _common.check_core()
    tests = [t for t in a.tests.split(",") if t]
    if set(tests) - set(TESTS):
        parser.error("unknown test: %s" % ", ".join(sorted(set(tests) - set(TESTS))))
    peers = PEERS
    if a.only:
        wanted = [w.strip() for w in a.only.split(",") if w.strip()]
        peers = [p for p in PEERS if any(p == w or p.startswith(w + "-") for w in wanted)]
        if not peers:
            parser.error("--only matches none of: " + ", ".join(PEERS))
    runnable = []
    for peer in peers:
        why = available(peer)
        if why:
            print("skipped %s: %s" % (LABELS[peer], why))
        else:
            runnable.append(peer)
    if len(runnable) < len(peers):
        print()

    sys.path.append(TESTS_DIR)
    from httpservers import Nginx
    from tlsfixtures import certs
    tls = certs() if "tls" in tests else None
    big_size = a.big_mb * 1000 * 1000
    pin = not a.no_pin
    results = {t: {} for t in tests}
    failures = {}
    impl = {}
    t_start = time.monotonic()
    with Nginx(tls_pem=tls.server_pem if tls else None) as nginx:
        small_path = os.path.join(nginx.root, SMALL_NAME)
        big_path = os.path.join(nginx.root, BIG_NAME)
        try:
            with open(small_path, "wb") as f:
                f.write(os.urandom(SMALL))
            if "big" in tests:
                with open(big_path, "wb") as f:
                    f.truncate(big_size)  # sparse: no time, no disk
            pinned = ""
            if _can_pin(pin):
                pids = nginx_pids()
                for pid in pids:
                    os.sched_setaffinity(pid, {1})
                pinned = ("clients on CPU 0, nginx on CPU 1" if pids
                          else "clients on CPU 0 (nginx processes not found: not pinned)")
            else:
                pinned = "unpinned"
            # a first request of each file: nginx serves them, and has opened them
            import urllib.request
            for name, size, tls_on in ((SMALL_NAME, SMALL, False), (SMALL_NAME, SMALL, True),
                                       (BIG_NAME, big_size, False)):
                if (tls_on and not tls) or (name == BIG_NAME and "big" not in tests):
                    continue
                ctx = None
                if tls_on:
                    import ssl
                    ctx = ssl.create_default_context(cafile=tls.ca_file)
                with urllib.request.urlopen(nginx.url("/" + name, tls=tls_on), context=ctx) as r:
                    got = len(r.read())
                if got != size:
                    sys.exit("nginx served %d bytes of %s, want %d" % (got, name, size))

            jobs = {
                "small": lambda: (nginx.url("/" + SMALL_NAME), a.requests, SMALL, None),
                "big": lambda: (nginx.url("/" + BIG_NAME), 1, big_size, None),
                "tls": lambda: (nginx.url("/" + SMALL_NAME, tls=True), a.requests, SMALL,
                                tls.ca_file),
            }
            for rnd in range(a.rounds):
                for test in tests:
                    url, count, size, ca = jobs[test]()
                    for peer in runnable * (BIG_REPEAT if test == "big" else 1):
                        if (test, peer) in failures:
                            continue
                        try:
                            r = run_client(peer, url, count, size, ca, pin)
                        except RuntimeError as e:
                            failures[test, peer] = str(e)
                            print("FAILED %s, %s: %s" % (test, LABELS[peer],
                                                         str(e).splitlines()[-1]), flush=True)
                            continue
                        impl[peer] = r.get("impl", "")
                        rate = _rate(test, r)
                        if rate > results[test].get(peer, 0):
                            results[test][peer] = rate
        finally:
            for path in (small_path, big_path):
                if os.path.exists(path):
                    os.unlink(path)
    elapsed = time.monotonic() - t_start

    report(a, tests, runnable, results, failures, impl, pinned, big_size)
    print("(rounds: %d, %.0f s in all)" % (a.rounds, elapsed))
    return 1 if failures else 0


TITLES = {
    "small": "%(n)s GETs of a 1 KiB file, %(c)d in flight, keep-alive (requests/s)",
    "big": "one GET of a %(mb)d MB file, body read whole (MB/s)",
    "tls": "%(n)s GETs of a 1 KiB file over https, %(c)d in flight, keep-alive, "
           "certificate verified (requests/s)",
}


def report(a, tests, peers, results, failures, impl, pinned, big_size):
    names = {"n": "{:,}".format(a.requests), "c": CONC, "mb": big_size // 1000000}
    summary = []
    for test in tests:
        res = results[test]
        ours = res.get("anyevent")
        runs = a.rounds * (BIG_REPEAT if test == "big" else 1)
        print("### %s; best of %d; %s" % (TITLES[test] % names, runs, pinned))
        print()
        rows = []
        for peer in peers:
            value = res.get(peer)
            cell = "FAILED" if (test, peer) in failures else _fmt(test, value)
            rows.append([LABELS[peer], cell,
                         "" if peer == "anyevent" else _ratio(ours, value)])
        _table(["client", "rate", "anyevent vs this"], rows)
        aio = [p for p in AIOHTTP if p in res]
        best_aio = max(aio, key=res.get) if aio else None
        summary.append([test, _fmt(test, ours),
                        "%s (%s)" % (_fmt(test, res[best_aio]), best_aio) if best_aio else "-",
                        _ratio(ours, res.get(best_aio)),
                        _fmt(test, res.get("perl")), _ratio(ours, res.get("perl"))])
    print("### ratios: anyevent.http over aiohttp's best loop and over Perl (above 1: faster)")
    print()
    _table(["test", "anyevent", "aiohttp best", "vs aiohttp", "Perl", "vs Perl"], summary)
    print("clients:")
    for peer in peers:
        if peer in impl:
            print("  %-26s %s" % (LABELS[peer], impl[peer]))
    for (test, peer), err in sorted(failures.items()):
        print()
        print("FAILED %s, %s:" % (test, LABELS[peer]))
        print("\n".join("    " + line for line in err.splitlines()[-20:]))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
