# cython: language_level=3
# The C types of timer_fast.py (see tcp_fast.pxd for how an augmenting .pxd
# works): a timer's fields and the wheel's are C fields, read and written
# without a dict or a descriptor call; the methods are C functions.
cimport cython


cdef class TimerWheel


cdef class Timer:
    cdef public TimerWheel _wheel
    # callback(now) or callback(owner(), now); owner: a weak reference or None
    cdef public object callback, owner
    # deadlines: a float, or None (not armed / no live heap entry)
    cdef public object when, _queued
    cdef public long long _seq, _qseq


cdef class PromptTimer(Timer):
    pass


cdef class TimerWheel:
    cdef public list _heap, _prompt_heap
    cdef public object _seq
    cdef public long long _stale
    @cython.locals(timer=Timer)
    cpdef object _settle_top(self, list heap)
