"""The whole tree passes pyflakes (through ruff, configured in pyproject.toml): no unused import or
variable, no undefined name, no import shadowed before use. An undefined name in a rarely taken
branch (an error path, say) is a 500 waiting for its first visitor; this finds it before one does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_passes_pyflakes():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def test_the_check_finds_an_undefined_name(tmp_path):
    """The gate itself works: a module using a name it never defined fails it."""
    bad = tmp_path / "bad.py"
    bad.write_text("def handler():\n    return jsonify({})\n")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F",
                        "--output-format", "concise", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1 and "F821" in r.stdout and "jsonify" in r.stdout
