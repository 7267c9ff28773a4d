"""numba.cuda GPU kernels: the same names and arguments as `kernels/reference.py`.

Arrays are numba device arrays, so a whole training step stays on the device.
The host sees only the loss (one number, when it is read) and, for a per-example selection, the
size of the union of rows (one number). Inputs may be host arrays (any layout):
they are copied to the device first.

| kernel | implements (reference.py) | the idea that makes it fast |
| --- | --- | --- |
| `topk_rows` | `topk_rows` | one block per row: a radix select on the bit patterns of abs(dy), no sort, no float compares (cuda_select.py) |
| `topk_unified` | `topk_unified` | column sums and the same radix select in one launch: the block that finishes last selects |
| `topk_unified_and_bias` | `topk_unified` + `bias_grad` | CUDA's alone: the bias sums ride the same pass over dy (one launch, one read) |
| `union_rows` | `union_rows` | one block marks the rows and compacts them with a block scan |
| `topk_backward` | `topk_backward` | one launch: dx blocks read k rows of W coalesced; a dW block per row finds its examples by binary search, writes the row once |
| `unified_backward` | `unified_backward` | the tiled GEMM gathers dy's columns and W's rows as it loads tiles and scatters dW's rows as it stores: nothing copied (cuda_gemm.py) |
| `linear_forward`, `dense_backward` | the same | the tiled GEMM: the bias and a fused activation applied as C is stored; both backward products in one launch (or cuBLAS: `set_gemm`) |
| `prepare_dy` | `prepare_dy` | the activation's derivative, the bias sums and the unified selection in one pass over dy, one launch |
| `bias_grad` | `bias_grad` | coalesced column sums in float64 (cuda_select.py) |
| `zero_unselected` | `zero_unselected` | one block per row, a binary search in the sorted rows |
| `relu_forward`, `relu_backward`, `tanh_forward`, `tanh_backward`, `cube_forward`, `cube_backward`, `mul` | the same | one element-wise kernel per dtype and operation |
| `softmax_xent`, `softmax_xent_forward`, `softmax_xent_backward` | the same | one block, a thread per example: the loss and its gradient in one launch, the mean summed in a fixed order |
| `gather_rows` | `gather_rows` | one thread per element: the minibatch of a data set kept on the GPU, x and labels in one launch |
| `embedding_forward`, `embedding_backward` | the same | one thread per element; a word repeated in the batch adds atomically |
| `moving_average` | the same | one thread per element of a parameter, one launch per parameter |
| `sgd_step`, `adagrad_step`, `adam_step` | the same | one launch for every parameter: a block per selected row (or several narrow rows), one fused pass (cuda_optim.py) |
| `sgd_rows`, `adagrad_rows`, `adam_rows` | the same | the step kernels on one parameter |
| `lstm_forward`, `lstm_backward` | the same | not written for CUDA: they raise NotImplementedError naming the kernel (run the LSTM on "cpu") |
| `empty`, `zeros`, `to_device`, `to_host`, `copy_to` | the same | numba device arrays: a step's data stays on the GPU; each allocation and copy counted (`cuda_launch.py`) |

Where things are
- here: the arrays, the selections' host side, the sparse backward products,
  the element-wise layers and the loss;
- `kernels/cuda_select.py`: the block-wide radix select behind `topk_rows` and
  `topk_unified`, the column sums, the union of rows;
- `kernels/cuda_gemm.py`: the tiled GEMM (forward, dense and unified backward),
  and `set_gemm("cublas")` to use cuBLAS through CuPy for the dense products;
- `kernels/cuda_optim.py`: the row-sparse SGD, AdaGrad and Adam;
- `kernels/cuda_launch.py`: `@gpu_kernel`, Numba's kernels launched through a
  shorter host path (small GPU work spends most of its time in launches).

Every hot kernel is compiled for the arrays' own float type, so a float32 model
does float32 arithmetic (full rate on every GPU) and a float64 one, float64.
Scratch buffers of the selections and the loss are kept between calls
(`_scratch`): no cudaMalloc inside a training step but the layers' outputs.

No kernel uses warp shuffles or ballots: block-wide reductions and scans go
through shared memory and `syncthreads`, so Numba's CUDA simulator
(`NUMBA_ENABLE_CUDASIM=1`, what CI runs) executes exactly the code a GPU runs,
only with smaller blocks and tiles (8 threads instead of 256, 8 x 8 GEMM tiles
instead of 64 x 64: the simulator runs each thread as a Python thread).

Launches of one Linear backward (numba GEMM; with cuBLAS, dense is 1 + 2 calls)
    dense    2   bias, GEMM pair (dx and dW in one launch)
    unified  2   column sums of |dy| and of dy (the bias) + select (one launch),
                 gathered GEMM pair
    topk     4   bias, select, sparse dx + dW (one launch), union of rows
                 (the union's size, 4 bytes, is copied to the host: one sync)
"""
import math
import warnings

