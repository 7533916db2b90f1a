"""The cluster link of examples/chat_server.py: chat servers (nodes) on one Redis.

Every node delivers what its own users say to its own users at once and
publishes it on one Redis pub/sub channel; every other node relays it to its
users.  So each line reaches every user of the cluster once, and in the
order its sender sent it (one sender, one node, one Redis connection).

The namespace is shared through Redis keys (``PREFIX`` first):

* ``nick:<lowercased nick>`` = the owning node's id, with a TTL: a nick is
  claimed atomically (a Lua script: free, or already ours) and kept alive by
  the node's heartbeat (every TTL/3 seconds);
* ``members:<node id>``: the set of the node's nicks, for ``/who`` (it
  outlives the node's TTL: the node that reaps a dead one reads it);
* ``nodes``: a sorted set of node ids scored by when each stops being alive
  (refreshed by the heartbeat).  Every heartbeat also reaps the nodes past
  that time: the node whose script removes one (exactly one does) frees its
  nicks and tells the cluster that its users have left; ``reaped:<node id>``
  tells the node, should it come back, to announce its users again.

When Redis goes away, local chat goes on: users are told once that the link
is down and that until it is back they reach only this node's users; lines
said meanwhile are not queued for later (memory stays bounded, nothing
arrives out of its time).  The Redis clients reconnect with backoff; once
both links are up again the node re-claims its users' nicks and says the
link is back.  Conflict rule: a nick that another node's user claimed while
this node's claim had lapsed (the link was down for longer than the TTL)
stays with that user; ours is renamed to a fresh guest nick and told why.
Nick changes are refused while the link is down (they could not be checked).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Callable, Protocol
from urllib.parse import unquote, urlsplit

from anyevent import AE
from anyevent.redis import Redis, RedisError

log = logging.getLogger("chat")

#: Key and channel prefix in Redis.
PREFIX = "chat:"
#: Longest wait between two reconnection attempts (seconds).
MAX_BACKOFF = 2.0

# -- the scripts (atomic in Redis); ARGV[1] is PREFIX, ARGV[2] this node's id --

# claim nick ARGV[4] (releasing ARGV[5] unless ''): 1, or 0 if another node has it
_CLAIM = """
local p, me, ttl, new, old = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = p .. 'nick:' .. string.lower(new)
local owner = redis.call('GET', key)
if owner and owner ~= me then return 0 end
local members = p .. 'members:' .. me
if old ~= '' then
  local okey = p .. 'nick:' .. string.lower(old)
  if okey ~= key and redis.call('GET', okey) == me then redis.call('DEL', okey) end
  redis.call('SREM', members, old)
end
redis.call('SET', key, me, 'EX', ttl)
redis.call('SADD', members, new)
redis.call('EXPIRE', members, 3 * ttl)
return 1
"""

# release the nicks ARGV[3..]
_RELEASE = """
local p, me = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local key = p .. 'nick:' .. string.lower(ARGV[i])
  if redis.call('GET', key) == me then redis.call('DEL', key) end
  redis.call('SREM', p .. 'members:' .. me, ARGV[i])
end
return 1
"""

# goodbye: the node and all its nicks go
_LEAVE = """
local p, me = ARGV[1], ARGV[2]
redis.call('ZREM', p .. 'nodes', me)
for _, nick in ipairs(redis.call('SMEMBERS', p .. 'members:' .. me)) do
  local key = p .. 'nick:' .. string.lower(nick)
  if redis.call('GET', key) == me then redis.call('DEL', key) end
