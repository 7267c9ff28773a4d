"""What an install contains: every package folder, kernels under our own name."""
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _packages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg, [p.strip() for p in cfg["options"]["packages"].replace("\n", ",").split(",") if p.strip()]


def test_setup_cfg_lists_every_package_folder():
    _, listed = _packages()
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sparsebp").rglob("__init__.py")}
    assert on_disk | {"sparsebp.kernels"} == set(listed)


def test_kernels_install_under_sparsebp_not_the_bare_name():
    cfg, listed = _packages()
    assert not any(p == "kernels" or p.startswith("kernels.") for p in listed)
    assert cfg["options"]["package_dir"].split("=")[0].strip() == "sparsebp.kernels"
    import sparsebp.kernels as K
    assert Path(K.__file__).resolve().parent.name == "kernels"
