"""A/B of two source trees, in-process: CPU per request of one scenario, the two trees' runs
interleaved in small batches so that this machine's drift (its speed moves by ±20 % over minutes)
falls on both alike.

Each tree gets its own process running ``bench/wsgi_cpu.py --batches`` (this checkout's script,
with the tree first on ``PYTHONPATH``, so ``idp`` and the ``idp`` CLI's setup come from the tree)
and its own throwaway hub and database. The batches alternate A, B, B, A, A, B, ...; the report
gives each side's median CPU per request and the median of the paired ratios B/A, with the spread
of the ratios: a change smaller than that spread is not shown by one run.

    git worktree add /tmp/base HEAD~1
    .venv/bin/python bench/ab.py /tmp/base . --postgres --scenario sso_round_trip
    .venv/bin/python bench/ab.py /tmp/base . --postgres --scenario userinfo --batches 40 -n 500

Compare a tree with itself (``bench/ab.py . .``) to see the noise floor of the moment.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("discovery", "jwks", "client_credentials", "userinfo", "introspect", "sso_round_trip")


def _start(tree: Path, scenario: str, postgres: bool) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])))
    argv = [sys.executable, str(HERE / "wsgi_cpu.py"), "--batches", "--scenario", scenario]
    proc = subprocess.Popen(argv + (["--postgres"] if postgres else []), cwd=str(tree), env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc


def _ready(proc: subprocess.Popen, tree: Path) -> None:
    for line in proc.stdout:
        if line.strip() == "ready":
            return
    raise SystemExit(f"ab: the run on {tree} stopped before it was ready:\n{proc.stderr.read()[-2000:]}")


def _batch(proc: subprocess.Popen, n: int) -> dict:
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"ab: a run stopped mid-way:\n{proc.stderr.read()[-2000:]}")
    return json.loads(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="the base tree (e.g. a git worktree of the older commit)")
    ap.add_argument("b", type=Path, help="the tree to compare with it")
    ap.add_argument("--scenario", choices=SCENARIOS, default="sso_round_trip")
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL per side (default: SQLite)")
    ap.add_argument("--batches", type=int, default=30, help="batches per side (default 30)")
    ap.add_argument("-n", type=int, default=None, help="requests per batch (default: 100, 1000 for one request)")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.scenario == "sso_round_trip" else 1000)
    trees = [args.a.resolve(), args.b.resolve()]
    for tree in trees:
        if not (tree / "idp" / "__init__.py").is_file():
            raise SystemExit(f"ab: {tree} is not a source tree of idp (no idp/__init__.py)")
    print(f"setting up two hubs ({'PostgreSQL' if args.postgres else 'SQLite'}) ...", file=sys.stderr, flush=True)
    procs = [_start(tree, args.scenario, args.postgres) for tree in trees]
    try:
        for proc, tree in zip(procs, trees):
            _ready(proc, tree)
        results: list[list[dict]] = [[], []]
        for b in range(args.batches):
            order = (0, 1) if b % 2 == 0 else (1, 0)
            for side in order:
                results[side].append(_batch(procs[side], n))
            if (b + 1) % 10 == 0:
                print(f"  {b + 1}/{args.batches} batches", file=sys.stderr, flush=True)
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    _report(args.scenario, trees, results, n)
    return 0


def _report(scenario: str, trees: list[Path], results: list[list[dict]], n: int) -> None:
    keys = list(results[0][0])
    print(f"{scenario}: CPU ms per request at the WSGI entry, {len(results[0])} batches of {n} per side, "
          "median per side")
    for label, tree, rows in zip("AB", trees, results):
        figures = "  ".join(f"{k} {statistics.median(r[k] for r in rows):.3f}" for k in keys)
        print(f"  {label} {tree}: {figures}")
    for k in keys:
        ratios = sorted(b[k] / a[k] for a, b in zip(*results))
        q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
        print(f"  B/A {k}: median {statistics.median(ratios):.3f} (middle half {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    sys.exit(main())