end
redis.call('DEL', p .. 'members:' .. me)
return 1
"""

# heartbeat: stay alive, keep the nicks ARGV[5..] (ARGV[4] = '1': they are all
# of them, rebuild the member set), reap the dead.  Returns {back, lost, gone}:
# back = 1 if this node had been reaped, lost = the nicks another node holds,
# gone = {node id, {nicks}, ...} of the nodes this call reaped.
_HEARTBEAT = """
local p, me, ttl, full = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = tonumber(redis.call('TIME')[1])
local back = redis.call('DEL', p .. 'reaped:' .. me)
local members = p .. 'members:' .. me
if full == '1' then redis.call('DEL', members) end
redis.call('ZADD', p .. 'nodes', now + ttl, me)
local lost = {}
for i = 5, #ARGV do
  local nick = ARGV[i]
  local key = p .. 'nick:' .. string.lower(nick)
  local owner = redis.call('GET', key)
  if owner and owner ~= me then
    lost[#lost + 1] = nick
  else
    redis.call('SET', key, me, 'EX', ttl)
    redis.call('SADD', members, nick)
  end
end
redis.call('EXPIRE', members, 3 * ttl)
local gone = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now)) do
  redis.call('ZREM', p .. 'nodes', node)
  local nicks = redis.call('SMEMBERS', p .. 'members:' .. node)
  for _, nick in ipairs(nicks) do
    local key = p .. 'nick:' .. string.lower(nick)
    if redis.call('GET', key) == node then redis.call('DEL', key) end
  end
  redis.call('DEL', p .. 'members:' .. node)
  redis.call('SET', p .. 'reaped:' .. node, 1, 'EX', 86400)
  gone[#gone + 1] = node
  gone[#gone + 1] = nicks
end
return {back, lost, gone}
"""

# who: {node id, {nicks}, ...} of the live nodes
_WHO = """
local p = ARGV[1]
local now = tonumber(redis.call('TIME')[1])
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '(' .. now, '+inf')) do
  out[#out + 1] = node
  out[#out + 1] = redis.call('SMEMBERS', p .. 'members:' .. node)
end
return out
"""


class Node(Protocol):
    """What the link needs of the chat server it serves."""

    def deliver(self, data: bytes) -> None:
        """Give a line (with its newline) from another node to every local user."""
        ...

    def notice(self, text: str) -> None:
        """Tell every local user (and the log) about the link."""
        ...

    def nicks(self, settled_only: bool) -> list[str]:
        """The local users' nicks (without those with a claim in flight)."""
        ...

    def nick_lost(self, nick: str) -> None:
        """Another node's user holds ``nick``: rename ours."""
        ...


def parse_url(url: str) -> dict[str, Any]:
    """``redis://[:password@]host[:port][/db]`` as Redis() keywords."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError("not a redis://HOST[:PORT][/DB] URL: %r" % url)
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("the database in %r is not a number" % url)
    return {"host": parts.hostname, "port": parts.port or 6379, "db": int(db or 0),
            "password": unquote(parts.password) if parts.password else None}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ClusterLink:
    """This node's two Redis connections (commands; subscription) and its share
    of the cluster's state.  ``name``: shown by ``/who``; ``ttl``: seconds a
    silent node's users stay listed (the heartbeat runs every ttl/3)."""

    def __init__(self, node: Node, url: str, name: str, ttl: float,
                 on_error: Callable[[str], object]) -> None:
        self.node, self.name, self.ttl = node, name, ttl
        self.id = "%s#%s" % (name, secrets.token_hex(3))
        self._id = self.id.encode()
        self.channel = PREFIX + "events"
        self.up = False  # both links up and this node's nicks re-claimed
        self._told_down = False
        self._generation = 0  # bumped when a link goes down: stale syncs are ignored
        self._dropped = 0  # lines that could not be relayed (the link broke under them)
        options = dict(parse_url(url), on_error=on_error, max_backoff=MAX_BACKOFF,
                       on_connect=self._changed, on_disconnect=self._changed)
        self.cmd = Redis(**options)
        self.sub = Redis(**options)
        self.sub.subscribe(self.channel, cb=self._relay)
        self._beat_timer: Any = AE.timer(ttl / 3, ttl / 3, self._beat)

    # -- link state ---------------------------------------------------------------

    def _changed(self, *_: Any) -> None:
        if self.cmd.connected and self.sub.connected:
            self._sync()
        else:
            self._generation += 1
            if self.up:
                self.up = False
                self._told_down = True
                self.node.notice("* Cluster link down: until it is back, only users of "
                                 "this node (%s) see what you say." % self.name)

    def _sync(self) -> None:
        """Both links are up: once the subscription is confirmed and the nicks
        re-claimed, the node is part of the cluster again."""
        generation = self._generation
        done = AE.cv()
        done.begin(lambda cv: self._synced(generation))
        done.begin()
        self.sub.ping(cb=lambda reply: done.end())  # answered after SUBSCRIBE
        done.begin()
        self._heartbeat(True, lambda reply: done.end())
        done.end()

    def _synced(self, generation: int) -> None:
        if generation != self._generation or self.up:
            return
        if not (self.cmd.connected and self.sub.connected):
            return
        self.up = True
        if self._told_down:
            self._told_down = False
            self.node.notice("* Cluster link is back.")
        else:
            log.info("cluster link up: node %s", self.id)

    # -- relaying -------------------------------------------------------------------

    def publish(self, data: bytes, sender: bytes | None = None) -> None:
        """Send a line (with its newline) to the other nodes (to all but
        ``sender``, a node id, if given); while the link is down (users were
        told) it stays local."""
        if self.cmd.connected:
            self.cmd.publish(self.channel, (sender or self._id) + b"\n" + data,
                             cb=self._published)

    def _published(self, reply: Any) -> None:
        if isinstance(reply, RedisError):  # the link broke with it on the way
            self._dropped += 1
            log.warning("cluster link: a line could not be relayed (%s); %d so far",
                        reply, self._dropped)

    def _relay(self, message: bytes, channel: Any) -> None:
        sender, _, data = message.partition(b"\n")
        if sender != self._id:
            self.node.deliver(data)

    # -- the namespace -----------------------------------------------------------------

    def _script(self, script: str, *args: Any, cb: Callable[[Any], object]) -> None:
        self.cmd.eval(script, 0, PREFIX, self.id, *args, cb=cb)

    def claim(self, new: str, old: str | None, cb: Callable[[bool | None], object]) -> None:
        """Claim ``new`` (giving up ``old``) cluster-wide; ``cb(True)`` if it is
        ours now, ``cb(False)`` if another node's user has it, ``cb(None)`` if
        the link is down or broke before Redis answered (the resync when it is
        back claims every nick)."""
        if not self.cmd.connected:  # not queued: it could land after its user left
            cb(None)
            return
        self._script(_CLAIM, int(self.ttl), new, old or "",
                     cb=lambda reply: cb(None if isinstance(reply, RedisError) else reply == 1))

    def release(self, nick: str) -> None:
        """``nick`` left: free it (when the link is down the TTL frees it)."""
        if self.cmd.connected:
            self._script(_RELEASE, nick, cb=_ignore)

    def who(self, cb: Callable[[list[tuple[str, str]] | None], object]) -> None:
        """``cb([(nick, node name), ...])`` of the whole cluster, or ``cb(None)``."""
        def got(reply: Any) -> None:
            if isinstance(reply, RedisError) or not isinstance(reply, list):
                cb(None)
                return
            pairs = zip(reply[0::2], reply[1::2])
            cb([(_text(nick), _text(node).rsplit("#", 1)[0])
                for node, nicks in pairs for nick in nicks])
        self.cmd.eval(_WHO, 0, PREFIX, cb=got)

    def _beat(self) -> None:
        if self.up:
            self._heartbeat(False, _ignore)

    def _heartbeat(self, full: bool, then: Callable[[Any], object]) -> None:
        def got(reply: Any) -> None:
            if not isinstance(reply, RedisError):
                self._heartbeat_reply(*reply)
            then(reply)
        self._script(_HEARTBEAT, int(self.ttl), "1" if full else "0",
                     *self.node.nicks(not full), cb=got)

    def _heartbeat_reply(self, back: int, lost: list[bytes], gone: list[Any]) -> None:
        for nick in lost:
            self.node.nick_lost(_text(nick))
        for node_id, nicks in zip(gone[0::2], gone[1::2]):
            name = _text(node_id).rsplit("#", 1)[0]
            log.warning("cluster: node %s stopped answering; its %d users are gone",
                        _text(node_id), len(nicks))
            for gone_nick in sorted(_text(n) for n in nicks):
                data = ("* %s has left (node %s lost)\n" % (gone_nick, name)).encode()
                self.node.deliver(data)
                # sent as the lost node's: should it come back, it skips them
                self.publish(data, sender=node_id)
        if back:  # we had been given up for lost: the others saw our users leave
            for ours in self.node.nicks(False):
                self.publish(("* %s has joined\n" % ours).encode())

    # -- the end ---------------------------------------------------------------------

    def close(self, done: Callable[[], object]) -> None:
        """Leave the cluster (the node's nicks are freed at once); ``done()``
        once Redis confirmed it or the link is down."""
        self._beat_timer = None
        if not self.up:
            return self._closed(done)
        self._script(_LEAVE, cb=lambda reply: self._closed(done))

    def _closed(self, done: Callable[[], object]) -> None:
        self.up = False
        self.cmd.close()
        self.sub.close()
        done()


def _ignore(reply: Any) -> None:
    if isinstance(reply, RedisError):
        log.info("cluster link: %s", reply)
