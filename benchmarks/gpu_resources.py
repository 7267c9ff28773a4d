"""Registers, shared memory and spills of the CUDA kernels, and how many blocks fit on an SM.

    python -m benchmarks.gpu_resources [--configs 64:16,64:16:2,64:8,64:4,32:4] [--cc 9.0]

No GPU needed: each kernel is compiled to PTX by Numba for float32 arguments of
the unified backward at hidden 4096 (the GPU target), and NVIDIA's ptxas reports
what the kernel uses. That bounds occupancy: an H100 SM has 65,536 registers,
228 KB of shared memory and 2,048 threads, so a 256-thread block of more than
128 registers leaves room for no second block, and a grid of 256 blocks runs on
132 SMs in two waves. Needs `pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12`
(ptxas and the NVRTC library Numba compiles with). With `pip install
nvidia-cuda-nvdisasm` it also counts each kernel's SASS instructions, and those
of its tightest multiply-add loop per FFMA (how much of the loop is arithmetic
and how much addressing). A config is TILE:LOADS[:MINBLOCKS]
(SPARSEBP_CUDA_TILE, SPARSEBP_CUDA_LOADS, SPARSEBP_CUDA_MINBLOCKS; kernels/cuda_gemm.py);
each runs in its own process, since they are read at import.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REGS, SMEM, THREADS, BLOCKS = 65536, 228 * 1024, 2048, 32        # per SM, compute capability 9.0


def _tool(name, wheel_dirs):
    """An NVIDIA tool from a wheel's nvidia/<dir>/bin, or from PATH; None if neither."""
    try:
        import nvidia
        for root in nvidia.__path__:
            for d in wheel_dirs:
                path = os.path.join(root, d, "bin", name)
                if os.path.exists(path):
                    return path
    except ImportError:
        pass
    return shutil.which(name)


def ptxas():
    """ptxas of the nvidia-cuda-nvcc-cu12 wheel, or the one on PATH."""
    return _tool("ptxas", ["cuda_nvcc"])


def nvdisasm():
    """nvdisasm of the nvidia-cuda-nvdisasm wheel (optional: SASS counts), or PATH's."""
    return _tool("nvdisasm", ["cu13", "cuda_nvdisasm"])


def sass_counts(cubin):
    """(instructions in the kernel, (instructions, FFMAs) of its tightest multiply-add
    loop, the fewest instructions per FFMA) from nvdisasm's listing; a loop is a branch
    back to an earlier label."""
    text = subprocess.run([nvdisasm(), "-c", cubin], capture_output=True, text=True, check=True).stdout
    ops, labels, best = [], {}, (0, 0)
    for line in text.splitlines():
        if m := re.match(r"\s*(\.L_x_\d+):", line):
            labels[m.group(1)] = len(ops)
        elif m := re.match(r"\s+/\*[0-9a-f]+\*/\s+(.*?)\s*;", line):
            ops.append(m.group(1))
            if (b := re.search(r"BRA `\((\.L_x_\d+)\)", ops[-1])) and b.group(1) in labels:
                body = ops[labels[b.group(1)]:]
                fma = sum(" FFMA" in f" {o}" for o in body)
                if fma and (best == (0, 0) or len(body) / fma < best[0] / best[1]):
                    best = (len(body), fma)
    return len(ops), best


def kernels_to_check():
    """(name, kernel's Python function, Numba signature, threads per block)."""
    import numpy as np

    from sparsebp.kernels import cuda as G
    from sparsebp.kernels import cuda_gemm as CG
    from sparsebp.kernels import cuda_select as S
    a2, i2 = "float32[:, ::1]", "int32[:, ::1]"
    g = f"{a2}, {a2}, {a2}, int64, int64, int64"
    gemm = f"void({g}, {g}, int32[::1], float32[::1])"
    return [
        ("GEMM pair, unified (dx, dW)", CG._make_kernel(np.float32, CG.GA | CG.GB, CG.TA | CG.GA | CG.SC),
         gemm, CG.NT),
        ("GEMM pair, dense (dx, dW)", CG._make_kernel(np.float32, 0, CG.TA), gemm, CG.NT),
        ("column sums + bias + select (unified)", S.topk_unified_kernel,
         "void(int32[::1], float64[::1], int64[::1], int32[::1], float32[::1], float32[:, ::1], float32[:, ::1], "
         "float32[:, ::1], int64, int64, int64, boolean)",
         S.THREADS),
        ("per-row select", S.topk_rows_kernel, f"void({i2}, {i2}, int64, int64, int64)", S.THREADS),
        ("top-k backward (dx, dW)", G._typed(G._make_topk_backward, np.float32),
         f"void({a2}, {a2}, {a2}, {a2}, {a2}, {i2}, int64)", G.THREADS),
    ]


