"""anyevent.redis against a real redis-server (started on a free loopback
port, no persistence); a scripted server for a corrupt stream."""

import pytest

from anyevent import AE
from anyevent.redis import Redis, RedisError

import httpservers
from redisservers import RedisServer, redis  # noqa: F401 (a fixture)
from conftest import free_port, run_until, settle


@pytest.fixture
def clients():
    made = []
    yield made
    for r in made:
        r.close()


def connect(clients, port, **kw):
    r = Redis("127.0.0.1", port, **kw)
    clients.append(r)
    return r


def test_commands_replies_and_pipelining(redis, clients):
    r = connect(clients, redis.port)
    assert run_until(r.set("k", "v")) == b"OK"
    assert run_until(r.get("k")) == b"v"
    assert run_until(r.get("missing")) is None
    cvs = [r.rpush("list", i) for i in range(500)]  # all written before any reply
    assert [run_until(cv) for cv in cvs] == list(range(1, 501))
    assert run_until(r.lrange("list", 0, 2)) == [b"0", b"1", b"2"]
    assert run_until(r.command("OBJECT", "ENCODING", "k")) in (b"embstr", b"raw")
    got = []
    cv = AE.cv()
    r.get("k", lambda value: (got.append(value), cv.send()))  # Perl's callback-last
    run_until(cv)
    assert got == [b"v"]


def test_error_replies_croak_and_reach_the_callback(redis, clients):
    r = connect(clients, redis.port)
    got = []
    cv = r.command("NOSUCHCOMMAND", cb=got.append)
    with pytest.raises(RedisError, match="unknown command"):
        run_until(cv)
    assert isinstance(got[0], RedisError)
    run_until(r.set("s", "text"))
    with pytest.raises(RedisError, match="WRONGTYPE"):
        run_until(r.lpush("s", "x"))
    assert run_until(r.get("s")) == b"text"  # the connection goes on


def test_encoding(redis, clients):
    r = connect(clients, redis.port, encoding="utf-8")
    run_until(r.set("u", "grüße"))
    assert run_until(r.get("u")) == "grüße"


def test_publish_subscribe_and_patterns(redis, clients):
    pub = connect(clients, redis.port)
    sub = connect(clients, redis.port)
    got = []
    cv = AE.cv()
    def message(*args):
        got.append(args)
        if len(got) == 3:
            cv.send()
    s1 = sub.subscribe("news", "sport", message)
    s2 = sub.psubscribe("ne*", cb=message)
    run_until(sub.ping())  # the subscriptions are acknowledged before this
    run_until(pub.publish("news", "hello"))
    run_until(pub.publish("sport", "goal"))
    run_until(cv)
    assert sorted(got) == [(b"goal", b"sport"), (b"hello", b"news"), (b"hello", b"news", b"ne*")]
    s1.cancel()
    s2.cancel()
    # (answered after the unsubscriptions: out of subscriber mode, and no
    # publish on the other connection can overtake them any more)
    assert run_until(sub.ping()) == b"PONG"
    assert run_until(pub.publish("news", "unheard")) == 0  # nobody subscribed any more


def test_auth_and_select():
    srv = RedisServer("--requirepass", "s3cret")
    made = []
    try:
        r = connect(made, srv.port, password="s3cret", db=3)
        run_until(r.set("x", "in db 3"))
        other = connect(made, srv.port, password="s3cret")
        assert run_until(other.get("x")) is None
        assert run_until(other.select(3)) == b"OK"
        assert run_until(other.get("x")) == b"in db 3"
        errors = []
        bad = connect(made, srv.port, password="wrong", on_error=errors.append)
        with pytest.raises(RedisError):
            run_until(bad.get("x"))
        settle(0.3)
        assert len(errors) == 1 and "setting up the connection failed" in errors[0]
        assert not bad.connected  # a wrong password is final: no reconnect loop
    finally:
        for r in made:
            r.close()
        srv.stop()


def test_reconnect_fails_the_unanswered_then_comes_back(redis, clients):
    events = []
    up = AE.cv()
    sub_got = AE.cv()
    r = connect(clients, redis.port, on_error=lambda m: events.append(("error", m)),
                on_disconnect=lambda m: events.append(("down", m)),
                on_connect=lambda: (events.append(("up",)), up.send()))
    watcher = connect(clients, redis.port)
    run_until(up)
    watcher.subscribe("chan", lambda msg, ch: sub_got.send(msg))
    run_until(watcher.ping())
    run_until(r.set("k", "before"))
    blocked = r.blpop("nothing", 0)  # sent, never answered: the server dies meanwhile
    settle(0.05)
    redis.stop()
    with pytest.raises(RedisError, match="connection lost"):
        run_until(blocked)
    assert not r.connected and events[-1][0] == "down"
    queued = r.get("k")  # waits for the link
    up = AE.cv()
    again = RedisServer(port=redis.port)  # a new server on the same port (empty)
    try:
        run_until(up, 10)
        assert run_until(queued) is None  # sent after the reconnect, to the new server
        run_until(watcher.ping(), 10)  # the watcher is back too, resubscribed
        run_until(r.publish("chan", "after"))
        assert run_until(sub_got) == b"after"
    finally:
        again.stop()


def test_waiting_commands_are_bounded(clients):
    port = free_port()
    errors = []
    r = connect(clients, port, max_pending=2, on_error=errors.append)
    first, second = r.get("a"), r.get("b")
    with pytest.raises(RedisError, match="too many pending commands"):
        run_until(r.get("c"))
    settle(0.3)
    assert errors and "cannot connect" in errors[0]  # and it keeps trying
    assert len(errors) >= 2
    r.close()
    for cv in (first, second):
        with pytest.raises(RedisError, match="client closed"):
            run_until(cv)


def test_corrupt_stream_is_a_lost_connection(clients):
    def handler(conn):
        conn.recv(1000)
        conn.sendall(b"?this is not RESP\r\n")
        conn.recv(1000)
    errors = []
    with httpservers.Scripted(handler) as scripted:
        r = connect(clients, scripted.port, on_error=errors.append, reconnect=False)
        with pytest.raises(RedisError, match="protocol error"):
            run_until(r.ping())
    assert "protocol error" in errors[0]
