# cython: language_level=3
"""C twins of the few functions the core runs for every poll, read, write, line
and timer: the poll with the lookup of its records, a handle's socket calls,
taking a line off rbuf, and ``PyObject_GC_UnTrack`` for
:func:`anyevent.reactor.refcounted`.

Part of the optional compiled core (setup.py); without it, or with
``ANYEVENT_PURE_PYTHON=1``, the core uses its pure-Python versions
(``reactor._ready_recs`` over :meth:`select.epoll.poll`, ``_sock_recv`` with
``socket.send``, ``_take_line``, and the C call through ctypes), and each twin
must behave exactly as those do (tests/test_speedups.py): the same bytes,
return values and exceptions.  What the twins leave out is the cost around
the work: for the poll a tuple per event, for the socket calls argument
parsing, a buffer object per read,
and releasing the GIL (the sockets are non-blocking, so a call never
waits), with :class:`OSError` subclasses from errno and ``EINTR`` retried
after running signal handlers, as PEP 475 has it; for lines, the method
calls and the intermediate copy of a slice.
"""

cimport cython
from anyevent.reactor cimport _FdEntry
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport PyObject
from libc.errno cimport EINTR, errno
from libc.math cimport ceil
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcmp, memcpy

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

cdef extern from "Python.h":
    int PyObject_IS_GC(object)
    void PyObject_GC_UnTrack(void *)

cdef extern from "<sys/socket.h>" nogil:
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)

# CPython's socket object (Modules/socketmodule.h) starts with its descriptor
# right after the object header, in every 3.x; checked at import below.
cdef extern from *:
    """
    typedef struct { PyObject_HEAD int sock_fd; } anyevent_socket_head;
    """
    ctypedef struct anyevent_socket_head:
        int sock_fd

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum:
        EPOLLIN
        EPOLLOUT

import socket as _socket
from os import strerror as _strerror

# Reads land here first (an rbuf only grows by what arrived), except large
# ones into an empty buffer, which are read in place.
cdef enum: SCRATCH = 262144
# Reads of more than this into an empty buffer skip the scratch.
cdef enum: DIRECT_MIN = 16384
cdef char scratch[SCRATCH]


cdef bint _layout_checked():
    cdef anyevent_socket_head *head
    probes = [_socket.socket(), _socket.socket()]
    try:
        for probe in probes:
            head = <anyevent_socket_head *> probe
            if head.sock_fd != probe.fileno():
                return False
        return True
    finally:
        for probe in probes:
            probe.close()


cdef bint _read_fd_field = _layout_checked()


cdef int _fileno(sock) except? -1:
    # a closed socket's descriptor is -1, and the call fails with EBADF as the
    # socket's own methods do
    if _read_fd_field:
        return (<anyevent_socket_head *> sock).sock_fd
    return sock.fileno()


def recv_append(sock, bytearray buf, Py_ssize_t size):
    """``recv`` up to ``size`` bytes from ``sock`` onto the end of ``buf``
    (a :class:`bytearray`); returns the count, 0 at end of stream.  Raises
    :class:`OSError` (:class:`BlockingIOError` when nothing is there)."""
    cdef int fd = _fileno(sock)
    cdef ssize_t n
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(buf)
    cdef char *into = scratch
    cdef int err = 0
    cdef bint direct = old == 0 and size > DIRECT_MIN
    if direct:
        # an empty buffer (the usual case: the last message was consumed)
        # takes a large read directly, without passing through the scratch
        # (small ones are cheaper copied than resized twice)
        PyByteArray_Resize(buf, size)
        into = PyByteArray_AS_STRING(buf)
    elif size > SCRATCH:
        size = SCRATCH
    while True:
        n = c_recv(fd, into, size, 0)
        if n >= 0:
            break
        err = errno
        if err != EINTR:
            break
        try:
            PyErr_CheckSignals()
        except BaseException:
            if direct:
                PyByteArray_Resize(buf, 0)
            raise
    if direct:
        PyByteArray_Resize(buf, n if n > 0 else 0)
    if n < 0:  # (as PyErr_SetFromErrno, with the errno from before the resize)
        raise OSError(err, _strerror(err))
    if n > 0 and not direct:
        PyByteArray_Resize(buf, old + n)
        memcpy(PyByteArray_AS_STRING(buf) + old, into, n)
    return n


