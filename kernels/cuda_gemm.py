"""The matrix products of the CUDA backend: one tiled GEMM kernel, and cuBLAS via CuPy.

Every product of a Linear layer is one form, the flags saying how each operand
is read (A is (M, K), B is (K, N) as the product sees them):

    C[c(m), n] = sum_p A(m, p) B(p, n)  (+ bias[n])

    forward            y = act(x W^T + b)       A = x,  B = W read transposed (TB), BIAS,
                                                ACT_RELU or ACT_TANH (a fused activation)
    dense backward     dx = dy W                A = dy, B = W
                       dW = dy^T x              A = dy read transposed (TA), B = x;
                       db = dy^T 1              DB: the blocks with n0 = 0 sum their A tiles
    unified backward   dx = dy[:, idx] W[idx]   A's columns gathered (GA), B's rows (GB)
                       dW[idx] = dy[:, idx]^T x TA | GA, C's rows scattered (SC)

The gathers and the scatter happen as tiles are loaded and stored, so the
unified backward never copies dy[:, idx] or W[idx] (the official PyTorch code
copies both before its `mm`). Two independent products go in one launch
(blockIdx.z picks one): the two products of a backward run side by side on
the GPU, and a Linear backward costs one GEMM launch.

What makes the kernel fast: a block of TD x TD threads computes a BM x BM tile
of C (BM = TD * TM = TILE, 64 by default). It walks the shared dimension BK at a
time; each step loads a BK x BM tile of A and of B into shared memory once
(coalesced: consecutive threads read consecutive addresses of whichever layout
the operand has; one column of padding keeps the transposing stores free of bank
conflicts; every load of a step is issued before the first store, so they are in
flight together), then each thread keeps a TM x TM block of C in registers and
updates it from TM values of A and TM of B per step: TM * TM multiply-adds per
2 * TM shared reads, and every global value is read once per tile instead of
once per output. The flags are constants of each compiled kernel (one per dtype
and pair of flags), so a product's code has no branch on how to read operands.
No warp intrinsics; the simulator runs the same code with tiny tiles.

Every index in the kernel is unsigned (uint64, `_U`). With Python's signed
integers Numba must allow for a negative index on every access (`a[-1]` wraps)
and for floor division rounding down, and ptxas spent more instructions on that
than on the multiply-adds: for the unified pair (sm_90 SASS, read with nvdisasm;
`python -m benchmarks.gpu_resources`) unsigned indices and a flat shared tile
read at a running offset took the kernel from 4752 instructions to 1968, its
inner loop from 61 instructions per 16 multiply-adds to about 31, and its
registers from 243 to 144 a thread (not yet timed on a GPU).
SPARSEBP_CUDA_TILE=32 gives 32 x 32 tiles (4x the blocks, 64 threads each); on an
H100 it made the unified backward's GEMM slower (35 vs 30 us: benchmarks/README.md).
SPARSEBP_CUDA_LOADS (16, 8 or 4) trades loads in flight for registers (see _bk).
SPARSEBP_CUDA_MINBLOCKS=2 (up to 4) asks the compiler, through CUDA launch bounds,
to fit that many blocks on an SM, spilling registers if it must (at TILE 64 and
16 loads: 128 registers instead of 144, nothing spilled; for a GPU session to time).

`set_gemm("cublas")` (or SPARSEBP_CUDA_GEMM=cublas) sends the dense products
(forward and dense backward) to cuBLAS through CuPy, on the same device memory
without copies. The gathered unified products always use the kernel here.
"""
import math
import os

import numpy as np
from numba import cuda

from .cuda_launch import SIM, gpu_kernel, to_device

TILE = int(os.environ.get("SPARSEBP_CUDA_TILE", "64"))   # a block's tile of C: TILE x TILE
if TILE not in (32, 64):
    raise ValueError(f"SPARSEBP_CUDA_TILE={TILE}: choose 32 or 64")