def report(cc):
    """Compile each kernel for this process's config and print one line per kernel."""
    import numba.cuda.dispatcher as D
    from numba import cuda

    class Device:                         # compiling a device function asks for the current GPU's
        compute_capability = cc          # compute capability; without a GPU, say which to target
    try:
        cuda.get_current_device()
    except Exception:                     # noqa: BLE001 - no GPU here: the stand-in
        D.get_current_device = lambda: Device()
    tool = ptxas()
    for name, k, sig, threads in kernels_to_check():
        ptx, _ = cuda.compile_ptx(k.dispatcher.py_func, sig, cc=cc,
                                  launch_bounds=k.dispatcher.targetoptions.get("launch_bounds"))
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "k.ptx")
            with open(src, "w") as f:
                f.write(ptx)
            out = subprocess.run([tool, f"-arch=sm_{cc[0]}{cc[1]}", "-v", src, "-o", os.path.join(tmp, "k.cubin")],
                                 capture_output=True, text=True, check=True).stderr
            sass = sass_counts(os.path.join(tmp, "k.cubin")) if nvdisasm() else None
        regs = int(re.search(r"Used (\d+) registers", out).group(1))
        smem = int(m.group(1)) if (m := re.search(r"(\d+) bytes smem", out)) else 0
        spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill", out))
        fit = min(REGS // (regs * threads), SMEM // max(smem, 1), THREADS // threads, BLOCKS)
        print(f"  {name:40s} {threads:4d} threads  {regs:3d} registers  {smem / 1024:5.1f} KB shared  "
              f"{spill:4d} B spilled  {fit} block(s) per SM", flush=True)
        if sass:
            total, (loop, fma) = sass
            inner = f"; its multiply-add loop {loop} instructions for {fma} FFMAs" if fma else ""
            print(f"  {'':40s} SASS: {total} instructions{inner}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="64:16,64:16:2,64:8,64:4,32:4",
                    help="TILE:LOADS[:MINBLOCKS],... of our GEMM")
    ap.add_argument("--cc", default="9.0", help="compute capability to compile for (9.0: H100/H200)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # a child: this config only
    a = ap.parse_args(argv)
    cc = tuple(int(x) for x in a.cc.split("."))
    if a.one:
        try:
            report(cc)
        except Exception as e:                # noqa: BLE001 - say what is missing in one line
            print(f"benchmarks.gpu_resources: {type(e).__name__}: {str(e).splitlines()[0]} "
                  "(pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12?)")
            return 1
        return 0
    if ptxas() is None:
        print("benchmarks.gpu_resources: no ptxas; pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12")
        return 1
    for config in a.configs.split(","):
        tile, loads, minblocks = (config.split(":") + ["1"])[:3]
        print(f"SPARSEBP_CUDA_TILE={tile} SPARSEBP_CUDA_LOADS={loads} SPARSEBP_CUDA_MINBLOCKS={minblocks}, "
              f"compute capability {a.cc}:", flush=True)
        env = dict(os.environ, SPARSEBP_CUDA_TILE=tile, SPARSEBP_CUDA_LOADS=loads, SPARSEBP_CUDA_MINBLOCKS=minblocks,
                   NUMBA_ENABLE_CUDASIM="0")
        if subprocess.run([sys.executable, "-m", "benchmarks.gpu_resources", "--one", "--cc", a.cc],
                          env=env).returncode:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
