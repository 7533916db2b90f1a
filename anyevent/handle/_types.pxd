# Cython declarations for the compiled core (setup.py); _types.py stays the
# source.  The packstring and storable readers become C types, made for
# every frame of such a stream; ``read`` stays a Python method (the handle
# calls it as one), ``deliver`` is called in C.  Keep the fields in step
# with __slots__.

cdef class _PackstringReader:
    cdef object cb, fmt

    cpdef deliver(self, hdl, data)


cdef class _StorableReader(_PackstringReader):
    pass
