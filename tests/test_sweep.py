"""`sparsebp sweep` and `sparsebp report --group`: the grid, resuming, the summary's math."""
import argparse
import json
import os

import numpy as np
import pytest

from sparsebp import cli, sweep


def test_parse_seeds():
    assert sweep.parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert sweep.parse_seeds("1,3,7") == [1, 3, 7]
    assert sweep.parse_seeds("2") == [2]
    assert sweep.parse_seeds("1-2,9") == [1, 2, 9]
    with pytest.raises(argparse.ArgumentTypeError):
        sweep.parse_seeds("a-b")


def test_grid_is_the_product_over_seeds_and_dense_ignores_k():
    grid = {"mode": ["dense", "topk"], "k": [5, 10]}
    out = sweep.runs(grid, [1, 2], ["--epochs", "3", "--paper"])
    names = [n for n, _ in out]
    assert names == ["modedense-epochs3paper-seed1", "modedense-epochs3paper-seed2",
                     "modetopk-k5-epochs3paper-seed1", "modetopk-k5-epochs3paper-seed2",
                     "modetopk-k10-epochs3paper-seed1", "modetopk-k10-epochs3paper-seed2"]
    assert dict(out)["modetopk-k10-epochs3paper-seed2"] == [
        "--mode", "topk", "--k", "10", "--epochs", "3", "--paper", "--seed", "2"]


def test_children_compute_on_one_thread(tmp_path, monkeypatch):
    seen = {}

    def fake_call(cmd, stdout, stderr, env):
        seen.update(cmd=cmd, env=env)
        return 0
    monkeypatch.setattr(sweep.subprocess, "call", fake_call)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert sweep._train("mnist", "x", ["--k", "3"], str(tmp_path))[:2] == ("x", 0)
    for var in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert seen["env"][var] == "1"
    assert seen["cmd"][-2:] == ["--out", str(tmp_path / "x.json")] and "--no-progress" in seen["cmd"]


def _fake_result(mode, seed, test, dev, backward, rows, epochs=2, k=20):
    per = [{"epoch": e + 1, "train_loss": 1.0, "dev_acc": dev / 100 - 0.01 * (e != 1),
            "test_acc": test / 100, "forward_s": 1.0, "backward_s": 1.0, "update_s": 1.0,
            "linear_backward_s": backward / epochs, "rows_frac": rows / 100} for e in range(epochs)]
    return {"config": {"mode": mode, "k": k, "seed": seed, "epochs": epochs, "optimizer": "adam"},
            "epochs": per, "best": {"epoch": 2, "dev_acc": dev / 100, "test_acc": test / 100}}


def test_summary_is_mean_and_std_over_seeds():
    runs = [_fake_result("dense", 1, 97.0, 98.0, 10.0, 100), _fake_result("dense", 2, 98.0, 98.5, 12.0, 100),
            _fake_result("topk", 1, 98.5, 99.0, 3.0, 10), _fake_result("topk", 2, 97.5, 98.0, 5.0, 20),
            _fake_result("topk", 3, 98.0, 98.0, 4.0, 15)]
    lines = sweep.summarize(runs).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| dense | 2 | 2.0 | 98.25 ± 0.25 | 97.50 ± 0.50 | 11.0 ± 1.0 | 100.0 ± 0.0 |"
    std = np.std([98.5, 97.5, 98.0])
    assert lines[3] == (f"| topk, k=20 | 3 | 2.0 | 98.33 ± {np.std([99, 98, 98]):.2f} | "
                        f"98.00 ± {std:.2f} | 4.0 ± {np.std([3, 5, 4]):.1f} | 15.0 ± {np.std([10, 20, 15]):.1f} |")


def test_report_group_reads_files_and_directories(tmp_path, capsys):
    for i, r in enumerate([_fake_result("topk", 1, 98.0, 98.0, 3.0, 10),
                           _fake_result("topk", 2, 97.0, 98.0, 3.0, 10)]):
        (tmp_path / f"{i}.json").write_text(json.dumps(r))
    assert cli.main(["report", "--group", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| all | 2 | 2.0 | 98.00 ± 0.00 | 97.50 ± 0.50 | 3.0 ± 0.0 | 10.0 ± 0.0 |"


def test_report_group_ignores_the_thread_count():
    """Runs that differ only in how many threads ran them (or in a config written
    before --threads existed) are one configuration: threads change time, not numbers."""
    a, b, c = (_fake_result("topk", s, 98.0, 98.0, 3.0, 10) for s in (1, 2, 3))
    a["config"]["threads"], b["config"]["threads"] = 0, 1
    c["config"].pop("threads", None)
    other = _fake_result("topk", 4, 98.0, 98.0, 3.0, 10)
    other["config"]["dropout"] = 0.5
    assert [len(rs) for _, rs in sweep.group([a, b, c, other])] == [3, 1]


@pytest.mark.slow
def test_sweep_trains_the_grid_and_resumes_without_redoing(tmp_path, capsys):
    argv = ["sweep", "mnist", "--mode", "dense", "topk", "--k", "4", "--seeds", "2", "--out", str(tmp_path),
            "--hidden", "8", "--limit", "200", "--epochs", "1"]
    assert cli.main(argv) == 0
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".json"))
    assert files == ["modedense-hidden8-limit200epochs1-seed2.json", "modetopk-k4-hidden8-limit200epochs1-seed2.json"]
    r = json.loads((tmp_path / files[1]).read_text())
    assert r["config"]["seed"] == 2 and r["config"]["k"] == 4 and r["config"]["hidden"] == 8
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert len(summary) == 4 and summary[2].startswith("| dense | 1 |") and summary[3].startswith("| topk, k=4 | 1 |")
    mtimes = {f: os.path.getmtime(tmp_path / f) for f in files}
    # an interrupted run: its file has fewer epochs than its config asks for
    r["epochs"], r["config"]["epochs"] = [], 1
    (tmp_path / files[1]).write_text(json.dumps(r))
    capsys.readouterr()
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 already complete, 1 to train" in out
    assert os.path.getmtime(tmp_path / files[0]) == mtimes[files[0]]
    assert len(json.loads((tmp_path / files[1]).read_text())["epochs"]) == 1


def test_sweep_rejects_flags_it_sets(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "mnist", "--out", str(tmp_path / "x"), "--seed", "3"])
    assert "--seed is set by the sweep" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