def send(sock, data):
    """``sock.send(data)``: hands what the kernel takes of ``data`` (any
    bytes-like object) to it; returns the count.  Raises :class:`OSError`
    (:class:`BlockingIOError` when the kernel takes nothing)."""
    cdef int fd = _fileno(sock)
    cdef Py_buffer view
    cdef ssize_t n
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        while True:
            n = c_send(fd, view.buf, view.len, 0)
            if n >= 0:
                return n
            if errno != EINTR:
                PyErr_SetFromErrno(OSError)
            PyErr_CheckSignals()
    finally:
        PyBuffer_Release(&view)


def take_line(bytearray rbuf, Py_ssize_t start):
    """``handle._take_line`` for an exact :class:`bytearray`: take the first
    line ending in ``\\n`` at or after ``start`` off the front of ``rbuf``;
    returns ``(line, eol)`` (``eol`` ``b"\\r\\n"`` or ``b"\\n"``, not in
    ``line``), or None when there is no newline there."""
    cdef char *data = PyByteArray_AS_STRING(rbuf)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(rbuf)
    cdef Py_ssize_t pos, end
    cdef const char *nl
    if start < 0:  # from the end, as bytearray.find counts it
        start = start + size if start + size > 0 else 0
    if start >= size:
        return None
    nl = <const char *> memchr(data + start, 10, size - start)
    if nl == NULL:
        return None
    pos = nl - data
    end = pos
    eol = b"\n"
    if pos and data[pos - 1] == 13:
        end = pos - 1
        eol = b"\r\n"
    line = PyBytes_FromStringAndSize(data, end)
    del rbuf[:pos + 1]
    return line, eol


def take(bytearray buf, Py_ssize_t n):
    """``bytes(buf[:n])``, taken off the front of ``buf`` (one copy)."""
    if n < 0 or n > PyByteArray_GET_SIZE(buf):
        raise ValueError("take: %d bytes of %d" % (n, PyByteArray_GET_SIZE(buf)))
    return _take(buf, n)


cdef inline bytes _take(bytearray buf, Py_ssize_t n):
    data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buf), n)
    del buf[:n]
    return data


cdef inline const char *_find_pair(const char *p, const char *end, char a, char b):
    """The first ``a`` followed by ``b`` in [p, end), or NULL."""
    while p + 1 < end:
        p = <const char *> memchr(p, a, end - p - 1)
        if p == NULL:
            return NULL
        if p[1] == b:
            return p
        p += 1
    return NULL


def take_until(bytearray rbuf, Py_ssize_t start, bytes eol):
    """``handle._take_until`` for an exact :class:`bytearray`: take the bytes
    before the first ``eol`` found at or after ``start`` off the front of
    ``rbuf``, with the ``eol``; returns them, or None when ``eol`` is not
    there (an empty ``eol`` is found at ``start``, as ``bytearray.find``
    finds it)."""
    cdef char *data = PyByteArray_AS_STRING(rbuf)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(rbuf)
    cdef Py_ssize_t n = len(eol)
    cdef const char *found
    if start < 0:  # from the end, as bytearray.find counts it
        start = start + size if start + size > 0 else 0
    if start + n > size:
        return None
    if n == 2:  # CRLF: memchr for the first byte, cheaper than memmem's setup per call
        found = _find_pair(data + start, data + size, (<const char *> eol)[0],
                           (<const char *> eol)[1])
    else:
        found = <const char *> memmem(data + start, size - start, <const char *> eol, n)
    if found == NULL:
        return None
    line = PyBytes_FromStringAndSize(data, found - data)
    del rbuf[:found - data + n]
    return line


cdef Py_ssize_t _find_alternative(bytearray buf, Py_ssize_t pos, bytes first, tuple alts,
                                  Py_ssize_t *end) except -2:
    """Where the leftmost of the strings ``alts`` occurs at or after ``pos``
    (the first of them in order at that place), -1 if none; ``end`` gets
    its end.  ``first``: 256 bytes marking the bytes they start with."""
    cdef const unsigned char *table = <const unsigned char *> first
    cdef const unsigned char *data = <const unsigned char *> PyByteArray_AS_STRING(buf)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf), count = len(alts), i, n
    cdef bytes alt
    if len(first) != 256:
        raise ValueError("the table of first bytes has 256 entries")
    if pos < 0:
        pos = 0
    while pos < size:
        if table[data[pos]]:
            for i in range(count):
                alt = <bytes> alts[i]
                n = len(alt)
                if pos + n <= size and memcmp(data + pos, <const char *> alt, n) == 0:
                    end[0] = pos + n
                    return pos
        pos += 1
    return -1


