"""PyTorch peers of the MNIST MLP step (imported only when torch is importable); the
CPU lab (benchmarks/sections.py) and the GPU whole step (benchmarks/gpu.py) use them.

Two models: dense `nn.Linear` layers, and unified meProp the way the official PyTorch
code does it: a custom autograd Function whose backward takes the column sums of
|dy|, `topk`, `index_select`s the k columns of dy and rows of W, multiplies the small
matrices and `index_copy_`s the k rows into a zero dW. Both train with
`torch.optim.Adam`; the output layer is a dense `nn.Linear` in both, as in sparsebp.
"""
import numpy as np
import torch
from torch import nn


class UnifiedLinearFn(torch.autograd.Function):
    """y = x W^T + b; the backward keeps one set of k output units for the batch."""

    @staticmethod
    def forward(ctx, x, W, b, k):
        ctx.save_for_backward(x, W)
        ctx.k = k
        return torch.addmm(b, x, W.t())

    @staticmethod
    def backward(ctx, dy):
        x, W = ctx.saved_tensors                           # x: (B, n_in); W: (n_out, n_in)
        idx = dy.abs().sum(0).topk(ctx.k)[1]               # (k,) by the column sums of |dy|
        dyk = dy.index_select(1, idx)                      # (B, k) the kept columns
        dx = dyk.mm(W.index_select(0, idx)) if ctx.needs_input_grad[0] else None
        dW = torch.zeros_like(W).index_copy_(0, idx, dyk.t().mm(x))
        return dx, dW, dy.sum(0), None                     # the bias gets the full dy


class UnifiedLinear(nn.Linear):
    def __init__(self, n_in, n_out, k):
        super().__init__(n_in, n_out)
        self.k = k

    def forward(self, x):
        return UnifiedLinearFn.apply(x, self.weight, self.bias, self.k)


def mlp(mode, weights, k=20, device="cpu"):
    """The MLP of the weights [(W: (n_out, n_in), b: (n_out,))] as NumPy (784-500-500-10
    in the CPU lab) in PyTorch, ReLU between the layers; mode "dense" or "unified"
    (meProp on every layer but the output one), on device."""
    layers = []
    for i, (W, b) in enumerate(weights):
        n_out, n_in = W.shape
        hidden = i < len(weights) - 1
        layer = UnifiedLinear(n_in, n_out, k) if hidden and mode == "unified" else nn.Linear(n_in, n_out)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.copy_(torch.from_numpy(b))
        layers += [layer, nn.ReLU()] if hidden else [layer]
    return nn.Sequential(*layers).to(device)


def step_fns(mode, weights, batches, k=20, lr=1e-3):
    """(forward, step, model): closures cycling through batches [(x: (B, 784), y: (B,))]."""
    model = mlp(mode, weights, k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    data = [(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))) for x, y in batches]
    state = [0]

    def forward():
        state[0] = (state[0] + 1) % len(data)
        xt, yt = data[state[0]]
        return loss_fn(model(xt), yt)

    def step():
        opt.zero_grad(set_to_none=False)
        forward().backward()
        opt.step()
    return forward, step, model


class Grad:
    """A torch parameter as NumPy, shaped like a sparsebp Parameter (all rows updated)."""

    def __init__(self, p):
        self.data, self.grad = p.detach().numpy().copy(), p.grad.detach().numpy().copy()
        self.shape, self.rows = self.data.shape, None
