"""`sparsebp plot`: every figure written from results files; a clear message without matplotlib."""
import json

import pytest

from sparsebp import cli, plot


def _result(mode, k, hidden, seed, test, optimizer="adam", epochs=3):
    per = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "dev_acc": 0.9 + 0.01 * e, "test_acc": test / 100,
            "forward_s": 1.0, "backward_s": 2.0, "linear_backward_s": 1.5, "update_s": 0.5,
            "rows_frac": 0.1} for e in range(epochs)]
    return {"config": {"mode": mode, "k": k, "hidden": hidden, "seed": seed, "epochs": epochs,
                       "optimizer": optimizer},
            "epochs": per, "best": {"epoch": epochs, "dev_acc": 0.92, "test_acc": test / 100}}


@pytest.fixture
def results_dir(tmp_path):
    runs = [_result("dense", 20, 500, s, 97.5 + 0.1 * s) for s in (1, 2)]
    runs += [_result("dense", 20, h, 1, 95.0) for h in (20, 40)]
    runs += [_result(m, k, 500, s, 97.0 + 0.01 * k) for m in ("topk", "random") for k in (5, 20, 40) for s in (1, 2)]
    for i, r in enumerate(runs):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    return tmp_path


@pytest.mark.parametrize("figure", plot.FIGURES)
def test_each_figure_is_written(results_dir, tmp_path, figure, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"{figure}.png"
    assert cli.main(["plot", figure, str(results_dir), "--out", str(out), "--title", "t"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    assert f"wrote {out}" in capsys.readouterr().out


def test_missing_matplotlib_is_a_clear_message(results_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plot, "_pyplot", lambda: None)
    out = tmp_path / "k.png"
    assert cli.main(["plot", "k", str(results_dir), "--out", str(out)]) == 1
    assert "needs matplotlib: pip install 'sparsebp[plot]'" in capsys.readouterr().err
    assert not out.exists()


def test_no_results_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["plot", "k", str(tmp_path), "--out", str(tmp_path / "k.png")])
    assert "no results" in capsys.readouterr().err