LOADS = int(os.environ.get("SPARSEBP_CUDA_LOADS", "16"))  # per operand, thread and step (_bk)
if LOADS not in (4, 8, 16):
    raise ValueError(f"SPARSEBP_CUDA_LOADS={LOADS}: choose 4, 8 or 16")
MINBLOCKS = int(os.environ.get("SPARSEBP_CUDA_MINBLOCKS", "1"))   # blocks an SM must hold
if MINBLOCKS not in (1, 2, 3, 4):
    raise ValueError(f"SPARSEBP_CUDA_MINBLOCKS={MINBLOCKS}: choose 1, 2, 3 or 4")
TM = 4                           # outputs per thread side, kept in registers
TD = 2 if SIM else TILE // TM    # threads per block side
BM = TD * TM                     # the block's tile of C is BM x BM
BMP = BM + 1                     # a padded tile row: transposing stores without bank conflicts
NT = TD * TD                     # (the shared dimension per tile, BK, is _bk below)

TA, TB, GA, GB, SC, BIAS = 1, 2, 4, 8, 16, 32   # how to read A, B, C (see above)
ACT_RELU, ACT_TANH = 64, 128     # C = relu(...) or tanh(...) as it is stored (a fused activation)
DB = 256                         # also bias[m] = sum_p A(m, p), out: dW's product sums db as it goes
_U = np.uint64                   # the kernel's index type: no negative-index code (see above)

_state = {"gemm": "numba"}


def set_gemm(which):
    """Dense products by "numba" (the kernel here, the default) or "cublas" (CuPy)."""
    if which not in ("numba", "cublas"):
        raise ValueError(f"unknown GEMM {which!r}; choose 'numba' or 'cublas'")
    if which == "cublas" and not cublas_available():
        raise RuntimeError("the cublas GEMM needs CuPy: pip install cupy-cuda12x")
    _state["gemm"] = which


def gemm_name():
    """"numba" or "cublas": which code the dense products run."""
    return _state["gemm"]


