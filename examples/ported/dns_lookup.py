#!/usr/bin/env python3
# Parallel DNS lookups with AnyEvent::DNS.  Twin: dns_lookup.pl.
# usage: python3 dns_lookup.py RESOLV_CONF DOMAIN
# RESOLV_CONF names the servers to ask (Perl's resolver talks to port 53 only).
from __future__ import annotations

import signal
import sys
from typing import Any, Callable

from anyevent import AE
import anyevent.dns

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the Perl twin

sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # print each line at once

conf, domain = sys.argv[1:3]

# a resolver configured from the given file replaces the default one
resolver = anyevent.dns.Resolver()
with open(conf) as fh:
    resolver.parse_resolv_conf(fh.read())
anyevent.dns.RESOLVER = resolver

answer: dict[str, tuple[Any, ...]] = {}
done = AE.cv()

# start one query; begin/end count the outstanding ones
def lookup(what: str, query: Callable[..., object], *args: str) -> None:

    done.begin()
    def got(*results: Any) -> None:
        answer[what] = results  # the callback receives the results as arguments
        done.end()
    query(*args, got)

lookup("a",       anyevent.dns.a,    "www." + domain)
lookup("aaaa",    anyevent.dns.aaaa, "www." + domain)
lookup("mx",      anyevent.dns.mx,   domain)
lookup("txt",     anyevent.dns.txt,  "txt." + domain)
lookup("srv",     anyevent.dns.srv,  "ldap", "tcp", domain)
lookup("ptr",     anyevent.dns.reverse_lookup, "192.0.2.10")
lookup("missing", anyevent.dns.a,    "nothing." + domain)
# the general form: whole records (name, type, class, ttl, data...)
lookup("records", lambda name, cb: resolver.resolve(name, "a", cb), "alias." + domain)

done.recv()

# print in a fixed order: the answers arrived in any order
for what in "a aaaa mx txt srv ptr missing records".split():
    results = ["[%s]" % " ".join(map(str, r)) if isinstance(r, tuple) else r for r in answer[what]]
    print("%s: %s" % (what, " ".join(results) if results else "(nothing)"))
