"""The command line fails clearly and never loses a run: one line for every
error (no traceback), checkpoints never replaced by accident, Ctrl-C and a full
disk say where the last complete checkpoint is; flags mean what they say."""
import errno
import json
import os
import shlex

import numpy as np
import pytest

import sparsebp as sb
from sparsebp import checkpoint, cli
from sparsebp import train as T
from sparsebp.tasks import mnist as mnist_task
from test_data import write_set


@pytest.fixture
def tiny(tmp_path):
    """A 60-image MNIST-layout set (10 dev, 50 train) and the flags of a quick
    run on it (numpy backend: nothing to compile)."""
    d = tmp_path / "data"
    d.mkdir()
    write_set(d, n_train=60, n_test=10)
    return ["train", "mnist", "--data", str(d), "--dev-size", "10", "--hidden", "8", "--k", "2",
            "--backend", "numpy", "--no-progress", "--out", str(tmp_path / "r.json")]


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_existing_checkpoint_is_not_replaced_without_resume(tiny, tmp_path, capsys):
    ck = str(tmp_path / "ck")
    assert cli.main([*tiny, "--epochs", "2", "--checkpoint", ck]) == 0
    before = (tmp_path / "ck" / checkpoint.FILE).read_bytes()
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", ck]) == 1
    line = _one_line_error(capsys)
    assert f"--checkpoint {ck} already holds a checkpoint after epoch 2" in line
    assert "--resume" in line and "--overwrite-checkpoint" in line
    assert (tmp_path / "ck" / checkpoint.FILE).read_bytes() == before
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", ck, "--overwrite-checkpoint"]) == 0
    assert checkpoint.epochs_done(ck) == 1
    assert cli.main([*tiny, "--epochs", "3", "--checkpoint", ck, "--resume"]) == 0
    assert checkpoint.epochs_done(ck) == 3


def test_run_refuses_to_replace_a_checkpoint_from_python_too(tiny, tmp_path):
    data = mnist_task.load(T.Config(data=tiny[3], extra={"dev_size": 10}))
    quiet = dict(progress=False, log=lambda s: None)
    T.run(T.Config(hidden=8, k=2, epochs=1, backend="numpy"), data, ckpt_dir=str(tmp_path / "c"), **quiet)
    with pytest.raises(ValueError, match="already holds a checkpoint after epoch 1"):
        T.run(T.Config(hidden=8, k=2, epochs=1, backend="numpy"), data, ckpt_dir=str(tmp_path / "c"), **quiet)


