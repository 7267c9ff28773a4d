"""benchmarks/run.py validates every implementation before timing it; here only that
validation runs, at tiny sizes. No timing is ever asserted."""
import numpy as np
import pytest

from benchmarks import ladder, sections


@pytest.mark.parametrize("B,n,k", [(1, 7, 1), (3, 13, 4), (5, 40, 40), (6, 64, 5)])
def test_topk_validation_passes(B, n, k):
    dy = np.random.default_rng(n).standard_normal((B, n)).astype(np.float32)
    sections.validate_topk(dy, k)


@pytest.mark.parametrize("B,n,k", [(1, 9, 2), (4, 17, 5), (6, 32, 32)])
def test_layer_validation_passes_on_one_thread_and_threaded(B, n, k):
    dy, x, W = sections.layer_case(np.random.default_rng(B + n), B, n)
    sections.validate_layer(dy, x, W, k)
    sections.threaded(lambda: sections.validate_layer(dy, x, W, k))()


def test_layer_validation_catches_a_wrong_kernel(monkeypatch):
    dy, x, W = sections.layer_case(np.random.default_rng(0), 4, 12)

    def wrong(dx, dW, dy, x, W, idx):             # the reference, then one entry off
        sections.R.unified_backward(dx, dW, dy, x, W, idx)
        dx[0, 0] += 1.0
    monkeypatch.setattr(sections.C, "unified_backward", wrong)
    with pytest.raises(AssertionError, match="unified dx"):
        sections.validate_layer(dy, x, W, 3)


@pytest.mark.parametrize("mode", ["dense", "topk", "unified"])
def test_mlp_step_validation_passes(mode):
    rng = np.random.default_rng(1)
    x, y = rng.random((3, 784), dtype=np.float32), np.array([1, 7, 3])
    sections.validate_mlp(mode, x, y)


@pytest.mark.parametrize("mode", ["dense", "unified"])
def test_torch_peer_validation_passes(mode):
    pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, y = rng.random((3, 784), dtype=np.float32), np.array([0, 9, 4])
    sections.validate_torch(mode, x, y)


def test_cost_model_numbers():
    c = sections.cost_model()
    assert (c["forward_mflop"], c["dense_backward_mflop"]) == (1.294, 1.804)
    assert round(c["meprop_backward_mflop"], 3) == 0.091
    assert c["weights"] == 648_010 and c["unified_weights_selected_bias"] == 30_730
    assert c["unified_weights_sparsebp"] == 31_690


def test_targets_table_from_results():
    cell = dict(B=50, n=500, k=20, dense_us=100.0, topk_speedup=2.0, unified_speedup=11.0, unified_vs_ref=1.2,
                judged=True)
    res = {"layer": [cell, dict(cell, n=4000, k=10, B=32, unified_speedup=120.0, topk_speedup=0.5,
                                judged=False)],
           "topk": [dict(B=50, n=500, k=20, rows_us=70.0)], "mlp": [], "torch": None, "judged": True}
    rows = {r["target"]: r for r in sections.targets(res)}
    assert rows["layer n=500 k=20 B=50: topk vs dense"]["got"] == "2.0x"
    assert rows["layer n=500 k=20 B=50: topk vs dense"]["met"] == "NO"
    assert rows["layer n=500 k=20 B=50: unified vs dense"]["met"] == "yes"
    assert rows["layer n>=2000 k=10 B<=32: unified vs dense"]["met"] == "not judged (yes)"
    assert rows["layer, k/n <= 2%: topk vs dense, every cell"]["met"] == "not judged (NO)"
    assert rows["per-example top-k of a 50x500 dy, k=20"]["met"] == "NO"


@pytest.mark.parametrize("B,n,k", [(1, 9, 2), (5, 17, 17)])
def test_ladder_validation_passes(B, n, k):
    dy, x, W = sections.layer_case(np.random.default_rng(B * n), B, n)
    ladder.validate_ladder(dy, x, W, k)


def test_ladder_validation_catches_a_wrong_rung(monkeypatch):
    dy, x, W = sections.layer_case(np.random.default_rng(1), 3, 12)

    def wrong(idx, dy, k):                      # the reference's selection, shifted by one
        sections.R.topk_rows(idx, dy, k)
        idx[0, 0] = (idx[0, 0] + 1) % dy.shape[1]
    monkeypatch.setitem(ladder.RUNGS, "simple", type("Wrong", (), {"topk_rows": staticmethod(wrong)}))
    with pytest.raises(AssertionError, match="simple topk_rows differs"):
        ladder.validate_ladder(dy, x, W, 3)


def test_ladder_bench_rows(monkeypatch):
    fake = lambda fns: {name: 2.0 if "simple" in name else 1.0 for name in fns}  # noqa: E731
    rows = ladder.bench_ladder(fake, Bs=(2,), ns=(16,), ks=(3,))
    assert rows[0]["topk_rows_speedup"] == 2.0 and rows[0]["unified_backward_tuned_us"] == 1.0


@pytest.mark.parametrize("mode", ["dense", "topk"])
def test_parser_step_validation_passes(tmp_path, mode):
    import shutil
    from benchmarks import parse as bp
    from sparsebp.tasks import parse as P
    from sparsebp.train import Config
    tiny = __file__.replace("test_benchmarks.py", "data/tiny.conllu")
    for split in ("train", "dev", "test"):
        shutil.copy(tiny, tmp_path / f"{split}.conllu")
    tb = P.load(Config(task="parse", data=str(tmp_path)))
    x, y = P.batch(tb, np.arange(7))
    bp.validate_step(tb, mode, x, y, hidden=24, k=5, embed=6)
    if bp.torch is not None:
        bp.validate_torch(tb, x, y)
