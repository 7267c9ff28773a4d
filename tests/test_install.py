"""What an install contains: every package folder, kernels under our own name,
the vendored MNIST; and an installed sparsebp trains from any directory."""
import configparser
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _packages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg, [p.strip() for p in cfg["options"]["packages"].replace("\n", ",").split(",") if p.strip()]


def test_setup_cfg_lists_every_package_folder():
    _, listed = _packages()
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sparsebp").rglob("__init__.py")}
    assert on_disk | {"sparsebp.kernels", "sparsebp.data.mnist_files"} == set(listed)


def test_kernels_install_under_sparsebp_not_the_bare_name():
    cfg, listed = _packages()
    assert not any(p == "kernels" or p.startswith("kernels.") for p in listed)
    assert cfg["options"]["package_dir"].split("=")[0].strip() == "sparsebp.kernels"
    import sparsebp.kernels as K
    assert Path(K.__file__).resolve().parent.name == "kernels"


def test_mnist_installs_inside_the_package():
    cfg, listed = _packages()
    dirs = dict(line.split("=") for line in cfg["options"]["package_dir"].strip().splitlines())
    assert {k.strip(): v.strip() for k, v in dirs.items()}["sparsebp.data.mnist_files"] == "data/mnist"
    assert "*.gz" in cfg["options.package_data"]["sparsebp.data.mnist_files"]


def _copy_source(dst):
    """What `pip install .` reads, copied away from this checkout (a build writes
    build/ and *.egg-info into its source folder)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    for name in ("sparsebp", "kernels", "data/mnist"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)


def test_installed_package_trains_from_another_directory(tmp_path):
    """A real, non-editable install (`pip install --target`), run by its console
    script from a directory that holds no data: the vendored MNIST is found in
    the install and sha256-checked. The numpy backend: nothing to JIT-compile."""
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    src.mkdir(), elsewhere.mkdir()
    _copy_source(src)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SPARSEBP_MNIST", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    argv = [str(site / "bin" / "sparsebp"), "train", "mnist", "--backend", "numpy", "--limit", "50",
            "--epochs", "1", "--hidden", "8", "--k", "2", "--no-progress", "--out", "r.json"]
    run = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "50 train / 5000 dev / 10000 test, 10 classes" in run.stdout
    assert (elsewhere / "r.json").is_file()
    where = subprocess.run([sys.executable, "-c", "import sparsebp.data as d; print(d.default_mnist_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()) == site / "sparsebp" / "data" / "mnist_files"
    # the installed copy is still checked: one changed test label is caught
    labels = site / "sparsebp" / "data" / "mnist_files" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    run = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 1 and "t10k-labels-idx1-ubyte.gz: sha256 mismatch" in run.stderr
    assert "Traceback" not in run.stderr