def cublas_available():
    """CuPy is importable (and this is not the simulator: CuPy needs a real GPU)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return not SIM


set_gemm(os.environ.get("SPARSEBP_CUDA_GEMM", "numba"))    # a clear error now, not mid-step


def _make_tile(f, flags):
    """The device function computing one BM x BM tile of C for one product whose flags
    are fixed here: every `flags &` test below is a constant, so the compiler keeps
    only the loads and stores that product needs (and can batch them)."""
    bk = _bk(f)
    loads = BM * bk // NT                       # elements of each operand tile one thread loads
    per = max(1, BM // NT)                      # rows of C whose db one thread sums (DB)

    # Unsigned copies of the sizes: uint64 mixed with int64 would make float64 in Numba.
    bm, bmp, td, nt, ubk = _U(BM), _U(BMP), _U(TD), _U(NT), _U(bk)

    @cuda.jit(device=True)
    def tile(C, A, B, M, N, K, idx, bias, sA, sB):
        """sA[p * BMP + m] = A(m0 + m, p0 + p), sB[p * BMP + n] = B(p0 + p, n0 + n):
        (BK * BMP,) shared, row p of a tile at p * BMP."""
        acc = cuda.local.array((TM, TM), f)
        dacc = cuda.local.array(per, np.float64)
        ra = cuda.local.array(TM, f)
        rb = cuda.local.array(TM, f)
        va = cuda.local.array(loads, f)
        vb = cuda.local.array(loads, f)
        M, N, K = _U(M), _U(N), _U(K)
        m0, n0 = _U(cuda.blockIdx.y) * bm, _U(cuda.blockIdx.x) * bm
        if m0 >= M or n0 >= N:                         # a block of the other product
            return
        tid = _U(cuda.threadIdx.x)
        tx, ty = tid % td, tid // td
        for i in range(TM):
            for j in range(TM):
                acc[i, j] = f(0)
        for q in range(per):
            dacc[q] = 0.0
        p0 = _U(0)
        while p0 < K:
            # All of this thread's loads first, into registers, then the stores to shared
            # memory. Interleaved, each store waits for the value it stores, and the
            # compiler may not move the next load above that store (for all it knows the
            # arrays could alias the shared tile): one round trip to memory per load.
            for step in range(loads):
                e = tid + _U(step) * nt
                if flags & TA:                         # A stored (K, .): contiguous along m
                    mm, pp = e % bm, e // bm
                else:                                  # A stored (M, .): contiguous along p
                    mm, pp = e // ubk, e % ubk
                m, p = m0 + mm, p0 + pp
                v = f(0)
                if m < M and p < K:
                    if flags & TA:
                        v = A[p, _U(idx[m]) if flags & GA else m]
                    else:
                        v = A[m, _U(idx[p]) if flags & GA else p]
                va[step] = v
                if flags & TB:                         # B stored (N, K): contiguous along p
                    nn, pp = e // ubk, e % ubk
                else:                                  # B stored (K, N): contiguous along n
                    nn, pp = e % bm, e // bm
                n, p = n0 + nn, p0 + pp
                v = f(0)
                if n < N and p < K:
                    if flags & TB:
                        v = B[n, p]
                    else:
                        v = B[_U(idx[p]) if flags & GB else p, n]
                vb[step] = v
            for step in range(loads):
                e = tid + _U(step) * nt
                if flags & TA:
                    sA[(e // bm) * bmp + e % bm] = va[step]
                else:
                    sA[(e % ubk) * bmp + e // ubk] = va[step]
                if flags & TB:
                    sB[(e % ubk) * bmp + e // ubk] = vb[step]
                else:
                    sB[(e // bm) * bmp + e % bm] = vb[step]
            cuda.syncthreads()
            if flags & DB and n0 == _U(0):            # db[m] += the tile's row m of A (zeros past K)
                for q in range(per):
                    mm = tid + _U(q) * nt
                    if mm < bm:
                        for p in range(bk):
                            dacc[q] += sA[_U(p) * bmp + mm]
            oa, ob = ty, tx                            # sA[p * BMP + ty + TD * i], as p runs
            for p in range(bk):
                for i in range(TM):
                    ra[i] = sA[oa + _U(TD * i)]
                for j in range(TM):
                    rb[j] = sB[ob + _U(TD * j)]
                oa += bmp
                ob += bmp
                for i in range(TM):
                    for j in range(TM):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
            p0 += ubk
        if flags & DB and n0 == _U(0):
            for q in range(per):
                m = m0 + tid + _U(q) * nt
                if tid + _U(q) * nt < bm and m < M:
                    bias[m] = dacc[q]
        for i in range(TM):
            m = m0 + ty + _U(TD * i)
            if m < M:
                r = _U(idx[m]) if flags & SC else m
                for j in range(TM):
                    n = n0 + tx + _U(TD * j)            # neighbouring threads, neighbouring n
                    if n < N:
                        v = acc[i, j]
                        if flags & BIAS:
                            v += bias[n]
                        if flags & ACT_RELU:
                            v = v if v > f(0) else f(0)
                        if flags & ACT_TANH:
                            v = math.tanh(v)
                        C[r, n] = v
    return tile


def _make_kernel(f, flags0, flags1):
    """The kernel for arrays of float type f and products with these flags."""
    tile0, tile1 = _make_tile(f, flags0), _make_tile(f, flags1)
    bk = _bk(f)
    size = bk * BMP                            # a shared tile, flat: row p at p * BMP

    bounds = {} if SIM or MINBLOCKS == 1 else {"launch_bounds": (NT, MINBLOCKS)}   # (the simulator has none)

    @gpu_kernel(**bounds)
    def gemm2(C0, A0, B0, M0, N0, K0, C1, A1, B1, M1, N1, K1, idx, bias):
        """blockIdx.z = 0: product 0, 1: product 1; blockIdx.x: n tile, y: m tile."""
        sA = cuda.shared.array(size, f)   # here, not in tile: one pair of tiles a block,
        sB = cuda.shared.array(size, f)   # not one per product (33 KB, not 66)
        if cuda.blockIdx.z == 0:
            tile0(C0, A0, B0, M0, N0, K0, idx, bias, sA, sB)
        else:
            tile1(C1, A1, B1, M1, N1, K1, idx, bias, sA, sB)

    return gemm2


_kernels, _dummies = {}, {}


def _bk(f):
    """The shared dimension per tile: LOADS loads of each operand per thread and step
    (BK = 64 float32 values at TILE 64 and 16 loads; half as many float64), so a small
    K (a meProp product's k or batch) takes few steps, each a round of global loads the
    whole block waits for. More loads in flight cost registers: ptxas gives the unified
    pair 144 registers at 16 loads, 96 at 8, 72 at 4 (`python -m benchmarks.gpu_resources`),
    so one 256-thread block fits on an SM at 16, two at 8, three at 4."""
    return 8 if SIM else LOADS * NT // BM // (np.dtype(f).itemsize // 4)


def _kernel(dtype, flags0, flags1):
    key = (np.dtype(dtype), flags0, flags1)
    if key not in _kernels:
        _kernels[key] = _make_kernel(key[0].type, flags0, flags1)
    return _kernels[key]


def _dummy(dtype):
    """A one-element device array standing for an unused idx or bias argument."""
    dtype = np.dtype(dtype)
    if dtype not in _dummies:
        _dummies[dtype] = to_device(np.zeros(1, dtype))
    return _dummies[dtype]


def gemm(*products, idx=None, bias=None, longest_first=True):
    """Run one or two products in one launch; each is (C, A, B, M, N, K, flags).

    C, A, B: 2-D device arrays of one float dtype; idx: (k,) int32 device array
    for the GA/GB/SC flags; bias: (N,) for BIAS, or (M,) out for DB (at most one
    product has either).
    One compiled kernel per (dtype, flags of product 0, flags of product 1).

    longest_first: the product with the longer shared dimension K gets blockIdx.z
    = 0. A block's time grows with K, and blocks start in the order of their
    index (z last), so its blocks start first and the short ones fill in behind
    them. In the unified backward at h=4096, B=128, k=64 the dW blocks (K = B)
    take two steps and the dx blocks (K = k) one, and the 192 blocks fill an
    H100's 132 SMs 1.5 times (one block per SM: _bk): dx first leaves 60 dW
    blocks to start after the first wave, ~3 one-step times in all; dW first
    ends at ~2. (False keeps the order given; benchmarks/gpu.py times both.)
    """
    p0 = products[0]
    p1 = products[1] if len(products) > 1 else p0
    if longest_first and p1[5] > p0[5]:
        p0, p1 = p1, p0
    dtype = p0[0].dtype
    idx = _dummy(np.int32) if idx is None else idx
    bias = _dummy(dtype) if bias is None else bias
    grid = (max(1, math.ceil(max(p0[4], p1[4]) / BM)),    # n tiles
            max(1, math.ceil(max(p0[3], p1[3]) / BM)),    # m tiles
            len(products))
    _kernel(dtype, p0[6], p1[6])[grid, NT](*p0[:6], *p1[:6], idx, bias)


# ---------------------------------------------------------------- cuBLAS via CuPy
def cublas_linear_forward(y, x, W, b):
    import cupy as cp
    out = cp.asarray(y)
    cp.matmul(cp.asarray(x), cp.asarray(W).T, out=out)
    out += cp.asarray(b)


def cublas_dense_backward(dx, dW, dy, x, W):
    import cupy as cp
    g = cp.asarray(dy)
    cp.matmul(g, cp.asarray(W), out=cp.asarray(dx))
    cp.matmul(g.T, cp.asarray(x), out=cp.asarray(dW))