@pytest.mark.parametrize("flag,where,msg", [
    ("--out", "a_dir", "is a directory; give a file name"),
    ("--out", "a_file/r.json", "cannot write in"),
    ("--checkpoint", "a_file", "is a file, not a directory"),
    ("--checkpoint", "a_file/ck", "cannot write in"),
])
def test_out_and_checkpoint_are_checked_before_any_work(tiny, tmp_path, capsys, monkeypatch, flag, where, msg):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")

    def no_loading(cfg):
        raise AssertionError("the data was loaded before the targets were checked")
    monkeypatch.setattr(mnist_task, "load", no_loading)
    assert cli.main([*tiny, flag, str(tmp_path / where)]) == 1
    line = _one_line_error(capsys)
    assert f"{flag} {tmp_path / where}" in line and msg in line
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out_dir(tiny, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(0o500)
    assert cli.main([*tiny, "--out", str(ro / "r.json")]) == 1
    assert "cannot write in" in _one_line_error(capsys)


@pytest.mark.parametrize("damage,msg", [
    (lambda raw: raw[:len(raw) // 2], "damaged or cut short"),
    (lambda raw: b"", "empty file"),
    (lambda raw: raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:], "damaged"),
    (lambda raw: b"not a checkpoint\n", "not an .npz file"),
])
def test_damaged_checkpoint_is_one_line_naming_it(tiny, tmp_path, capsys, damage, msg):
    ck = tmp_path / "ck"
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", str(ck)]) == 0
    path = ck / checkpoint.FILE
    path.write_bytes(damage(path.read_bytes()))
    capsys.readouterr()
    assert cli.main([*tiny, "--epochs", "2", "--checkpoint", str(ck), "--resume"]) == 1
    line = _one_line_error(capsys)
    assert str(path) in line and msg in line


def test_foreign_and_pickled_checkpoints_are_refused(tiny, tmp_path, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    np.savez(ck / checkpoint.FILE, weights=np.zeros(3))            # someone else's .npz
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", str(ck), "--resume"]) == 1
    assert "not a sparsebp checkpoint" in _one_line_error(capsys)
    np.savez(ck / checkpoint.FILE, results=np.array([{"epochs": []}], dtype=object))
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", str(ck), "--resume"]) == 1
    assert "holds pickled Python objects, which sparsebp never loads" in _one_line_error(capsys)
    # and an unreadable file is not replaced silently either
    assert cli.main([*tiny, "--epochs", "1", "--checkpoint", str(ck)]) == 1
    assert "already holds a file that is not a readable checkpoint" in _one_line_error(capsys)


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tiny, tmp_path, capsys, monkeypatch):
    ck = str(tmp_path / "ck")
    real, calls = T.train_epoch, []

    def interrupted_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(T, "train_epoch", interrupted_in_epoch_2)
    assert cli.main([*tiny, "--epochs", "3", "--checkpoint", ck]) == 130
    line = _one_line_error(capsys)
    assert f"after epoch 1, is {os.path.join(ck, checkpoint.FILE)}" in line
    cmd = line.split("resume with: ", 1)[1]
    assert cmd.startswith("sparsebp train mnist") and cmd.endswith("--resume")
    assert os.listdir(ck) == [checkpoint.FILE]
    monkeypatch.setattr(T, "train_epoch", real)
    assert cli.main(shlex.split(cmd)[1:]) == 0                     # the printed command works
    assert checkpoint.epochs_done(ck) == 3


def test_ctrl_c_without_checkpoint(tiny, capsys, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(T, "train_epoch", interrupt)
    assert cli.main(tiny) == 130
    assert "no --checkpoint DIR was given" in _one_line_error(capsys)


def test_full_disk_is_one_line_and_the_last_checkpoint_survives(tiny, tmp_path, capsys, monkeypatch):
    ck = tmp_path / "ck"
    real, calls = os.fsync, []

    def full_after_epoch_1(fd):                 # epoch 1: results, checkpoint; then the disk is full
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", full_after_epoch_1)
    assert cli.main([*tiny, "--epochs", "2", "--checkpoint", str(ck)]) == 1
    line = _one_line_error(capsys)
    assert f"could not write {tmp_path / 'r.json'} (" in line and " bytes): No space left on device" in line
    assert f"after epoch 1, is {ck / checkpoint.FILE} (intact)" in line
    assert os.listdir(ck) == [checkpoint.FILE] and checkpoint.epochs_done(ck) == 1
    assert sorted(os.listdir(tmp_path)) == ["ck", "data", "r.json"]     # no temporary file


def _results(path, epochs):
    r = {"config": {"mode": "dense", "k": 2, "optimizer": "adam", "batch_size": 10, "dropout": 0, "seed": 1},
         "epochs": [{"epoch": 1, "forward_s": 1.0, "linear_backward_s": 0.0, "update_s": 1.0,
                     "rows_frac": 1.0}] * epochs,
         "best": {"epoch": 1, "dev_acc": 0.5, "test_acc": 0.5} if epochs else None}
    path.write_text(json.dumps(r))


@pytest.mark.parametrize("make,msg", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("{not json"), "not a JSON file"),
    (lambda p: p.write_text("{}"), "not a sparsebp results file"),
    (lambda p: p.write_text("[1, 2]"), "not a sparsebp results file"),
    (lambda p: _results(p, 0), "no finished epoch yet"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00"), "not a JSON file"),
])
def test_report_names_the_bad_file(tmp_path, capsys, make, msg):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    _results(good, 1)
    make(bad)
    assert cli.main(["report", str(good), str(bad)]) == 1
    assert _one_line_error(capsys).startswith(f"sparsebp: error: {bad}: {msg}")


def test_report_of_a_zero_backward_time(tmp_path, capsys):
    _results(tmp_path / "a.json", 1)            # 0 s of backward: no division by zero
    assert cli.main(["report", str(tmp_path / "a.json")]) == 0


@pytest.mark.parametrize("flag", ["--lr", "--clip", "--dropout"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e999"])
def test_non_finite_floats_are_refused(tiny, flag, value, capsys):
    with pytest.raises(SystemExit) as e:                       # = : "-inf" is not an option
        cli.main([*tiny, "--epochs", "1", f"{flag}={value}"])  # (tiny: quick if it were accepted)
    assert e.value.code == 2
    assert f"argument {flag}: must be a finite number, got '{value}'" in capsys.readouterr().err


def test_help_shows_every_default_by_one_rule(capsys):
    parser = cli._parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    mnist = train._subparsers._group_actions[0].choices["mnist"]
    formatter = cli._Help("sparsebp")
    for action in mnist._actions:
        if not action.option_strings or action.dest == "help":
            continue
        text = formatter._get_help_string(action) % vars(action)
        flag = action.option_strings[0]
        if action.default is False:                                     # a switch: off unless given
            assert "default" not in text, flag
        else:
            assert text.count("(default: ") == 1, (flag, text)
    for flag in ("--epochs", "--batch-size", "--mode", "--optimizer", "--seed", "--dropout"):
        assert any(a.help for a in mnist._actions if flag in a.option_strings), flag


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"sparsebp {sb.__version__}"


def test_unexpected_errors_are_one_line_too(tiny, capsys, monkeypatch):
    def broken(cfg):
        raise KeyError("surprise")
    monkeypatch.setattr(mnist_task, "load", broken)
    assert cli.main(tiny) == 1
    assert "unexpected error KeyError: 'surprise'" in _one_line_error(capsys)
    with pytest.raises(KeyError):
        cli.main(["--traceback", *tiny])


def test_dev_size_and_classes_flags(tiny, tmp_path, capsys):
    i = tiny.index("--dev-size")
    assert cli.main(tiny[:i] + tiny[i + 2:]) == 1                  # the default 5,000 > 60 images
    line = _one_line_error(capsys)
    assert "(--dev-size) must be in [1, 59] for the 60 training images" in line
    assert "e.g. --dev-size 6" in line
    assert cli.main([*tiny, "--epochs", "1"]) == 0
    assert "50 train / 10 dev / 10 test, 10 classes" in capsys.readouterr().out
    write_set(tmp_path / "data", n_train=60, n_test=10,
              train_labels=np.r_[np.arange(59) % 10, 200].astype(np.uint8))
    assert cli.main([*tiny, "--epochs", "1"]) == 1
    line = _one_line_error(capsys)
    assert "train-labels-idx1-ubyte.gz: label 200 at index 59 is not in [0, 10)" in line
    assert "--classes" in line
    assert cli.main([*tiny, "--epochs", "1", "--classes", "201"]) == 0
    assert "201 classes" in capsys.readouterr().out


def test_every_float_flag_of_every_task_is_checked_for_finiteness():
    from sparsebp import tasks
    train = cli._parser()._subparsers._group_actions[0].choices["train"]
    for name in tasks.TASKS:
        sub = train._subparsers._group_actions[0].choices[name]
        floats = [a for a in sub._actions if a.type in (float, cli.finite_float)]
        assert floats and all(a.type is cli.finite_float for a in floats), name



def test_sweep_error_is_one_line(capsys):
    assert cli.main(["sweep", "mnist", "--out", "/proc/no/such/dir", "--seeds", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("sparsebp sweep: error:")


def test_plot_of_an_unreadable_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["plot", "time", str(tmp_path / "missing.json"), "--out", str(tmp_path / "t.png")])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
