"""The README's Python snippets run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no python snippet"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    assert "rows of W updated" in capsys.readouterr().out


def test_readme_quickstart_matches_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    quick = re.search(r"## Quickstart\n\n```\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert len(quick) == 2, "the quickstart is exactly two commands"
    assert quick[1] in ci, ".ci/run must run the README's test command"
