"""Launching the CUDA kernels with little host work: `@gpu_kernel` instead of `@cuda.jit`.

Why: numba-cuda's `kernel[grid, block](*args)` types every argument, looks the
compiled kernel up, wraps each array and builds a launch configuration, in
Python, on every call: 44 us of host time for a kernel of 8 arrays on the H200
machine, 57-98 us on the H100 one (benchmarks/README.md, section (d)). A meProp
backward at hidden 4096 has ~47 us of GPU work in all, so the GPU waits on the
host. Through this file the same launch costs 9-13 us (cuda.core's launch alone,
which both paths end with, 7.5-9).

What `@gpu_kernel` does instead: the first call of a kernel with a given kind of
arguments goes through Numba as usual (it compiles, checks and launches), and
remembers the compiled kernel, the launch configuration and, for each argument,
how Numba passes it. Later calls with the same kinds of arguments flatten them
the way Numba does (an array is meminfo, parent, size, itemsize, data pointer,
shape, strides) and hand them to the same driver launch Numba ends with; a call
with the very arrays (and equal scalars) of the previous one reuses its
flattened arguments. The kernel runs exactly the code and sees exactly the bytes
it would under Numba; only the Python between the call and the driver is shorter.
tests/test_cuda.py compares the two paths bit for bit on a GPU.

A kind of argument: the Numba type of an array (dtype, ndim, layout), the kinds
of a tuple's device arrays (Numba passes a tuple as its members' fields, one
after the other: the optimizers' step kernels take one array per parameter), or
the Python type of a scalar. Anything this file does not know (a host array, a
record, a debug kernel) goes through Numba's own path every time.
`SPARSEBP_CUDA_LAUNCH=numba` turns the short path off (benchmarks compare the
two), and the simulator (`NUMBA_ENABLE_CUDASIM=1`) always takes Numba's path.
"""
import ctypes
import os
import weakref

import numpy as np
from numba import cuda

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_state = {"fast": os.environ.get("SPARSEBP_CUDA_LAUNCH", "fast") != "numba" and not SIM}
# What the cuda backend has done so far in this process; every launch, device
# allocation and copy of kernels/cuda*.py goes through this file, so a test can
# pin them per training step (the simulator counts exactly what a GPU would).
COUNTS = {"launches": 0, "allocations": 0, "to_device": 0, "to_host": 0}


def set_launch(which):
    """"fast" (the short path, the default on a GPU) or "numba" (every call through Numba)."""
    if which not in ("fast", "numba"):
        raise ValueError(f"unknown launch path {which!r}; choose 'fast' or 'numba'")
    _state["fast"] = which == "fast" and not SIM


def launch_name():
    """"fast" or "numba": the path launches take now."""
    return "fast" if _state["fast"] else "numba"


def launches():
    """Kernels launched so far by this process through `@gpu_kernel` (benchmarks count with it)."""
    return COUNTS["launches"]


def counts():
    """A copy of COUNTS: launches, device allocations, copies to the device and to the host."""
    return dict(COUNTS)


def on_device(a):
    """Whether a is a device array (numba's, or the simulator's stand-in)."""
    return hasattr(a, "copy_to_host")


def device_array(shape, dtype):
    """A new, uninitialised device array (counted: a cudaMalloc, or a wait on numba's frees)."""
    COUNTS["allocations"] += 1
    return cuda.device_array(shape, dtype)


def to_device(a):
    """Host array -> a new contiguous device array (counted: an allocation and a copy);
    a device array is returned as is."""
    if on_device(a):
        return a
    COUNTS["allocations"] += 1
    COUNTS["to_device"] += 1
    return cuda.to_device(np.ascontiguousarray(a))


def copy_to(dst, a):
    """Copy host array a into the device array dst of its shape (counted; no allocation).
    A copy from pageable host memory waits for the kernels queued before it."""
    COUNTS["to_device"] += 1
    dst.copy_to_device(np.ascontiguousarray(a, dtype=dst.dtype))


def to_host(a):
    """Device array -> host ndarray, a copy (counted: the host waits for the GPU);
    a host array is returned as is."""
    if not on_device(a):
        return np.asarray(a)
    COUNTS["to_host"] += 1
    return a.copy_to_host()


def gpu_kernel(fn=None, **options):
    """@gpu_kernel, or @gpu_kernel(**options of cuda.jit): a CUDA kernel (like
    @cuda.jit) launched through the short path."""
    if fn is None:
        return lambda f: gpu_kernel(f, **options)
    return Kernel(cuda.jit(fn, **options))


class Kernel:
    """`Kernel(dispatcher)[grid, block](*args)`, as with a Numba kernel."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._configs = {}       # (grid, block) -> _Configured
        self._compiled = {}      # kinds of the arguments -> (driver kernel, packers)

    def __getitem__(self, grid_block):
        c = self._configs.get(grid_block)
        if c is None:
            if len(self._configs) >= 512:     # grids that follow a union's size vary by the step
                self._configs.clear()
            c = self._configs[grid_block] = _Configured(self, *grid_block)
        return c


_tuple_packs = {}    # id(tuple) -> (the tuple, _packed of it)


def _packed(a):
    """(kind, flattened) of a device array, as Numba types and passes it: meminfo,
    parent, size, itemsize, data pointer, shape, strides. Cached on the array
    (none of these ever changes for a device array). A tuple of device arrays:
    its members' kinds and their flattened fields in order. None for anything else."""
    if type(a) is tuple:
        hit = _tuple_packs.get(id(a))
        if hit is not None and hit[0] is a:   # an optimizer passes the same tuples every step
            return hit[1]
        parts = [_packed(m) for m in a]
        if not parts or any(q is None for q in parts):
            return None
        if len(_tuple_packs) >= 256:
            _tuple_packs.clear()
        p = ("tuple",) + tuple(q[0] for q in parts), tuple(v for q in parts for v in q[1])
        _tuple_packs[id(a)] = (a, p)          # the tuple kept alive: its id is not reused meanwhile
        return p
    p = getattr(a, "_sparsebp_packed", None)
    if p is None and on_device(a) and hasattr(a, "__dict__"):
        p = a._sparsebp_packed = (a._numba_type_, (0, 0, a.size, a.dtype.itemsize, _ptr(a),
                                                   *a.shape, *a.strides))
    return p