def search_end(bytearray buf, Py_ssize_t start, bytes first, tuple alts):
    """``handle._search_end`` for a regex whose matches are the strings
    ``alts``, in the order the regex engine tries them (see
    ``handle._alternatives``): the end of the first match at or after
    ``start``, or None."""
    cdef Py_ssize_t end = 0
    if _find_alternative(buf, start, first, alts, &end) < 0:
        return None
    return end


def take_match(bytearray buf, Py_ssize_t start, bytes first, tuple alts):
    """``handle._take_match`` for a regex whose matches are the strings
    ``alts`` (as :func:`search_end`): the bytes before the first match at or
    after ``start`` and the match, ``(line, eol)``, taken off the front of
    ``buf``; None when there is none."""
    cdef Py_ssize_t end = 0
    cdef Py_ssize_t begin = _find_alternative(buf, start, first, alts, &end)
    if begin < 0:
        return None
    cdef char *data = PyByteArray_AS_STRING(buf)
    line = PyBytes_FromStringAndSize(data, begin)
    eol = PyBytes_FromStringAndSize(data + begin, end - begin)
    del buf[:end]
    return line, eol


# -- CBOR: where the item at the start of a buffer ends ------------------------------

cdef enum:
    _CBOR_MAX_DEPTH = 400
    _CBOR_INLINE = 16  # open containers counted inside the object; deeper, on the heap
cdef unsigned long long _CBOR_INDEFINITE = 0xFFFFFFFFFFFFFFFFULL
cdef unsigned long long _CBOR_MANY = 0xFFFFFFFFFFFFFFFEULL  # more than could ever arrive


@cython.final      # (its C methods called directly, so that the C compiler inlines them)
cdef class CborScan:
    """``handle._CborScan`` in C: the same results, errors and resumption
    (``end(buf, gen)``, ``reset()``); the containers still open are counted
    in a C array (at most CBOR_MAX_DEPTH deep, as there)."""
    cdef Py_ssize_t pos, gen
    cdef int depth
    cdef unsigned long long *open
    cdef unsigned long long inline[_CBOR_INLINE]

    def __cinit__(self):
        self.open = self.inline

    def __dealloc__(self):
        if self.open != self.inline:
            PyMem_Free(self.open)

    def __init__(self):
        self.reset()

    def reset(self):
        self.pos = self.gen = 0
        self.depth = 0

    def end(self, bytearray buf, Py_ssize_t gen):
        """Index just past the item at the start of ``buf``, or -1 if it is
        incomplete; ValueError if a header is malformed or nests too deep."""
        return self._end(buf, gen)

    cdef Py_ssize_t _end(self, bytearray buf, Py_ssize_t gen) except -2:
        cdef int done
        cdef const unsigned char *data = <const unsigned char *> PyByteArray_AS_STRING(buf)
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf)
        if self.pos and gen != self.gen:
            self.pos = self.depth = 0       # (reset: rbuf lost bytes at its front since)
        self.gen = gen
        while self.pos < size:
            done = self._item(data, size)
            if done < 0:
                break
            if done:
                return self.pos
        return -1

    def take(self, bytearray buf, Py_ssize_t gen):
        """The item at the start of ``buf``, taken off it (the scan starts
        afresh for the next), or None while it is incomplete; ValueError as
        :meth:`end`."""
        cdef Py_ssize_t stop = self._end(buf, gen)
        if stop < 0:
            return None
        self.pos = self.gen = self.depth = 0     # (reset)
        return _take(buf, stop)

    cdef inline int _item(self, const unsigned char *data, Py_ssize_t size) except -2:
        """One header (and its string): 1 if the outermost item is complete,
        0 if not yet, -1 if the header or string is not all there."""
        cdef Py_ssize_t pos = self.pos, length
        cdef int major = data[pos] >> 5, info = data[pos] & 31, i
        cdef unsigned long long arg
        if info >= 28:
            return self._indefinite(major, info)
        length = 1 if info < 24 else 1 + (1 << (info - 24))
        if pos + length > size:
            return -1
        arg = info
        if info >= 24:
            arg = 0
            for i in range(1, length):
                arg = (arg << 8) | data[pos + i]
        if major == 2 or major == 3:
            if arg > <unsigned long long> (size - pos - length):
                return -1  # wait for the whole string, without rescanning it
            length += <Py_ssize_t> arg
        self.pos = pos + length
        if major == 6:
            return 0  # a tag: its item follows
        if (major == 4 or major == 5) and arg:
            if major == 5:
                arg = _CBOR_MANY if arg > _CBOR_MANY // 2 else arg * 2
            return self._push(arg)
        return self._done()

    cdef int _indefinite(self, int major, int info) except -2:
        if info != 31 or major == 0 or major == 1 or major == 6:
            raise ValueError("CBOR: reserved additional information %d" % info)
        self.pos += 1
        if major != 7:
            return self._push(_CBOR_INDEFINITE)
        if not self.depth or self.open[self.depth - 1] != _CBOR_INDEFINITE:
            raise ValueError("CBOR: break outside an indefinite-length item")
        self.depth -= 1
        return self._done()

    cdef int _push(self, unsigned long long count) except -2:
        if self.depth >= _CBOR_MAX_DEPTH:
            raise ValueError("CBOR: nesting deeper than %d" % <int> _CBOR_MAX_DEPTH)
        if self.depth == _CBOR_INLINE and self.open == self.inline:
            self.open = <unsigned long long *> PyMem_Malloc(
                _CBOR_MAX_DEPTH * sizeof(unsigned long long))
            if self.open == NULL:
                self.open = self.inline
                raise MemoryError()
            memcpy(self.open, self.inline, sizeof(self.inline))
        self.open[self.depth] = count
        self.depth += 1
        return 0

    cdef inline int _done(self) noexcept:
        """An item ended: count it in its container; 1 if none is open."""
        while self.depth:
            if self.open[self.depth - 1] == _CBOR_INDEFINITE:
                return 0
            self.open[self.depth - 1] -= 1
            if self.open[self.depth - 1]:
                return 0
            self.depth -= 1
        return 1


