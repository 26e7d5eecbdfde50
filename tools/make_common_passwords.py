"""Build idp/data/common-passwords.txt from two well-known lists published on PyPI.

- Django (BSD-3-Clause): django/contrib/auth/common-passwords.txt.gz, Royce Williams' list of
  20,000 common passwords (the list Django's CommonPasswordValidator uses);
- zxcvbn (MIT): the "passwords" frequency list of zxcvbn 4.x (30,000 most common passwords).

Run from the repository root: ``.venv/bin/python tools/make_common_passwords.py``. It downloads
the two wheels with pip (no other network access), merges the lists (lower-cased, 4+ characters,
one per line, sorted) and rewrites the data file. The hub itself never downloads anything.
"""
from __future__ import annotations

import ast
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "idp" / "data" / "common-passwords.txt"
PACKAGES = {"django": "Django==5.2.*", "zxcvbn": "zxcvbn==4.5.0"}


def wheel(folder: Path, spec: str) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(folder), spec], check=True)
    name = spec.split("=")[0].lower()
    [path] = [p for p in folder.glob("*.whl") if p.name.lower().startswith(name)]
    return zipfile.ZipFile(path)


def django_list(z: zipfile.ZipFile) -> list[str]:
    return gzip.decompress(z.read("django/contrib/auth/common-passwords.txt.gz")).decode().splitlines()


def zxcvbn_list(z: zipfile.ZipFile) -> list[str]:
    tree = ast.parse(z.read("zxcvbn/frequency_lists.py").decode())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "passwords":
                    # "a,b,c".split(","): a call, so read the string constant inside it
                    return max((n.value for n in ast.walk(value) if isinstance(n, ast.Constant)
                                and isinstance(n.value, str)), key=len).split(",")
    raise SystemExit("no 'passwords' list in zxcvbn/frequency_lists.py")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        words = django_list(wheel(folder, PACKAGES["django"])) + zxcvbn_list(wheel(folder, PACKAGES["zxcvbn"]))
    merged = sorted({w.strip().lower() for w in words if len(w.strip()) >= 4})
    OUT.write_text("\n".join(merged) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(merged)} passwords")


if __name__ == "__main__":
    main()
