# Cython declarations for the compiled core (setup.py); reactor.py stays the
# source.  The io watcher records become C types, so that the dispatch of a
# poll's events reads them without a dictionary lookup; refcounted, called
# twice for every timer, is a C call.  Keep the fields in step with their
# __slots__.

cimport cython

cpdef refcounted(obj)

cdef class _IORec:
    cdef public object cb

cdef class _FdEntry:
    cdef public object fd, r, w, mask

@cython.locals(ent=_FdEntry)
cpdef list _ready_recs(dict fds, object events)

@cython.locals(rec=_IORec)
cpdef _run_io(tuple recs)