# -- pickles: the nesting of plain data, before it is built ----------------------------

cdef enum:
    _PK_INLINE = 64  # stack items and marks counted on the C stack; more, on the heap
cdef enum:
    _PK_OTHER, _PK_FILL, _PK_CALL, _PK_SHARE, _PK_MEMO, _PK_MARK, _PK_STOP, _PK_UNKNOWN = 255
    _PK_LINE = 100, _PK_LINES = 101, _PK_LEN1 = 201, _PK_LEN4 = 204, _PK_LEN4U = 205, _PK_LEN8 = 208


cdef inline Py_ssize_t _pickle_arg(const unsigned char *data, Py_ssize_t pos,
                                   Py_ssize_t size, int kind) noexcept:
    """Where the opcode argument of ``kind`` starting at ``pos`` ends; -1 if
    it runs past ``size`` (or is a negative length)."""
    cdef unsigned long long length = 0
    cdef int i, lines
    cdef const void *nl
    if kind <= 8:
        return pos + kind if pos + kind <= size else -1
    if kind == _PK_LINE or kind == _PK_LINES:
        for lines in range(2 if kind == _PK_LINES else 1):
            nl = memchr(data + pos, 10, size - pos) if pos < size else NULL
            if nl == NULL:
                return -1
            pos = <const unsigned char *> nl - data + 1
        return pos
    cdef int width = kind - 200
    if pos + width > size:
        return -1
    for i in range(width - 1, -1, -1):  # little-endian
        length = (length << 8) | data[pos + i]
    if kind == _PK_LEN4 and length >= 0x80000000ULL:
        return -1
    if length > <unsigned long long> (size - pos - width):
        return -1
    return pos + width + <Py_ssize_t> length


