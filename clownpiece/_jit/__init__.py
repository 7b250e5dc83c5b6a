"""clownpiece.jit: capture the kernel launches of a function once, then replay them with new inputs.

    @clownpiece.jit
    def train_step(x, y, lr):
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

Per signature (the tensor arguments' classes, shapes, strides, dtypes, requires_grad and which of them share
storage; the values of non-float arguments; grad mode, fusion and the device), call 1 runs eagerly (one-time
work: optimizer state, kernel builds), calls 2 and 3 run eagerly while recording every launch and upload
(recorder.py), the two recordings are compared (plan.py) and turned into a Program, and every later call
replays it: no Python op dispatch, no autograd, just the recorded enqueues with the new arguments.

What a replay reuses and what it re-reads:
  - tensor arguments: their buffers and element offsets are swapped in; results are fresh tensors
    (detached: requires_grad False), never sharing memory with another call's;
  - float arguments: re-read at every replay, through the expressions recorded for them (numbers.py), so a
    learning rate that changes every call works; a float that stayed the same in both recordings is
    guarded as a constant: a new value records the call once more, and that recording, compared with the
    program's, shows where the float goes (a step schedule costs one recording per signature, not per step);
  - other arguments (ints, bools, strings, objects) are part of the signature: a new value is a new
    signature (at most `max_signatures`, least recently used dropped);
  - random ops and optimizer step counts: `backend.replayable` host calls run again at each replay;
  - tensors made before the call (parameters, optimizer state) are used in place; storage the call leaves
    behind (e.g. `p.grad` when zero_grad comes first) is kept and rewritten by each replay.
Python side effects of the function (assignments, appends, prints) happen at the recorded calls only.

What raises JitError at capture, naming the line: a host read (item(), tolist(), numpy(), print of a
tensor, a branch on a tensor's value); state it read and then replaced (gradients accumulated across calls,
`h = f(h)`); a kernel number that changes between the recordings without coming from a float argument
(`math.exp(lr)`, host state such as Adam's step count when not replayable); host data that changes between
calls; and work that differs between three consecutive calls. Nothing is ever replayed that would differ
from eager execution: replays are bit-identical to it.

Buffers are held while the jitted function lives; `fn.reset()` (or deleting it) frees them."""
import collections
import functools
import types
import warnings

import pyopencl as cl

from .. import backend
from .._grad_mode import is_grad_enabled
from .._tensor import TensorBase
from ..backend import fusion, runtime
from .errors import JitError
from .numbers import Trace, Traced
from .plan import Program, compare
from .recorder import Recording
from .tree import flatten, unflatten

__all__ = ["jit", "JitError"]

fusion.trace_numbers(Traced)

_MAX_RECAPTURES = 8  # guard failures of one signature after which it runs eagerly for good


def jit(fn=None, *, max_signatures=8):
    """Capture `fn`'s kernel launches and replay them (see the module docstring). Use as `@jit` or
    `@jit(max_signatures=...)`."""
    if fn is None:
        return lambda f: Jitted(f, max_signatures)
    return Jitted(fn, max_signatures)


class _Entry:
    __slots__ = ("warm", "records", "program", "recaptures", "eager", "mismatches")

    def __init__(self):
        self.warm = False
        self.records = []
        self.program = None
        self.recaptures = self.mismatches = 0
        self.eager = False


def _is_float(v):
    return isinstance(v, float)  # float, numpy's float64, and traced floats of an earlier capture


