"""examples/chat_server.py as a cluster: nodes (real processes) on a real
redis-server, clients on each (plain and TLS), `--workers` on one port.

Waits are for lines and log entries, not fixed times; the one fixed wait is
the Redis outage the scenario itself asks for.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import time

import pytest

from redisservers import redis  # noqa: F401 (a fixture)
from test_chat import (SERVER, WAIT, Server, greet, peers,  # noqa: F401 (peers: a fixture)
                       sock_peer, tls_peer, wait_for)

TTL = 3  # --cluster-ttl of the nodes here (seconds)
UP = "cluster link up"


@pytest.fixture
def nodes(tmp_path, redis):
    """Starts nodes on ``redis``: ``nodes(n)`` -> a list of Server."""
    made = []

    def start(n, *args):
        new = [Server(tmp_path, "--redis", "redis://127.0.0.1:%d" % redis.port,
                      "--cluster-ttl", str(TTL), "--node-name", "node%d" % (len(made) + i),
                      *args, ready=UP) for i in range(n)]
        made.extend(new)
        return new
    yield start
    for node in made:
        node.stop()
        assert "Traceback" not in node.log_text(), node.log_text()[-3000:]


def connect(peers, node, nick, tls=False):
    peer = greet(tls_peer(node.port) if tls else sock_peer(node.port), nick, tls)
    peers.append(peer)
    return peer


def lines_until(peer, done, timeout=WAIT):
    """Lines ``peer`` receives until ``done(lines)`` is true."""
    got = []
    deadline = time.monotonic() + timeout
    while not done(got):
        try:
            _, line = peer.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("%s: waited in vain; got %r" % (peer.nick, got[-10:])) from None
        assert line is not None, "%s: EOF; got %r" % (peer.nick, got[-10:])
        got.append(line)
    return got


def who(peer):
    peer.send("/who")
    _, m = peer.expect(r"^\* Here: (.*)$")
    return dict(re.findall(r"([^ ,]+) \(([^)]+)\)", m.group(1)))


def test_every_line_reaches_every_client_of_the_cluster_once_and_in_order(nodes, peers):
    three = nodes(3)
    users = [connect(peers, node, "u%d%s" % (i, kind), tls=kind == "tls")
             for i, node in enumerate(three) for kind in ("plain", "tls")]
    names = [u.nick for u in users]
    assert sorted(who(users[0])) == sorted(names)
    for user in users:  # everyone has seen everyone join before the lines begin
        wait_for(lambda: len(who(user)) == len(names), what="a complete /who")
    count = 50
    for i in range(count):
        for user in users:
            user.send("m %s %d" % (user.nick, i))
    for user in users:
        user.send("end %s" % user.nick)
    for user in users:
        others = [n for n in names if n != user.nick]
        got = lines_until(user, lambda lines: all("<%s> end %s" % (n, n) in lines
                                                  for n in others))
        for sender in names:
            seq = [int(m.group(1)) for line in got
                   for m in [re.match(r"^<%s> m %s (\d+)$" % (sender, sender), line)] if m]
            assert seq == ([] if sender == user.nick else list(range(count))), (user.nick, sender)


def test_nicks_are_unique_across_nodes_and_who_names_the_node(nodes, peers):
    a, b = nodes(2)
    alice = connect(peers, a, "alice")
    bob = connect(peers, b, "bob")
    bob.send("/nick ALICE")
    bob.expect(r"^\* Nick ALICE is already taken$")
    assert who(bob) == {"alice": "node0", "bob": "node1"}
    alice.send("/nick alicia")
    bob.expect(r"^\* alice is now known as alicia$")
    bob.send("/nick Alice")  # the old nick was given up
    bob.expect(r"^\* You are now known as Alice$")
    alice.expect(r"^\* bob is now known as Alice$")
    alice.send("/quit")
    alice.expect_eof()
    bob.expect(r"^\* alicia has left$")
    assert who(bob) == {"Alice": "node1"}


def test_a_killed_node_s_users_are_gone_within_the_ttl(nodes, peers):
    a, b, c = nodes(3)
    alice = connect(peers, a, "alice")
    connect(peers, b, "bob")
    connect(peers, c, "carol")
    alice.expect(r"^\* guest\S+ is now known as carol$")
    assert set(who(alice)) == {"alice", "bob", "carol"}
    c.proc.kill()  # SIGKILL: no goodbye
    began = time.monotonic()
    alice.expect(r"^\* carol has left \(node node2 lost\)$", timeout=3 * TTL)
    assert time.monotonic() - began <= TTL + TTL / 3 + 1.0
    assert set(who(alice)) == {"alice", "bob"}
    alice.send("/nick carol")  # the nick is free again
    alice.expect(r"^\* You are now known as carol$")
    logs = a.log_text() + b.log_text()
    assert logs.count("node node2#") == 1, "exactly one node reaps the dead one"


def test_redis_outage_local_chat_goes_on_and_the_cluster_comes_back(nodes, peers, redis):
    a, b = nodes(2)
    alice = connect(peers, a, "alice")
    bob = connect(peers, b, "bob")
    alice.expect(r"^\* guest\S+ is now known as bob$")
    redis.stop()
    down = r"^\* Cluster link down: until it is back, only users of this node \(%s\) see"
    alice.expect(down % "node0")
    bob.expect(down % "node1")
    anna = sock_peer(a.port)  # a newcomer is told too, and local chat works
    peers.append(anna)
    _, guest = anna.expect(r"^\* Welcome to the anyevent chat\. You are (\S+)\.")
    anna.expect(r"^\* The cluster link is down: until it is back, only users of this node")
    anna.send("/nick anna")  # could not be checked cluster-wide: refused
    anna.expect(r"^\* The cluster link is down \(or a /nick is under way\): try again")
    alice.send("said during the outage")
    anna.expect(r"^<alice> said during the outage$")
    time.sleep(5)  # the outage
    redis.restart()  # empty: every node must claim its users' nicks again
    for user in (alice, bob):
        got = lines_until(user, lambda lines: "* Cluster link is back." in lines, timeout=WAIT)
        assert not any("Cluster link down" in line for line in got), "told once only"
    bob.send("/nick alice")
    bob.expect(r"^\* Nick alice is already taken$")
    assert who(bob) == {"alice": "node0", guest.group(1): "node0", "bob": "node1"}
    for i in range(100):
        alice.send("after %d" % i)
        bob.send("back %d" % i)
    got = lines_until(bob, lambda lines: "<alice> after 99" in lines)
    assert [x for x in got if x.startswith("<alice>")] == ["<alice> after %d" % i
                                                           for i in range(100)]
    got = lines_until(alice, lambda lines: "<bob> back 99" in lines)
    assert [x for x in got if x.startswith("<bob>")] == ["<bob> back %d" % i for i in range(100)]
    assert "said during the outage" not in "\n".join(bob.seen)


def test_workers_share_one_port_and_stop_together(tmp_path, redis, peers):
    node = Server(tmp_path, "--redis", "redis://127.0.0.1:%d" % redis.port, "--workers", "2",
                  ready=UP, count=2)
    try:
        users = [connect(peers, node, "w%d" % i) for i in range(12)]
        places = who(users[0])
        assert len(places) == 12
        assert {p.rsplit("/", 1)[1] for p in places.values()} == {"0", "1"}, places
        on = {n: [u for u in users if places[u.nick].endswith("/" + n)] for n in "01"}
        on["0"][0].send("from worker 0")
        on["1"][0].expect(r"^<%s> from worker 0$" % on["0"][0].nick)
        node.proc.send_signal(signal.SIGTERM)
        for user in users:
            user.expect(r"^\* Server is shutting down\. Goodbye!$")
        assert node.proc.wait(timeout=WAIT) == 0
        log = node.log_text()
        assert log.count("caught SIGTERM, shutting down") == 2, log
        assert "Traceback" not in log
    finally:
        node.stop()


def test_workers_without_redis_are_refused_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, SERVER, "--workers", "2"], capture_output=True,
                         text=True, timeout=WAIT, env=dict(os.environ,
                                                           XDG_CACHE_HOME=str(tmp_path)))
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "--workers needs --redis" in out.stderr, out.stderr


def test_a_node_cut_off_past_the_ttl_comes_back_and_yields_a_nick_taken_meanwhile(nodes, peers):
    """SIGSTOP a node for longer than the TTL: the others give its users up;
    one of them takes a nick of the stopped node; SIGCONT: the node learns
    it had been given up, renames its user (the rule: the nick stays with
    whoever holds it in Redis) and its users join the others again."""
    a, b = nodes(2)
    alice = connect(peers, a, "alice")
    anna = connect(peers, a, "anna")
    bob = connect(peers, b, "bob")
    a.proc.send_signal(signal.SIGSTOP)
    try:
        bob.expect(r"^\* alice has left \(node node0 lost\)$", timeout=3 * TTL)
        bob.expect(r"^\* anna has left \(node node0 lost\)$")
        bob.send("/nick alice")
        bob.expect(r"^\* You are now known as alice$")
    finally:
        a.proc.send_signal(signal.SIGCONT)
    _, m = alice.expect(r"^\* Your nick alice was taken on another node while this node was "
                        r"cut off from the cluster; you are now (\S+)\.$", timeout=3 * TTL)
    guest = m.group(1)
    anna.expect(r"^\* alice is now known as %s$" % guest)
    got = lines_until(bob, lambda lines: "* anna has joined" in lines
                      and "* %s has joined" % guest in lines)
    assert not any("is now known as" in line for line in got), got
    assert who(bob) == {"alice": "node1", "anna": "node0", guest: "node0"}
    alice.send("still here")
    bob.expect(r"^<%s> still here$" % guest)
    anna.expect(r"^<%s> still here$" % guest)
    assert not any("node node0 lost" in line for line in anna.seen), "told of itself"