def pickle_plain_depth(bytes data, bytes table, int limit):
    """1 when the pickle ``data`` refers to no object twice (no GET, no
    DUP), ends with STOP and nests nothing deeper than ``limit``: then
    ``handle._check_pickle_depth`` has nothing to add; 2 when moreover it
    names no class and calls nothing (builtin values only).  0 when not
    sure (shared objects, malformed or too deep): run that check.
    ``table``: six bytes per opcode (argument kind, class, items below or
    before, pops to a mark, items pushed, names or calls something), see
    ``handle._pickle_table``."""
    cdef const unsigned char *p = <const unsigned char *> data
    cdef const unsigned char *t = <const unsigned char *> table
    cdef const unsigned char *op
    cdef Py_ssize_t size = len(data), pos = 0, height = 0, marks = 0, base, i
    cdef Py_ssize_t cap = _PK_INLINE, mcap = _PK_INLINE
    cdef int depth, deepest, ok = 0, calls = 0
    # (on the C stack while they fit, as they do for most pickles; then on the heap)
    cdef int stack_inline[_PK_INLINE]
    cdef Py_ssize_t marked_inline[_PK_INLINE]
    cdef int *stack = stack_inline
    cdef Py_ssize_t *marked = marked_inline
    if len(table) != 256 * 6:
        raise ValueError("the pickle table has 6 bytes per opcode")
    try:
        while pos < size:
            op = t + 6 * p[pos]
            pos = _pickle_arg(p, pos + 1, size, op[0])
            if pos < 0 or op[1] == _PK_UNKNOWN or op[1] == _PK_SHARE:
                break
            calls |= op[5]
            if op[1] == _PK_MEMO:
                continue
            if op[1] == _PK_STOP:
                if height:  # (it takes the value off the stack)
                    ok = 1 if calls else 2
                break
            if op[1] == _PK_MARK:
                if marks == mcap:
                    marked = <Py_ssize_t *> _grow(marked, marked_inline,
                                                  mcap * sizeof(Py_ssize_t))
                    mcap *= 2
                marked[marks] = height
                marks += 1
                continue
            if op[3]:  # pops to the last mark, and op[2] items below it
                if not marks:
                    break
                marks -= 1
                base = marked[marks] - op[2]
            else:
                base = height - op[2]
            if base < 0:
                break
            if op[1] == _PK_FILL or op[1] == _PK_CALL:
                if height - base < (2 if op[1] == _PK_FILL else 1):
                    break  # (the check would fail on it: let it say why)
            deepest = -1
            for i in range(base + (op[1] == _PK_FILL), height):
                if stack[i] > deepest:
                    deepest = stack[i]
            if op[1] == _PK_FILL:
                depth = stack[base] if stack[base] > deepest + 1 else deepest + 1
            elif op[1] == _PK_CALL:
                depth = deepest
            else:
                depth = deepest + 1 if deepest >= 0 else 0
            height = base
            if op[4]:
                if depth > limit:
                    break
                if height == cap:
                    stack = <int *> _grow(stack, stack_inline, cap * sizeof(int))
                    cap *= 2
                stack[height] = depth
                height += 1
    finally:
        if stack != stack_inline:
            PyMem_Free(stack)
        if marked != marked_inline:
            PyMem_Free(marked)
    return ok


cdef void *_grow(void *block, void *inline, size_t size) except NULL:
    """``block`` of ``size`` bytes twice as big: moved from ``inline`` (on the
    C stack) to the heap the first time."""
    cdef void *grown
    if block == inline:
        grown = PyMem_Malloc(2 * size)
        if grown != NULL:
            memcpy(grown, inline, size)
    else:
        grown = PyMem_Realloc(block, 2 * size)
    if grown == NULL:
        raise MemoryError()
    return grown


def epoll_ready(int epfd, double timeout, int maxevents, dict fds):
    """``reactor._ready_recs(fds, epoll.poll(timeout, maxevents))`` for the
    epoll object whose descriptor is ``epfd``: waits up to ``timeout``
    seconds (negative: no limit; rounded up to whole milliseconds, as
    :meth:`select.epoll.poll` does), then returns the ready fds' record
    tuples, an fd's writers before its readers, without building an
    ``(fd, mask)`` tuple per event.  Raises :class:`OSError`; an ``EINTR``
    runs the signal handlers and returns an empty list."""
    cdef int n, i, ms = -1
    cdef uint32_t ev
    cdef PyObject *found
    cdef _FdEntry ent
    # (the event array is the call's own, as select.epoll.poll's is: loops
    # in other threads poll at the same time, without the GIL)
    cdef epoll_event *events = <epoll_event *> PyMem_Malloc(
        (maxevents if maxevents > 0 else 1) * sizeof(epoll_event))
    if events == NULL:
        raise MemoryError()
    try:
        if timeout >= 0:
            ms = <int> ceil(timeout * 1000.0) if timeout < 2e6 else 2000000000
        with nogil:
            n = epoll_wait(epfd, events, maxevents, ms)
        if n < 0:
            if errno != EINTR:
                PyErr_SetFromErrno(OSError)
            PyErr_CheckSignals()
            return []
        ready = []
        for i in range(n):
            found = PyDict_GetItem(fds, events[i].data.fd)
            if found == NULL:
                continue
            ent = <_FdEntry> found
            ev = events[i].events
            if ev & ~EPOLLIN and ent.w:
                ready.append(ent.w)
            if ev & ~EPOLLOUT and ent.r:
                ready.append(ent.r)
        return ready
    finally:
        PyMem_Free(events)


def gc_untrack(obj):
    """``reactor.refcounted``'s C call (``PyObject_GC_UnTrack``) without
    going through ctypes: the cyclic collector stops looking into ``obj``
    (a no-op for an object it never tracks).  Returns ``obj``."""
    if PyObject_IS_GC(obj):
        PyObject_GC_UnTrack(<void *> obj)
    return obj
