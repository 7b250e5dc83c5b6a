"""Device-side checks: a value a kernel must refuse (an index out of range, a class target outside [0, C))
raises at the next host read, like CUDA's device-side assert, with no extra sync.

A kernel cannot raise, and reading its inputs back to check them on the host would stall the queue (a
training step does no reads). So a checking kernel takes its device's error word (`error_word()`, four
ints: code, value low and high 32 bits, bound) and `report_error(err, code, value, bound)` (common.h) keeps
the first failure there; the kernel goes on with a defined result (gathers give NaN or 0, scatters skip).
Every host read (runtime.download: `item()`, `tolist()`, `numpy()`, printing) and `synchronize()` of a
device whose word exists also reads the word: enqueued before the blocking read of the data, on the same
in-order queue, it costs no extra wait. A set word raises DeviceAssertError naming the op and the bad value,
and is cleared first, so the program can catch it and go on.

Adding a check (docs/architecture.md, device-side checks):
    _BAD_ID = checks.register("gather", "index {value} is out of bounds for a dim of size {bound}")
    ... backend.launch(knl, n, ..., checks.error_word(), _BAD_ID, ...)
and in the kernel, with parameters `__global int* err, int code`:
    if (id < 0) report_error(err, code, (long)v, size);
A check of a float value registers with float_value=True and reports `FLOAT_BITS(v)` with bound
sizeof(T) (common.h): the message shows the value as a float of that width."""
import numpy as np
import pyopencl as cl

from . import memory

_WORDS = 4
_ZEROS = np.zeros(_WORDS, np.int32)  # the source of the clearing writes (must outlive them)


class DeviceAssertError(RuntimeError, IndexError):
    """A check made by a kernel failed; raised by the first host read after that kernel."""


_checks = [None]  # code -> (op, message template with {value} and {bound}, float_value); code 0: "no error"


def register(op, message, float_value=False):
    """The code that kernels report for a new check of `op`; `message` may use {value} and {bound}. With
    float_value the kernel reports a float's bits (FLOAT_BITS) and its byte width as the bound, and {value}
    shows the float (nan, inf, 1.5)."""
    _checks.append((op, message, float_value))
    return len(_checks) - 1


def _shown(value, bound, float_value):
    if not float_value:
        return value
    if bound == 8:
        return str(np.array(value, np.int64).view(np.float64)[()])
    return str(np.array(value & 0xFFFFFFFF, np.uint32).view(np.float32)[()])  # float32's shortest digits


class _Word:
    __slots__ = ("storage", "host")

    def __init__(self, pool):
        watcher = memory._watcher  # made once for the process: not a buffer of a jit capture in progress
        memory.set_watcher(None)
        try:
            self.storage = memory.Storage(pool, _WORDS * 4)
        finally:
            memory.set_watcher(watcher)
        self.host = np.zeros(_WORDS, np.int32)
        cl.enqueue_copy(pool.device.queue, self.storage.buf, _ZEROS, is_blocking=False)


_words = {}  # Device -> _Word, made by the first checking launch there


def error_word(pool):
    """The error word of `pool`'s device: the Storage a checking kernel takes as `__global int* err`."""
    w = _words.get(pool.device)
    if w is None:
        w = _words[pool.device] = _Word(pool)
    return w.storage


def read_with(device):
    """Enqueue the read of `device`'s word (if it has one) ahead of a blocking read; returns what `check`
    needs afterwards, or None."""
    w = _words.get(device)
    if w is None:
        return None
    cl.enqueue_copy(device.queue, w.host, w.storage.buf, is_blocking=False)
    return w


def check(w, device):
    """Raise DeviceAssertError when the word read by read_with holds a failure (after a blocking read or a
    finish of the same queue), clearing it on the device."""
    if w is None or not w.host[0]:
        return
    code, lo, hi, bound = (int(v) for v in w.host)
    w.host[:] = 0
    cl.enqueue_copy(device.queue, w.storage.buf, _ZEROS, is_blocking=True)
    value = (hi << 32) | (lo & 0xFFFFFFFF)
    op, message, float_value = _checks[code] if 0 < code < len(_checks) else ("a kernel", f"check {code} failed",
                                                                             False)
    value = _shown(value, bound, float_value)
    raise DeviceAssertError(f"{op}: {message.format(value=value, bound=bound)} (found on the device by an "
                            f"earlier launch; raised at this read)")
