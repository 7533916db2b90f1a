"""Models other than our own loop (Perl's ``AnyEvent::Impl::*``), one module each.

Each has ``install(loop, running)``, called once by
:func:`anyevent.reactor.detect`: it gives the process-wide loop object the
model's class.  :mod:`anyevent.impl.asyncio` (any asyncio loop) and
:mod:`anyevent.impl.uvloop` (uvloop's).
"""
