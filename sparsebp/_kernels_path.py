"""Where `sparsebp.kernels` comes from.

The kernels live in the repository's top-level `kernels/` folder (so a reader
finds them beside `sparsebp/`), but they import as `sparsebp.kernels`: the name
`kernels` alone belongs to another PyPI package. An install maps the folder
there (`package_dir` in setup.cfg); in a source checkout, `sparsebp/kernels`
does not exist, so the folder beside the package is loaded under that name.
"""
import importlib.util
import sys
from pathlib import Path


def _attach_kernels():
    name = f"{__package__}.kernels"
    here = Path(__file__).resolve().parent
    if name in sys.modules or (here / "kernels" / "__init__.py").exists():
        return                                       # installed: an ordinary subpackage
    src = here.parent / "kernels"
    if not (src / "__init__.py").exists():
        raise ImportError(f"sparsebp: no kernels package in {here} or {src}; reinstall sparsebp")
    spec = importlib.util.spec_from_file_location(name, src / "__init__.py",
                                                  submodule_search_locations=[str(src)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