import numpy as np

# numba-cuda releases older than NumPy 2.5 register an overload of np.row_stack
# (which NumPy 2.5 removed) when they compile a first kernel; seen on a GPU
# machine with numba-cuda from before 2.5 and NumPy 2.5.2. The old alias suffices.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402

from . import cuda_launch, cuda_select as S  # noqa: F401
from .cuda_launch import (copy_to, counts, device_array, gpu_kernel, launch_name, launches,  # noqa: F401
                          on_device, set_launch, to_device, to_host)
from .cuda_gemm import (ACT_RELU, ACT_TANH, BIAS, DB, GA, GB, SC, TA, TB, cublas_dense_backward,  # noqa: F401
                        _U, cublas_linear_forward, gemm, gemm_name, set_gemm)
from .cuda_optim import (adagrad_rows, adagrad_step, adam_rows, adam_step, row_threads,  # noqa: F401
                         sgd_rows, sgd_step)

name = "cuda"
ACTIVATIONS = ("relu", "tanh")
FUSES_ACTIVATIONS = True # Sequential hands a Linear the activation after it (Linear.forward)
KEEPS_BUFFERS = True     # layers keep their outputs and gradients between steps (Module.buffer)
THREADS = S.THREADS
# A one-block union or a small layer's grid is small on purpose; Numba would warn each time.
warnings.filterwarnings("ignore", message=r".*Grid size \d+ will likely result in GPU under-utilization")


def _blocks(n, threads=THREADS):
    return max(1, math.ceil(n / threads))


_typed_kernels = {}


def _typed(make, dtype):
    """make(f) for the float type f of dtype, built once: a kernel whose constants
    and accumulators are of the arrays' own type (float32 math on float32 data)."""
    key = (make, np.dtype(dtype))
    if key not in _typed_kernels:
        _typed_kernels[key] = make(np.dtype(dtype).type)
    return _typed_kernels[key]


# ---------------------------------------------------------------- arrays
def empty(shape, dtype=np.float32):
    return device_array(shape, dtype)


def zeros(shape, dtype=np.float32):
    return to_device(np.zeros(shape, dtype))


def synchronize():
    """Wait for every queued kernel (timers call this; kernels launch asynchronously)."""
    cuda.synchronize()


_scratch_bufs = {}


def _scratch(name, shape, dtype, zero=False, view_of=None):
    """A device buffer kept between calls, one per (name, shape, dtype).

    Every kernel runs in order on the default stream, so a call's use of a
    buffer starts after the previous call's has ended: reusing it spares the hot
    kernels a cudaMalloc per call (and numba's deferred frees, which can stall).
    zero: filled with zeros when first made (the kernels keep it so).
    view_of: another scratch buffer, whose memory this one reads as dtype.
    """
    key = (name, shape, np.dtype(dtype))
    if key not in _scratch_bufs:
        _scratch_bufs[key] = (view_of.view(dtype) if view_of is not None
                              else to_device(np.zeros(shape, dtype)) if zero
                              else device_array(shape, dtype))
    return _scratch_bufs[key]


def _mask(key_bits):
    return np.int64((1 << (key_bits - 1)) - 1)       # every bit but the sign


# ---------------------------------------------------------------- selection
def topk_rows(idx, dy, k):
    """idx: (B, k) int32 out, rows ascending; dy: (B, n) float32/64.

    One block per row runs a radix select on the bit patterns of |dy| (see
    cuda_select.py): at most 4 passes over a float32 row, no sort, no float
    compares, the tie rule by construction. One launch.
    """
    dy = to_device(dy)
    bits = dy.dtype.itemsize * 8                   # device arrays have no .itemsize
    keys = dy.view(np.int32 if bits == 32 else np.int64)
    S.topk_rows_kernel[dy.shape[0], THREADS](idx, keys, k, _mask(bits), bits)


