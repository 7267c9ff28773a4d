"""Fits the float32 tanh of kernels/cpu_lstm.py: tanh(x) ~ x P(u) / Q(u), u = (x / 9)^2,
P of degree 6 and Q of degree 3 (Q(0) = 1), on x in [0, 9] (tanh is odd; beyond 9 it
rounds to 1 in float32).

    python -m benchmarks.fit_tanh

Linearised least squares, reweighted by 1 / Q from the previous round
(Sanathanan-Koerner iterations), on a grid dense where tanh bends. Prints the
coefficients and the largest error of the float32 evaluation on [-12, 12].
"""
import numpy as np

CLAMP = 9.0


def fit(n_p=7, n_q=4, rounds=30):
    x = np.concatenate([np.linspace(0, 3, 300001), np.linspace(3, CLAMP, 100001)])
    t, u = np.tanh(x), (x / CLAMP) ** 2
    Q = np.ones_like(x)
    for _ in range(rounds):   # x P(u) - t (Q(u) - 1) = t, weighted by 1 / Q
        A = np.concatenate([x[:, None] * u[:, None] ** np.arange(n_p),
                            -t[:, None] * u[:, None] ** np.arange(1, n_q)], 1)
        sol = np.linalg.lstsq(A / Q[:, None], t / Q, rcond=None)[0]
        p, q = sol[:n_p], np.concatenate([[1.0], sol[n_p:]])
        Q = np.polyval(q[::-1], u)
    return p, q


def evaluate32(x, p, q):
    """The kernel's float32 evaluation (Horner in u)."""
    x = np.clip(x.astype(np.float32), np.float32(-CLAMP), np.float32(CLAMP))
    u = x * x * np.float32(1 / CLAMP ** 2)
    P, Q = np.float32(p[-1]), np.float32(q[-1])
    for a in p[-2::-1]:
        P = P * u + np.float32(a)
    for a in q[-2::-1]:
        Q = Q * u + np.float32(a)
    return x * P / Q


if __name__ == "__main__":
    p, q = fit()
    print("P:", ", ".join(f"{a:.8g}" for a in p))
    print("Q:", ", ".join(f"{a:.8g}" for a in q))
    x = np.linspace(-12, 12, 4000001).astype(np.float32)
    err = np.abs(evaluate32(x, p, q) - np.tanh(x.astype(np.float64))).max()
    print(f"largest error of the float32 evaluation on [-12, 12]: {err:.2g}")
