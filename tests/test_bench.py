"""Thread control, the timing API and `sparsebp bench layer`: behaviour only, no timing
is asserted (a fake timer stands in for the clock where a grid runs)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sparsebp as sb
from sparsebp import bench, bench_layer
from sparsebp.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeTimer:
    """Calls each fn once (so validation and the calls run) and says 1 µs each."""
    spread = {}

    def __call__(self, fns):
        for fn in fns.values():
            fn()
        self.spread = {name: 0.0 for name in fns}
        return {name: 1.0 for name in fns}


def test_set_threads_and_threads():
    before = sb.threads()
    assert before["cores"] == os.cpu_count() and before["omp_wait_policy"]
    try:
        sb.set_threads(1)
        t = sb.threads()
        assert t["numba"] == 1 and t["blas"] in (1, None)
        sb.set_threads(numba=1)
        assert sb.threads()["numba"] == 1
    finally:
        sb.set_threads(blas=before["blas"] or 1, numba=before["numba"])


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=1.5), dict(blas=-1), dict(numba=10**6)])
def test_set_threads_rejects_bad_counts(kwargs):
    before = sb.threads()
    with pytest.raises(ValueError, match="set_threads"):
        sb.set_threads(**kwargs)
    assert sb.threads()["numba"] == before["numba"]


def test_from_weights_shares_the_arrays():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((6, 4)).astype(np.float32), np.ones(6, np.float32)
    a, c = sb.Linear.from_weights(W, b, k=2, mode="unified"), sb.Linear.from_weights(W, k=None)
    assert a.weight.data is W and c.weight.data is W and a.bias.data is b
    assert c.mode == "dense" and (c.bias.data == 0).all()
    W[0, 0] = 5.0
    assert a.weight.data[0, 0] == 5.0
    with pytest.raises(ValueError, match="contiguous"):
        sb.Linear.from_weights(W.T)
    with pytest.raises(ValueError, match="bias"):
        sb.Linear(4, 6, weight=W, bias=np.ones(5, np.float32))


def test_time_layer_gives_one_time_per_call():
    rng = np.random.default_rng(1)
    layer = sb.Linear(5, 7, k=3, mode="topk")
    x, dy = rng.standard_normal((2, 5)).astype(np.float32), rng.standard_normal((2, 7)).astype(np.float32)
    t = bench.time_layer(layer, x, dy, reps=4, warmup=1)
    assert t["forward_us"].shape == (4,) and t["backward_us"].shape == (4,)
    assert (t["forward_us"] > 0).all() and (t["backward_us"] > 0).all()
    assert layer.selected.shape == (2, 3)


def test_layer_grid_validates_every_mode_and_judges_load(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    rows = bench_layer.layer_grid([9, 40], [1, 33], [3, 50], ["dense", "topk", "unified", "random"],
                                  reference=True, timer=FakeTimer(), log=None)
    assert [(r["n"], r["B"], r["k"]) for r in rows] == [(9, 1, 3), (9, 33, 3), (40, 1, 3), (40, 33, 3)]
    r = rows[0]
    assert r["unified_speedup"] == 1.0 and r["topk_vs_ref"] == 1.0 and "dense_ref_us" not in r
    assert all(r["judged"] for r in rows)
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 0, 0))
    rows = bench_layer.layer_grid([9], [2], [3], ["dense"], timer=FakeTimer(), log=None)
    assert not rows[0]["judged"] and "load" in rows[0]["why"]
    assert "no (load)" in bench_layer.table(rows, ["dense"])


def test_layer_grid_catches_a_wrong_kernel(monkeypatch):
    from sparsebp import kernels
    C = kernels.get("cpu")
    real = C.unified_backward

    def wrong(dx, dW, dy, x, W, idx):
        real(dx, dW, dy, x, W, idx)
        dx[0, 0] += 1.0
    monkeypatch.setattr(C, "unified_backward", wrong)
    with pytest.raises(AssertionError, match="unified: dx"):
        bench_layer.layer_grid([12], [3], [4], ["unified"], timer=FakeTimer(), log=None)


def test_timer_reports_a_spread_per_implementation():
    t = bench.Timer(budget_s=0.001, batch_s=0.0001, min_rounds=3, max_rounds=3)
    out = t({"a": lambda: None, "b": lambda: None})
    assert set(out) == set(t.spread) == {"a", "b"}


def test_bench_cli_writes_json_with_threads_in_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "Timer", lambda budget_s, clock: FakeTimer())
    out = tmp_path / "g.json"
    assert main(["bench", "layer", "--n", "16", "--batch", "2", "--k", "4", "--threads", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["threads"] == 1 and res["config"]["n"] == [16]
    assert res["machine"]["blas_kernel"] is not None or res["machine"]["blas"] is None
    text = capsys.readouterr().out
    assert "machine:" in text and "| n | B | k |" in text
    assert "matplotlib" in text or "written" in text.splitlines()[-1]


def test_bench_cli_rejects_bad_sizes(capsys):
    assert main(["bench", "layer", "--n", "0"]) == 2
    assert "--n values must be >= 1" in capsys.readouterr().err
    assert main(["bench", "layer", "--clock", "cpu", "--threads", "2"]) == 2
    assert "--clock cpu needs --threads 1" in capsys.readouterr().err


def test_timer_cpu_clock():
    t = bench.Timer(budget_s=0.001, batch_s=0.0001, min_rounds=3, max_rounds=3, clock="cpu")
    assert set(t({"a": lambda: sum(range(100))})) == {"a"} and t.now is __import__("time").thread_time


def test_train_cli_has_threads_flag():
    from sparsebp.cli import _parser
    a = _parser().parse_args(["train", "mnist", "--threads", "1"])
    assert a.threads == 1


def test_native_blas_reexecutes_without_the_overrides():
    code = ("import os; from sparsebp import bench; bench.native_blas(); "
            "print(os.environ.get('OPENBLAS_CORETYPE'), os.environ.get('SPARSEBP_BLAS_UNSET'))")
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    env.pop("SPARSEBP_BLAS_UNSET", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", "OPENBLAS_CORETYPE=Haswell,OPENBLAS_L2_SIZE=512"]
