# Cython declarations for the compiled core (setup.py); _stream.py stays the
# source.  _HandleCore becomes a C type: its slots are C fields, so the
# methods below reach them without a dictionary lookup, and the per-message
# methods are cpdef, so the core calls them without a Python call (a Python
# subclass overriding one still wins).  Fields a user or an option may set
# to any object stay ``object``: the compiled handle accepts what the
# interpreted one accepts.  Keep the fields in step with __slots__.

cimport cython

cdef class _HandleCore:
    cdef public object _fh, tls, _recv, _send, _queue, _held
    cdef public object _rbuf, _wbuf, _tls_rbuf
    cdef public Py_ssize_t _rin, _held_size
    cdef public bint _hold, _eof, _skip_drain, _autocork
    cdef public int _drain_state, _failing
    cdef public object _rw, _ww, _on_error, _on_read, _on_eof, _on_drain
    cdef public object _rbuf_max, _wbuf_max, read_size, max_read_size, _low_water_mark
    cdef public object _timers, _opts

    cpdef _hold_write(self, bytes data)
    cpdef _release_held(self)
    cpdef _stop_holding(self)
    @cython.locals(n=Py_ssize_t)
    cpdef _write(self, data)
    cpdef _drain_wbuf(self)
    cpdef _write_ready(self)
    cpdef _after_write(self)
    @cython.locals(size=Py_ssize_t)
    cpdef _drain_rbuf(self)
    @cython.locals(n=Py_ssize_t)
    cpdef _read_ready(self)


cdef class _LineReader:
    cdef object cb
    cdef Py_ssize_t start, gen

    @cython.locals(hdl=_HandleCore, pos=Py_ssize_t, start=Py_ssize_t)
    cpdef read(self, hdl)

cdef class _RegexLineReader:
    cdef object cb, rx, width, literals
    cdef bint whole
    cdef Py_ssize_t start, gen

    @cython.locals(hdl=_HandleCore)
    cpdef read(self, hdl)


cdef class _BytesLineReader:
    cdef object cb
    cdef bytes eol
    cdef Py_ssize_t start, gen

    @cython.locals(hdl=_HandleCore, start=Py_ssize_t)
    cpdef read(self, hdl)


cdef class _ChunkReader:
    cdef object cb
    cdef Py_ssize_t length

    @cython.locals(hdl=_HandleCore)
    cpdef read(self, hdl)


cdef class _CborReader:
    cdef object cb, scan, decode

    @cython.locals(hdl=_HandleCore)
    cpdef read(self, hdl)


cdef object _planned_line_reader(object cb, tuple plan)

@cython.locals(reader=_CborReader)
cdef object _cbor_reader(object hdl, object cb)