def topk_unified(idx, dy, k):
    """idx: (k,) int32 out, ascending; dy: (B, n). Column sums of |dy| (float64), then
    the radix select, in one launch: the block that finishes last selects."""
    prepare_dy(None, None, idx, dy, None, None, k)


def topk_unified_and_bias(idx, db, dy, k):
    """topk_unified, and db: (n,) out, the bias gradient (bias_grad) summed in the same
    pass over dy (None: not wanted): prepare_dy without an activation."""
    prepare_dy(None, db, idx, dy, None, None, k)


def prepare_dy(g, db, idx, dy, y, act, k):
    """See reference.prepare_dy: g = dy * act'(y), db = its column sums, idx = the
    unified top-k of g (None: not wanted), all in ONE launch and one pass over dy:
    the unified select's kernel when idx is wanted, else the bias sums' kernel.
    g, dy, y: (B, n); db: (n,); idx: (k,) int32; act: None, "relu" or "tanh"."""
    dy = to_device(dy)
    code = S.ACT_CODES[act]
    if act is None:
        g = y = dy                                     # neither read nor written
    n = dy.shape[1]
    if idx is None:
        S.bias_grad_kernel[_blocks(n, S.COLS), THREADS](db, g, dy, y, code)
        return
    s = _scratch("unified_sums", (n,), np.float64)
    keys = _scratch("unified_keys", (n,), np.int64, view_of=s)
    counter = _scratch("unified_counter", (1,), np.int32, zero=True)
    want_db = db is not None
    db = db if want_db else _scratch("no_bias", (1,), dy.dtype)
    S.topk_unified_kernel[_blocks(n, S.COLS), THREADS](idx, s, keys, counter, db, g, dy, y, code, k,
                                                       _mask(64), want_db)


def union_rows(idx, n_out, out=None):
    """(r,) int32 device array, ascending: the rows any example selected, a view of
    out: (n_out,) int32 (None: a new array). One block marks and compacts; the count
    comes to the host (the host waits for the GPU) to size the result."""
    rows = device_array(n_out, np.int32) if out is None else out
    count = _scratch("union_count", (1,), np.int32)
    mark = _scratch("union_mark", (n_out,), np.int32)
    S.union_kernel[1, THREADS](rows, count, mark, to_device(idx))
    return rows[:int(to_host(count)[0])]


