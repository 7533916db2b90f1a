"""A Redis client on :class:`anyevent.handle.Handle`, shaped like CPAN's AnyEvent::Redis.

::

    from anyevent.redis import Redis

    r = Redis("127.0.0.1", 6379, db=2, on_error=lambda msg: print("redis:", msg))
    r.set("greeting", "hello")                       # pipelined: nothing waits
    print(r.get("greeting").recv())                  # b'hello' (a CondVar)
    r.get("greeting", lambda value: print(value))    # or a callback, Perl style
    sub = r.subscribe("news", lambda message, channel: print(channel, message))

Every command is a method (``r.hset(...)``, ``r.command("OBJECT", "ENCODING",
key)`` for the rest); it is written at once (commands pipeline: any number
may be outstanding) and its reply comes back in order, to ``cb(reply)`` if
one is given and to the returned :class:`~anyevent.reactor.CondVar`.  A Redis
error reply (``-ERR ...``) croaks the condvar (``cv.recv()`` raises
:class:`RedisError`) and is passed to ``cb`` as a :class:`RedisError`.

The RESP protocol is parsed by ``hiredis.Reader`` (the C parser of Redis's
own client), fed from the handle as data arrives.

Connection loss is never silent: the commands that were sent and not
answered fail with :class:`RedisError` ("connection lost: ..."),
``on_disconnect(message)`` is called, and the client reconnects with
exponential backoff (0.1 s doubling to ``max_backoff``), sends ``AUTH`` and
``SELECT`` again, resubscribes its channels and patterns, calls
``on_connect()`` and then sends the commands issued meanwhile (at most
``max_pending`` of them wait; one more fails at once with "too many pending
commands").  ``reconnect=False`` makes the first loss final.

Why here and not in ``examples/``: a cluster of chat servers is one user;
any daemon that publishes, caches or queues through Redis is another, and
they want a client that lives on the same loop as their handles.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

import hiredis

from .handle import Handle
from .reactor import CondVar, _report, loop

__all__ = ["Redis", "RedisError", "Subscription"]

_log = logging.getLogger("anyevent.redis")

#: ``cb(reply)`` for a command; ``cb(message, channel)`` (or with the
#: pattern first for ``psubscribe``) for subscriptions.
ReplyCb = Callable[..., object]


class RedisError(Exception):
    """An error reply of the server (``-ERR ...``: ``str(exc)`` is its text),
    or a command that could not be answered (connection lost, too many
    pending commands, client closed)."""


def _encode_arg(arg: Any) -> bytes:
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise TypeError("Redis arguments are bytes, str, int or float, not %s" % type(arg).__name__)


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode_arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Pending:
    """A command sent (or waiting to be sent) and its reply's destinations."""

    __slots__ = ("packed", "cb", "cv", "replies", "collected")

    def __init__(self, packed: bytes, cb: ReplyCb | None, replies: int = 1) -> None:
        self.packed = packed
        self.cb = cb
        self.cv: CondVar[Any] = CondVar()
        self.replies = replies  # SUBSCRIBE ch1 ch2 answers once per channel
        self.collected: list[Any] = []

    def fail(self, message: str) -> None:
        self.deliver(RedisError(message))

    def deliver(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            reply = reply if isinstance(reply, RedisError) else RedisError(str(reply))
            self.cv.croak(reply)
        else:
            self.cv.send(reply)
        if self.cb is not None:
            _call(self.cb, reply)


def _call(cb: Callable[..., object], *args: Any) -> None:
    try:
        cb(*args)
    except Exception as exc:  # noqa: BLE001 - the connection must not pay for it
        _report(exc, "redis callback")


class Subscription:
    """What :meth:`Redis.subscribe` returns: ``cancel()`` unsubscribes."""

    __slots__ = ("_redis", "_kind", "_names", "_cb")

    def __init__(self, redis: Redis, kind: str, names: tuple[str, ...], cb: ReplyCb) -> None:
        self._redis, self._kind, self._names, self._cb = redis, kind, names, cb

    def cancel(self) -> None:
        """Stop receiving: UNSUBSCRIBE (PUNSUBSCRIBE) the names no other
        subscription of this client still wants."""
        self._redis._unsubscribe(self)


class Redis:
    """A connection to one Redis server (AnyEvent::Redis's ``new``).

    ``host``, ``port``: the server (``"unix/"`` and a path for a Unix socket,
    as :func:`anyevent.socket.tcp_connect`).  ``password``: sent with AUTH on
    every connect; ``db``: selected on every connect.  ``encoding`` (e.g.
    ``"utf-8"``): bulk replies decoded to str; None (default) leaves bytes.
    ``on_error(message)``: a connection error or a lost connection (default:
    the ``anyevent`` logger's warning).  ``on_connect()``, ``on_disconnect(
    message)``: the link came up (again) / went down.  ``reconnect``,
    ``max_backoff`` (seconds), ``max_pending`` (commands waiting for a
    connection): see the module documentation.
    """

    host: str
    port: int | str
    password: str | bytes | None
    db: int
    encoding: str | None
    on_error: Callable[[str], object] | None
    on_connect: Callable[[], object] | None
    on_disconnect: Callable[[str], object] | None
    reconnect: bool
    max_backoff: float
    max_pending: int

    def __init__(self, host: str = "127.0.0.1", port: int | str = 6379, *,
                 password: str | bytes | None = None, db: int = 0, encoding: str | None = None,
                 on_error: Callable[[str], object] | None = None,
                 on_connect: Callable[[], object] | None = None,
                 on_disconnect: Callable[[str], object] | None = None,
                 reconnect: bool = True, max_backoff: float = 10.0,
                 max_pending: int = 100000) -> None:
        self.host, self.port = host, port
        self.password, self.db, self.encoding = password, db, encoding
        self.on_error, self.on_connect, self.on_disconnect = on_error, on_connect, on_disconnect
        self.reconnect, self.max_backoff, self.max_pending = reconnect, max_backoff, max_pending
        self._handle: Handle | None = None
        self._ready = False  # connected, AUTH/SELECT sent
        self._sent: deque[_Pending] = deque()  # written, waiting for replies
        self._waiting: deque[_Pending] = deque()  # issued while not connected
        self._subs: dict[tuple[str, str], list[Subscription]] = {}
        self._pubsub = False  # the server has this connection in subscriber mode
        self._backoff = 0.1
        self._retry: Any = None
        self._closed = False
        self._connect()

    # -- the connection ---------------------------------------------------------

    def _connect(self) -> None:
        self._reader = hiredis.Reader(encoding=self.encoding) if self.encoding else hiredis.Reader()
        self._handle = Handle(connect=(self.host, self.port), on_connect=self._connected,
                              on_connect_error=self._connect_failed, on_error=self._lost,
                              on_eof=self._eof, on_read=self._read)

    def _connected(self, hdl: Handle, *_: Any) -> None:
        self._backoff = 0.1
        hello: list[_Pending] = []
        if self.password is not None:
            hello.append(_Pending(_pack(("AUTH", self.password)), None))
        if self.db:
            hello.append(_Pending(_pack(("SELECT", self.db)), None))
        self._pubsub = False
        for (kind, name) in self._subs:
            hello.append(_Pending(_pack((kind.upper(), name)), None))
            self._pubsub = True
        for pending in hello:
            pending.cv.cb(self._check_hello)
            self._send(pending)
        self._ready = True
        if self.on_connect is not None:
            _call(self.on_connect)
        while self._waiting and self._ready:
            self._send(self._waiting.popleft())

    def _check_hello(self, cv: CondVar[Any]) -> None:
        try:
            cv.recv()
        except RedisError as exc:  # a wrong password, a db out of range: nothing will work
            self._fail_link("setting up the connection failed: %s" % exc, retry=False)

    def _connect_failed(self, hdl: Handle, message: str) -> None:
        self._handle = None
        self._fail_link("cannot connect to %s:%s: %s" % (self.host, self.port, message))

    def _lost(self, hdl: Handle, fatal: bool, message: str) -> None:
        if fatal:
            self._handle = None
            self._fail_link("connection lost: %s" % message)

    def _eof(self, hdl: Handle) -> None:
        self._fail_link("connection lost: the server closed it")

    def _fail_link(self, message: str, retry: bool = True, report: bool = True) -> None:
        """The link is down: fail what was sent, tell the user, maybe come back."""
        was_ready, self._ready = self._ready, False
        hdl, self._handle = self._handle, None
        if hdl is not None:
            hdl.destroy()
        sent, self._sent = self._sent, deque()
        for pending in sent:
            pending.fail(message)
        if not report:
            pass
        elif self.on_error is not None:
            _call(self.on_error, message)
        else:
            _log.warning("%s:%s: %s", self.host, self.port, message)
        if was_ready and report and self.on_disconnect is not None:
            _call(self.on_disconnect, message)
        if self.reconnect and retry and not self._closed:
            self._retry = loop.timer(self._backoff, 0, self._reconnect)
            self._backoff = min(self._backoff * 2, self.max_backoff)
        else:
            self._closed = True
            waiting, self._waiting = self._waiting, deque()
            for pending in waiting:
                pending.fail(message)

    def _reconnect(self) -> None:
        self._retry = None
        if not self._closed:
            self._connect()

    @property
    def connected(self) -> bool:
        """True while the link is up (commands go out at once)."""
        return self._ready

    def close(self) -> None:
        """Close the connection; unanswered and waiting commands fail with
        "client closed"; no reconnect."""
        self._closed = True
        self._retry = None
        if self._handle is not None or self._sent or self._waiting:
            self._fail_link("client closed", retry=False, report=False)

    # -- commands ------------------------------------------------------------------

    def command(self, *args: Any, cb: ReplyCb | None = None) -> CondVar[Any]:
        """Send one command (``args``: its words, bytes/str/int/float) and
        return a :class:`CondVar` for its reply.  ``cb(reply)`` is also called
        with it; an error reply croaks the condvar (``recv()`` raises
        :class:`RedisError`) and calls ``cb(None, message)`` if ``cb`` takes
        two arguments (a one-argument ``cb`` is not called then).  Replies:
        bytes (str with ``encoding``), int, list, None.  As in Perl, the
        callback may also be the last positional argument."""
        if cb is None and args and callable(args[-1]):
            args, cb = args[:-1], args[-1]
        if not args:
            raise TypeError("Redis.command needs a command name")
        pending = _Pending(_pack(args), cb)
        if self._closed:
            pending.fail("client closed")
        elif self._ready:
            self._send(pending)
        elif len(self._waiting) >= self.max_pending:
            pending.fail("too many pending commands (%d) while not connected" % self.max_pending)
        else:
            self._waiting.append(pending)
        return pending.cv

    def __getattr__(self, name: str) -> Callable[..., CondVar[Any]]:
        """``r.get(key, cb)`` is ``r.command("GET", key, cb=cb)`` (AnyEvent::Redis's AUTOLOAD)."""
        if name.startswith("_"):
            raise AttributeError(name)
        verb = name.upper()

        def method(*args: Any, cb: ReplyCb | None = None) -> CondVar[Any]:
            return self.command(verb, *args, cb=cb)
        method.__name__ = name
        return method

    def _send(self, pending: _Pending) -> None:
        self._sent.append(pending)
        assert self._handle is not None
        self._handle.push_write(pending.packed)

    # -- replies ---------------------------------------------------------------------

    def _read(self, hdl: Handle) -> None:
        reader = self._reader
        reader.feed(hdl.take_rbuf())  # type: ignore[arg-type]  # (any buffer: the stub says bytes)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # (EBADMSG: the stream cannot be trusted)
                return self._fail_link("connection lost: protocol error: %s" % exc)
            if reply is False:
                return
            self._dispatch(reply)
            if self._handle is not hdl:
                return

    def _dispatch(self, reply: Any) -> None:
        if self._pubsub and type(reply) is list and reply:
            kind = reply[0]
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind == "message" and len(reply) == 3:
                return self._publish("subscribe", reply[1], (reply[2], reply[1]))
            if kind == "pmessage" and len(reply) == 4:
                return self._publish("psubscribe", reply[1], (reply[3], reply[2], reply[1]))
            if kind in ("unsubscribe", "punsubscribe") and reply[-1] == 0:
                self._pubsub = False  # the last one: back to normal replies
        if not self._sent:
            if self.on_error is not None:
                _call(self.on_error, "unexpected reply: %r" % (reply,))
            return
        pending = self._sent[0]
        pending.collected.append(reply)
        if len(pending.collected) < pending.replies:
            return
        self._sent.popleft()
        result = pending.collected[0] if pending.replies == 1 else pending.collected
        pending.deliver(result if not isinstance(reply, hiredis.ReplyError) else reply)

    def _publish(self, kind: str, name: Any, args: tuple[Any, ...]) -> None:
        key = (kind, name.decode() if isinstance(name, bytes) else name)
        for sub in list(self._subs.get(key, ())):
            _call(sub._cb, *args)

    # -- publish/subscribe ------------------------------------------------------------------

    def subscribe(self, *channels: str, cb: ReplyCb | None = None) -> Subscription:
        """Receive ``cb(message, channel)`` for every message published on
        ``channels`` (the callback may also come last, as in Perl).  Returns a
        :class:`Subscription`; ``cancel()`` it to stop.  The subscriptions are
        renewed after a reconnect.  A connection with subscriptions should
        carry only (P)SUBSCRIBE/(P)UNSUBSCRIBE/PING: that is Redis's rule."""
        return self._subscribe("subscribe", channels, cb)

    def psubscribe(self, *patterns: str, cb: ReplyCb | None = None) -> Subscription:
        """As :meth:`subscribe` for glob ``patterns``: ``cb(message, channel, pattern)``."""
        return self._subscribe("psubscribe", patterns, cb)

    def _subscribe(self, kind: str, names: tuple[Any, ...], cb: ReplyCb | None) -> Subscription:
        if cb is None and names and callable(names[-1]):
            names, cb = names[:-1], names[-1]
        if not names or cb is None:
            raise TypeError("%s needs at least one name and a callback" % kind)
        sub = Subscription(self, kind, tuple(str(n) for n in names), cb)
        new = [n for n in sub._names if (kind, n) not in self._subs]
        for name in sub._names:
            self._subs.setdefault((kind, name), []).append(sub)
        if new:
            self._acked(kind.upper(), new)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        gone = []
        for name in sub._names:
            subs = self._subs.get((sub._kind, name))
            if subs is not None and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self._subs[(sub._kind, name)]
                    gone.append(name)
        if gone:
            self._acked("UN" + sub._kind.upper() if sub._kind == "subscribe" else "PUNSUBSCRIBE", gone)

    def _acked(self, verb: str, names: list[str]) -> None:
        """Send a (un)subscribe whose reply is one acknowledgement per name."""
        if self._ready:  # (otherwise _connected subscribes to what is in _subs then)
            self._pubsub = self._pubsub or not verb.startswith(("UN", "PUN"))
            self._send(_Pending(_pack((verb, *names)), None, replies=len(names)))