class _Configured:
    def __init__(self, k, grid, block):
        self.k, self.grid, self.block = k, grid, block
        self.stream = self.config = None     # made at the first short launch
        self.last = None                     # (memo of the arguments, kernel, flattened) of the last one

    def numba_launch(self, *args):
        # asked for afresh each time: the simulator's kernel object keeps only the last configuration
        return self.k.dispatcher[self.grid, self.block](*args)

    def __call__(self, *args):
        COUNTS["launches"] += 1
        if not _state["fast"]:
            return self.numba_launch(*args)
        if self.last is not None and _same(args, self.last[0]):
            return _launch(self.stream, self.config, self.last[1], *self.last[2])
        packed = [_packed(a) for a in args]
        key = tuple(type(a) if p is None else p[0] for a, p in zip(args, packed))
        compiled = self.k._compiled.get(key)
        if compiled is None:                  # first call of this kind: Numba compiles and launches
            self.numba_launch(*args)
            self.k._compiled[key] = _driver_kernel(self.k.dispatcher, args)
            return
        if compiled is _NUMBA:
            return self.numba_launch(*args)
        cufunc_kernel, packers = compiled
        flat = []
        for pack, a, p in zip(packers, args, packed):
            if pack is None:                  # a device array, or a tuple of them
                flat += p[1]
            else:                             # a scalar, in the C type of the kernel's argument
                flat.append(pack(a))
        if self.config is None:
            self.stream, self.config = _launch_config(self.k.dispatcher[self.grid, self.block])
        try:
            self.last = (_memo(args), cufunc_kernel, flat)
        except TypeError:                     # an array type without weak references: no memo
            self.last = None
        _launch(self.stream, self.config, cufunc_kernel, *flat)


class _TupleMemo(tuple):
    """The memo of a tuple argument: the memo of each member."""


def _memo(args):
    """What _same compares the next call's arguments with: a weak reference to each
    array (so that the memo keeps no array alive), each scalar itself, and a
    tuple's members so (_TupleMemo)."""
    return tuple(weakref.ref(a) if on_device(a) else _TupleMemo(_memo(a)) if type(a) is tuple
                 else a for a in args)


def _same(args, memo):
    """Whether args are the very arrays and equal scalars of the memo's call: then the
    arguments flattened for that call are these ones too (a training loop or a
    benchmark calls a kernel on the same buffers again and again)."""
    if len(args) != len(memo):
        return False
    for a, m in zip(args, memo):
        if type(m) is weakref.ref:
            if m() is not a:
                return False
        elif type(m) is _TupleMemo:
            if type(a) is not tuple or not _same(a, m):
                return False
        elif type(a) is not type(m) or a != m:
            return False
    return True


_NUMBA = "numba"                             # marks a kind of arguments the short path leaves alone


def _ptr(a):
    """The device address of a device array (cached by numba-cuda on the array)."""
    shim = getattr(a, "_strided_memory_view_shim", None)
    return shim.ptr if shim is not None else a.device_ctypes_pointer.value


def _driver_kernel(dispatcher, args):
    """(the compiled kernel's driver handle, one packer per argument) after Numba
    has compiled the dispatcher for these args; _NUMBA where the short path does
    not apply (packer None: a device array)."""
    from numba.cuda import types
    try:
        argtypes = tuple(dispatcher.typeof_pyval(a) for a in args)
        kern = dispatcher.overloads[argtypes]
        if kern.debug or kern.cooperative or getattr(dispatcher, "_launch_config_sensitive", False):
            return _NUMBA
        packers = []
        for t, a in zip(kern.argument_types, args):
            if isinstance(t, types.Array):
                if not on_device(a):                         # a host array: Numba copies it over
                    return _NUMBA
                packers.append(None)
            elif isinstance(t, types.BaseTuple):                # of device arrays only
                if _packed(a) is None or not all(isinstance(m, types.Array) for m in t):
                    return _NUMBA
                packers.append(None)
            elif t == types.int64:                           # an intptr_t, as Numba passes shapes
                packers.append(int)
            elif isinstance(t, types.Integer):
                packers.append(getattr(ctypes, f"c_{t}"))
            elif t == types.float32:
                packers.append(ctypes.c_float)
            elif t == types.float64:
                packers.append(ctypes.c_double)
            elif t == types.boolean:
                packers.append(bool)
            else:
                return _NUMBA
        return kern._codelibrary.get_cufunc().kernel, packers
    except Exception:                                        # noqa: BLE001 - Numba's path still works
        return _NUMBA


def _launch_config(numba_launch):
    """(stream, cuda.core LaunchConfig) as Numba makes them for this grid and block."""
    from cuda.core import LaunchConfig
    from numba.cuda._compat import CUDA_CORE_GE_1_0
    coop = {"is_cooperative" if CUDA_CORE_GE_1_0 else "cooperative_launch": False}
    return numba_launch.stream, LaunchConfig(grid=numba_launch.griddim, block=numba_launch.blockdim,
                                             shmem_size=0, **coop)


def _launch(*a):
    from cuda.core import launch
    globals()["_launch"] = launch            # import once, then call it directly
    launch(*a)