@cuda.jit(device=True)
def _has(sorted_row, n, r):
    """Whether r is among sorted_row[0:n] (ascending): binary search."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_row[mid] < r:
            lo = mid + 1
        else:
            hi = mid
    return lo < n and sorted_row[lo] == r


@gpu_kernel
def _zero_unselected(G, rows):
    """One block per row of G: zero it unless it is in rows (ascending)."""
    r = cuda.blockIdx.x
    if not _has(rows, rows.shape[0], r):
        for i in range(cuda.threadIdx.x, G.shape[1], cuda.blockDim.x):
            G[r, i] = 0


def zero_unselected(G, rows):
    """G: (n_rows, n_cols); rows: (r,) int, ascending (every sparsebp selection is)."""
    _zero_unselected[G.shape[0], row_threads(G)](G, to_device(rows))


# ---------------------------------------------------------------- linear layer
def linear_forward(y, x, W, b, act=None):
    """y: (B, n_out) = act(x: (B, n_in) W^T + b): one GEMM launch, the bias added and the
    activation (None, "relu", "tanh") applied as C is stored. (cuBLAS: then a launch for act.)"""
    x = to_device(x)
    if gemm_name() == "cublas":
        cublas_linear_forward(y, x, W, b)
        if act is not None:
            _ew(y, y, y, {"relu": RELU, "tanh": TANH}[act])
        return
    flags = TB | BIAS | {None: 0, "relu": ACT_RELU, "tanh": ACT_TANH}[act]
    gemm((y, x, W, x.shape[0], W.shape[0], W.shape[1], flags), bias=b)


def dense_backward(dx, dW, dy, x, W, db=None):
    """dx: (B, n_in) = dy W; dW: (n_out, n_in) = dy^T x; db: (n_out,) = column sums of
    dy (None: not wanted). Both products, and db, in one launch: the blocks of dW's
    first column of tiles also sum the tiles of dy^T they load (cuda_gemm's DB)."""
    if gemm_name() == "cublas":
        if db is not None:
            bias_grad(db, dy)
        return cublas_dense_backward(dx, dW, dy, x, W)
    B, n_out = dy.shape
    gemm((dx, dy, W, B, W.shape[1], n_out, 0),
         (dW, dy, x, n_out, W.shape[1], B, TA | (0 if db is None else DB)), bias=db)


def bias_grad(db, dy):
    """db: (n_out,) = column sums of the full dy: (B, n_out), coalesced, in float64."""
    prepare_dy(None, db, None, dy, None, None, 0)


def _make_topk_backward(f):
    @gpu_kernel
    def kernel(dx, dW, dy, x, W, idx, n_tiles):
        """Blocks [0, B n_tiles): dx[b, tile]; blocks after: dW[r] for r = 0..n_out-1."""
        sr = cuda.shared.array(THREADS, np.int32)
        sv = cuda.shared.array(THREADS, f)
        buf = cuda.shared.array((2, THREADS), np.int64)
        tid = cuda.threadIdx.x
        B, n_in = x.shape
        k = idx.shape[1]
        blk = cuda.blockIdx.x
        if blk < B * n_tiles:                # dx[b, i] = sum_j dy[b, idx[b, j]] W[idx[b, j], i]
            b = blk // n_tiles
            i = (blk % n_tiles) * THREADS + tid
            acc = f(0)
            for base in range(0, k, THREADS):
                if base + tid < k:           # stage the kept (unit, value) pairs of row b
                    sr[tid] = idx[b, base + tid]
                    sv[tid] = dy[b, sr[tid]]
                cuda.syncthreads()
                if i < n_in:                 # threads along i: each row of W read coalesced
                    for j in range(min(THREADS, k - base)):
                        acc += sv[j] * W[_U(sr[j]), _U(i)]   # unsigned: no negative-index code
                cuda.syncthreads()
            if i < n_in:
                dx[b, i] = acc
            return
        r = blk - B * n_tiles                # dW[r] = sum over examples b that kept r of dy[b, r] x[b]
        wrote = False
        for base in range(0, B, THREADS):
            b = base + tid
            hit = 1 if b < B and _has(idx[b], k, r) else 0
            pos, total = S.block_scan(buf, tid, hit)   # list those b in batch order
            if hit:
                sr[pos - 1] = b
                sv[pos - 1] = dy[b, r]
            cuda.syncthreads()
            if total > 0:
                for i in range(tid, n_in, THREADS):
                    acc = f(0)
                    for e in range(total):
                        acc += sv[e] * x[_U(sr[e]), _U(i)]
                    if wrote:
                        dW[r, i] += acc
                    else:
                        dW[r, i] = acc
                wrote = True
            cuda.syncthreads()
    return kernel


def topk_backward(dx, dW, dy, x, W, idx):
    """Per-example meProp backward; see reference.topk_backward. One launch.

    dx: (B, n_in) out; dW: (n_out, n_in) out (union rows only); dy: (B, n_out);
    x: (B, n_in); W: (n_out, n_in); idx: (B, k) int32, rows ascending.
    dx: a block per (example, tile of n_in) stages its k kept values in shared
    memory and reads k rows of W, coalesced. dW: a block per row r finds the
    examples that kept r (binary search in each sorted idx row), lists them in
    batch order (block scan) and writes dW[r] once: no atomics, no zeroing pass,
    the same summation order on every run (the CPU kernel's); rows nobody kept
    are not written.
    """
    n_tiles = _blocks(x.shape[1])
    _typed(_make_topk_backward, x.dtype)[x.shape[0] * n_tiles + W.shape[0], THREADS](
        dx, dW, dy, x, W, to_device(idx), n_tiles)


def unified_backward(dx, dW, dy, x, W, idx):
    """Unified meProp backward: dx = dy[:, idx] W[idx]; dW[idx] = dy[:, idx]^T x.

    Two small dense GEMMs in one launch, gathering the k columns of dy and rows
    of W while loading tiles and scattering into the k rows of dW as it stores:
    the shape of work GPUs do well, and nothing is copied.
    """
    gemm(*unified_products(dx, dW, dy, x, W, idx.shape[0]), idx=to_device(idx))


def unified_products(dx, dW, dy, x, W, k):
    """The two products of the unified backward, as `cuda_gemm.gemm` takes them."""
    B, n_in = x.shape
    return ((dx, dy, W, B, n_in, k, GA | GB),
            (dW, dy, x, k, n_in, B, TA | GA | SC))


# ---------------------------------------------------------------- element-wise
RELU, RELU_BACK, TANH, TANH_BACK, CUBE, CUBE_BACK, MUL = range(7)


def _make_elementwise(f):
    zero, one, three = f(0), f(1), f(3)  # typed constants: float32 math stays float32

    @gpu_kernel
    def kernel(out, a, b, op):
        """out, a, b: (B, n); one thread per element (flat index: no reshapes on the
        host), op a launch argument so one compiled kernel serves all seven."""
        e = cuda.grid(1)
        if e < out.size:
            r, c = e // out.shape[1], e % out.shape[1]
            v = a[r, c]
            if op == RELU:
                out[r, c] = v if v > zero else zero
            elif op == RELU_BACK:
                out[r, c] = v if b[r, c] > zero else zero
            elif op == TANH:
                out[r, c] = math.tanh(v)
            elif op == TANH_BACK:
                out[r, c] = v * (one - b[r, c] * b[r, c])
            elif op == CUBE:
                out[r, c] = v * v * v
            elif op == CUBE_BACK:                      # b: the cube's input x
                out[r, c] = b[r, c] * b[r, c] * v * three
            else:
                out[r, c] = v * b[r, c]
    return kernel


def _ew(out, a, b, op):
    kernel = _typed(_make_elementwise, out.dtype)
    kernel[_blocks(out.size), THREADS](out, to_device(a), to_device(b), op)


def relu_forward(y, x):
    _ew(y, x, x, RELU)


def relu_backward(dx, dy, y):
    """dx = dy where the output y > 0, else 0.  All (B, n)."""
    _ew(dx, dy, y, RELU_BACK)


def tanh_forward(y, x):
    _ew(y, x, x, TANH)


def tanh_backward(dx, dy, y):
    """dx = dy (1 - y^2), y the tanh output.  All (B, n)."""
    _ew(dx, dy, y, TANH_BACK)


def cube_forward(y, x):
    _ew(y, x, x, CUBE)


def cube_backward(dx, dy, x):
    """dx = 3 x^2 dy, x the cube's input.  All (B, n)."""
    _ew(dx, dy, x, CUBE_BACK)


def mul(out, a, m):
    """out = a * m element-wise (dropout's forward and backward with its mask)."""
    _ew(out, a, m, MUL)


def _make_average(f):
    @gpu_kernel
    def kernel(S, W, a):
        """S, W: (n,) flat views of one parameter and its average; a: their float
        type. S[e] += a (W[e] - S[e]), one thread per element."""
        e = cuda.grid(1)
        if e < S.size:
            S[e] += a * (W[e] - S[e])
    return kernel


def moving_average(S, W, a):
    """S += a (W - S) (see reference.moving_average); S, W: device arrays of one shape."""
    kernel = _typed(_make_average, S.dtype)
    kernel[_blocks(S.size), THREADS](S.reshape(-1), W.reshape(-1), S.dtype.type(a))


def _make_softmax_xent(f):
    zero, one = f(0), f(1)

    @gpu_kernel
    def kernel(out, loss, logits, labels, grad):
        """One block; thread t takes rows t, t + THREADS, ... of logits: (B, C).
        out: (B, C) = softmax, or with grad (softmax - onehot) / B; loss: (1,)
        float64 = the mean -log p[label], the threads' sums added in a fixed order
        (the same on every run)."""
        part = cuda.shared.array(THREADS, np.float64)
        tid = cuda.threadIdx.x
        B, C = logits.shape
        acc = 0.0
        for b in range(tid, B, THREADS):
            m = logits[b, 0]
            for c in range(1, C):
                m = max(m, logits[b, c])
            s = zero
            for c in range(C):
                s += math.exp(logits[b, c] - m)
            for c in range(C):
                p = math.exp(logits[b, c] - m) / s
                out[b, c] = (p - (one if labels[b] == c else zero)) / f(B) if grad else p
            acc += math.log(s) - (logits[b, labels[b]] - m)
        part[tid] = acc
        cuda.syncthreads()
        if tid == 0:
            total = 0.0
            for t in range(THREADS):
                total += part[t]
            loss[0] = total / B
    return kernel


def _xent(out, loss, logits, labels, grad):
    _typed(_make_softmax_xent, logits.dtype)[1, THREADS](out, loss, to_device(logits), to_device(labels), grad)


def softmax_xent_forward(probs, logits, labels):
    """Softmax and the mean cross-entropy; returns the loss as a Python float.

    probs: (B, C) out; logits: (B, C); labels: (B,) int. One launch (the kernel of
    softmax_xent); the loss comes to the host (the host waits for the GPU).
    """
    loss = _scratch("loss", (1,), np.float64)
    _xent(probs, loss, logits, labels, False)
    return float(to_host(loss)[0])


def softmax_xent(dlogits, loss, logits, labels):
    """dlogits: (B, C) out = (softmax - onehot) / B; loss: (1,) float64 out, the mean
    loss, left on the device. One launch: the loss and its gradient together."""
    _xent(dlogits, loss, logits, labels, True)


def _make_xent_backward(f):
    zero, one = f(0), f(1)

    @gpu_kernel
    def kernel(d, probs, labels):
        """One thread per element of d: (B, C), in probs' type."""
        e = cuda.grid(1)
        if e < d.size:
            b, c = e // d.shape[1], e % d.shape[1]
            d[b, c] = (probs[b, c] - (one if labels[b] == c else zero)) / f(d.shape[0])
    return kernel


def softmax_xent_backward(dlogits, probs, labels):
    """dlogits: (B, C) out = (probs - onehot(labels)) / B."""
    kernel = _typed(_make_xent_backward, dlogits.dtype)
    kernel[_blocks(dlogits.size), THREADS](dlogits, probs, to_device(labels))


@gpu_kernel
def _gather_rows(x, y, X, Y, ids):
    """One thread per element of x: (B, d) = X[ids]; the threads of column 0 also y = Y[ids]."""
    e = cuda.grid(1)
    if e < x.size:
        i, c = e // x.shape[1], e % x.shape[1]
        r = ids[i]
        x[i, c] = X[r, c]
        if c == 0:
            y[i] = Y[r]


def gather_rows(x, y, X, Y, ids):
    """x: (B, d) out = X[ids]; y: (B,) out = Y[ids]; X: (N, d), Y: (N,), ids: (B,) int,
    all on the device: a minibatch of a resident data set in one launch, no copy."""
    _gather_rows[_blocks(x.size), THREADS](x, y, X, Y, to_device(ids))


# ---------------------------------------------------------------- embedding
@gpu_kernel
def _embedding_forward(y, W, ids):
    """One thread per element of y: (N, dim) = W[ids]; reads of a row of W coalesced."""
    e = cuda.grid(1)
    if e < y.size:
        i, c = e // y.shape[1], e % y.shape[1]
        y[i, c] = W[ids[i], c]


def embedding_forward(y, W, ids):
    """y: (N, dim) out = W[ids]; W: (vocab, dim); ids: (N,) int32."""
    _embedding_forward[_blocks(y.size), THREADS](y, W, to_device(ids))


@gpu_kernel
def _embedding_zero(dW, ids):
    e = cuda.grid(1)
    if e < ids.shape[0] * dW.shape[1]:
        dW[ids[e // dW.shape[1]], e % dW.shape[1]] = 0


@gpu_kernel
def _embedding_add(dW, dy, ids):
    """One thread per element of dy; a word repeated in the batch adds atomically."""
    e = cuda.grid(1)
    if e < dy.size:
        i, c = e // dy.shape[1], e % dy.shape[1]
        cuda.atomic.add(dW, (ids[i], c), dy[i, c])


def embedding_backward(dW, dy, ids):
    """dW[r] = sum of dy[i] with ids[i] == r, rows in ids only. dW: (vocab, dim) out;
    dy: (N, dim); ids: (N,) int32. Two launches: zero the rows, then add."""
    ids = to_device(ids)
    _embedding_zero[_blocks(dy.size), THREADS](dW, ids)
    _embedding_add[_blocks(dy.size), THREADS](dW, to_device(dy), ids)


# ---------------------------------------------------------------- LSTM recurrence
def _no_lstm(name):
    raise NotImplementedError(
        f"kernels.cuda has no {name} (the LSTM's recurrence is written for the 'numpy' and "
        f"'cpu' backends only): run the LSTM with sb.set_backend('cpu')")


def lstm_forward(Hs, Cs, Gs, Zx, W_hh, lengths):
    """Not written for the GPU; see kernels/reference.py."""
    _no_lstm("lstm_forward")


def lstm_backward(dZ, dW_hh, sel, dHs, Hs, Cs, Gs, W_hh, lengths, mode, per_gate):
    """Not written for the GPU; see kernels/reference.py."""
    _no_lstm("lstm_backward")