class Jitted:
    def __init__(self, fn, max_signatures=8):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.max_signatures = max_signatures
        self._entries = collections.OrderedDict()
        self._name = getattr(fn, "__qualname__", repr(fn))
        self._warned_signatures = False

    def __get__(self, instance, owner=None):
        return self if instance is None else types.MethodType(self, instance)

    def reset(self):
        """Forget every capture and free the buffers held for them."""
        self._entries.clear()

    @property
    def captured(self):
        """How many signatures have a replay program."""
        return sum(1 for e in self._entries.values() if e.program is not None)

    def __call__(self, *args, **kwargs):
        if runtime.recording():  # called inside another capture: its launches belong to that one
            return self.fn(*args, **kwargs)
        leaves = []
        spec = flatten((args, kwargs), leaves)
        leaves = [float(v) if _is_float(v) else v for v in leaves]
        key = (spec, _signature(leaves), is_grad_enabled(), fusion.enabled, id(backend.device()))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > self.max_signatures:
                self._entries.popitem(last=False)
                if not self._warned_signatures:
                    self._warned_signatures = True
                    warnings.warn(f"clownpiece.jit: {self._name} was called with more than {self.max_signatures} "
                                  f"signatures (shapes, or values of int/bool/other arguments); the least recently "
                                  f"used are captured again when they come back", stacklevel=2)
        else:
            self._entries.move_to_end(key)
        if entry.eager:
            return self.fn(*args, **kwargs)
        program = entry.program
        if program is not None:
            decided = program.decisions_hold(leaves)
            if decided and program.statics_hold(leaves):
                return unflatten(program.out_spec, iter(program.run(leaves)))
            entry.program = None
            if not decided:  # a branch on a float argument goes the other way: capture afresh
                entry.records = []
                if self._recaptured(entry):
                    return self.fn(*args, **kwargs)
            else:  # a float that had been constant changed: one recording, compared with the program's, shows
                entry.records = [(program.rec, program.leaves)]  # where it goes

        if not entry.warm:
            entry.warm = True
            return self.fn(*args, **kwargs)
        return self._record(entry, spec, leaves)

    def _recaptured(self, entry):
        """Count a capture thrown away because decisions on float arguments changed; past the limit the
        signature runs eagerly for good. True when that happened now."""
        entry.recaptures += 1
        if entry.recaptures <= _MAX_RECAPTURES:
            return False
        entry.eager, entry.records, entry.program = True, [], None
        warnings.warn(f"clownpiece.jit: {self._name}: decisions on its float arguments changed "
                      f"{_MAX_RECAPTURES} times; this signature now runs without jit", stacklevel=3)
        return True

    def _record(self, entry, spec, leaves):
        fusion.flush_all()  # work deferred before the call is not part of it
        trace = Trace()
        traced = [Traced(v, ("arg", i), trace) if _is_float(v) else v for i, v in enumerate(leaves)]
        args, kwargs = unflatten(spec, iter(traced))
        rec = Recording(self._name, leaves, trace)
        runtime.start_recording(rec)
        try:
            result = self.fn(*args, **kwargs)
            fusion.flush_all()  # everything the call deferred runs inside it
            out_leaves = rec.finish(result, TensorBase)
        except BaseException:
            entry.records, entry.mismatches = [], 0
            raise
        finally:
            runtime.stop_recording()
            trace.active = False
        entry.records.append((rec, leaves))
        if len(entry.records) >= 2:
            (ra, la), (rb, lb) = entry.records[-2:]
            if ra.trace.guards != rb.trace.guards:  # decisions on float arguments went differently: no pair
                del entry.records[0]
                self._recaptured(entry)
            else:
                diff = compare(ra, rb)
                if diff is None:
                    static = [(i, v) for i, v in enumerate(lb) if type(v) is float and _same(v, la[i])]
                    entry.program = Program(rb, lb, static)
                    entry.records, entry.mismatches = [], 0
                elif entry.mismatches >= 1:  # three consecutive calls, each different from the one before
                    entry.records, entry.mismatches = [], 0
                    raise JitError(f"clownpiece.jit: {self._name} does not do the same work from call to call, "
                                   f"so it cannot be replayed: {diff}")
                else:
                    entry.mismatches += 1
                    del entry.records[0]
        return unflatten(rec.out_spec, iter(_detached_results(rec, out_leaves)))


def _same(a, b):
    return a == b or (a != a and b != b)


def _signature(leaves):
    out = []
    storages = {}
    for i, v in enumerate(leaves):
        if isinstance(v, TensorBase):
            alias = storages.setdefault(id(v._storage), i)
            out.append((type(v), v._shape, v._strides, v.dtype, getattr(v, "requires_grad", False), alias))
        elif type(v) is float:
            out.append(float)
        else:
            try:
                hash(v)
                out.append((type(v), v))
            except TypeError:
                out.append((type(v), id(v), v))
    return tuple(out)


def _detached_results(rec, leaves):
    """A recorded call's results as a replay returns them: tensors in storage the call allocated are copied
    (the program keeps writing that storage), numbers are plain."""
    out, copies = [], {}
    for leaf, spec in zip(leaves, rec.out_leaves):
        if spec[0] == "tensor" and spec[1][0] == "alloc":
            src = leaf._storage
            st = copies.get(id(src))
            if st is None:
                st = copies[id(src)] = backend.alloc(src.size)
                cl.enqueue_copy(backend.device().queue, st._buf, src._buf, byte_count=src.size)
            out.append(spec[2]._make(st, leaf._shape, leaf._strides, leaf._offset, leaf.dtype))
        elif type(leaf) is Traced:
            out.append(float(leaf))
        elif spec[0] == "traced":
            out.append(int(leaf))
        else:
            out.append(leaf)
    return out
