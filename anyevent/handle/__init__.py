"""Non-blocking buffered stream I/O: the port of AnyEvent::Handle.

A :class:`Handle` wraps a stream socket, pipe or tty (or connects one itself
with ``connect=(host, service)``), keeps a read buffer (``hdl.rbuf``, a
``bytearray``), a queue of read requests and a write buffer, and reports
problems through ``on_error(hdl, fatal, message)`` with ``hdl.errno`` set to
the errno (Perl's ``$!``).

Read requests are *readers*: callables ``reader(hdl) -> bool`` that consume
from ``hdl.rbuf`` and return true once done.  ``push_read("line", cb)`` and
friends build readers from registered *read types*; a read type is a factory
``factory(hdl, cb, *args) -> reader`` (Perl's argument order), registered
with :func:`register_read_type`.  Write types are ``fn(hdl, *args) -> bytes``
registered with :func:`register_write_type`.  Any other type name names a
module (dotted or not) whose ``anyevent_read_type`` / ``anyevent_write_type``
function is used (parent modules are tried in turn, as Perl does).

Lifetime, as in Perl: the handle's watchers reach it through a weak
reference, so the caller's references keep it alive and dropping the last one
destroys it.  A reference cycle through the handle (its callbacks referring
to it) keeps it alive until :meth:`Handle.destroy`: the cyclic garbage
collector does not look into handles (:func:`anyevent.reactor.refcounted`).
With ``linger`` (default 3600 seconds) unwritten data is still written out in
the background after destruction, reporting no errors.

The package's rooms: ``_stream`` (the Handle: queues,
read and write paths, timeouts, TLS, destruction; compiled when it can be),
``_types`` (the other built-in read and write types, and
:class:`TypeHost`, what a type may use of a handle) and
``_wire`` (the wire formats they frame with).
"""

from __future__ import annotations

from ._stream import (MAX_READ_SIZE, TLS_CTX, BytesRegex, ConnectCb, ConnectErrorCb,
                      DataCb, ErrorCb, Fh, Handle, HandleCb, HandleOptions, LineCb, PrepareCb,
                      Reader, StartTlsCb, SupportsFileno, TlsCtx, TlsDetectCb, TlsMode, ValueCb,
                      register_read_type, register_write_type, set_tls_ctx)
from ._types import TypeHost, cbor_coder, json_coder
from ._wire import CBOR_MAX_DEPTH, STORABLE_MAX_DEPTH, Bytes, ber_decode, ber_encode

__all__ = ["Handle", "register_read_type", "register_write_type", "TLS_CTX", "set_tls_ctx",
           "MAX_READ_SIZE", "ber_encode", "ber_decode", "json_coder", "cbor_coder",
           "HandleOptions"]
# (the type aliases and Protocols above, TypeHost and the two depth limits are
# this module's too; the documentation lists them as "types and data")

# the public classes and functions are documented, and shown, as this module's
for _obj in (Handle, register_read_type, register_write_type, TLS_CTX, set_tls_ctx, ber_encode,
             ber_decode, json_coder, cbor_coder, HandleOptions, TypeHost, SupportsFileno,
             TlsDetectCb):
    _obj.__module__ = __name__
del _obj
