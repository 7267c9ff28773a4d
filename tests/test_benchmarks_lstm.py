"""benchmarks/lstm.py checks its models before timing them; here only those checks
run (one batch of 2 sentences). No timing is ever asserted."""
import numpy as np

from benchmarks import lstm


def test_tagger_checks_pass():
    lstm.check(lstm.batches_of(2, 1, seed=3)[0])     # numpy vs cpu; PyTorch vs ours if importable


def test_tagger_check_catches_a_wrong_lstm_kernel(monkeypatch):
    import pytest
    from sparsebp import kernels
    K = kernels.get("cpu")
    right = K.lstm_backward

    def wrong(dZ, dW_hh, *args):
        right(dZ, dW_hh, *args)
        dW_hh *= 1.01
    monkeypatch.setattr(K, "lstm_backward", wrong)
    with pytest.raises(AssertionError, match="gradients differ"):
        lstm.check(lstm.batches_of(2, 1, seed=3)[0])


def test_clean_env_has_one_thread_and_no_openblas_overrides(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    env = lstm.clean_env()
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert all(env[v] == "1" for v in lstm.THREAD_VARS)


def test_targets_from_rows():
    rows = []
    for B in (1, 32):
        for impl, step, lb in (("dense", 100.0, 40.0), ("topk", 10.0, 1.0), ("unified", 20.0, 4.0),
                               ("pytorch", 60.0, np.nan)):
            rows.append(dict(B=B, impl=impl, step_us=step, forward_us=8.0, lstm_backward_us=lb))
    t = {r["target"]: r for r in lstm.targets(rows)}
    assert t["LSTM backward: dense / topk, 1 sentence, k = 5"]["got"] == 40.0
    assert t["LSTM backward: dense / topk, 1 sentence, k = 5"]["met"] is True
    assert t["PyTorch step / topk step, B = 1"]["got"] == 6.0
    assert t["PyTorch step / unified step, B = 32"]["met"] is True        # 3.0 >= 2
    assert t["unified step / our forward, B = 1"]["met"] is False         # 2.5 > 2
