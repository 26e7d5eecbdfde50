"""Compare two or more ``bench/run.py --json`` results scenario by scenario.

    .venv/bin/python bench/diff.py bench/results/before.json bench/results/after.json

For each scenario: the median req/s, and the median of req/s per server core (each run's req/s
divided by the server's CPU share in that run, 100% = one core). On a shared machine the second
figure moves much less with other load than the first: a server that got half a core in one run
and a whole core in the next serves about the same per core. The last column of each file is the
median CPU share every other process on the machine took during its runs.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def per_core(run: dict) -> float | None:
    cpu = run.get("server_cpu_pct")
    return run["rps"] / (cpu / 100) if cpu else None


def summary(result: dict) -> dict:
    out = {}
    for scenario, res in result.get("ours", {}).items():
        runs = [r for r in res.get("runs", []) if r.get("rps") is not None]
        if not runs:
            continue
        cores = [c for c in map(per_core, runs) if c]
        others = [r["other_cpu_pct"] for r in runs if r.get("other_cpu_pct") is not None]
        out[scenario] = (statistics.median(r["rps"] for r in runs), statistics.median(cores) if cores else None,
                         statistics.median(others) if others else None)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    files = [Path(a) for a in argv[1:]]
    results = [json.loads(f.read_text()) for f in files]
    sums = [summary(r) for r in results]
    scenarios = [s for s in sums[0] if all(s in x for x in sums[1:])]
    for f, r in zip(files, results):
        m, c = r.get("machine", {}), r.get("config", {})
        print(f"{f.name}: {c.get('database_backend')}, {c.get('workers')} workers x {c.get('threads')} threads, "
              f"commit {m.get('commit', '?')}, load average at start "
              f"{', '.join(f'{v:.1f}' for v in m.get('loadavg_at_start') or [])}")
    head = f"{'scenario':<20}" + "".join(f" | {f.stem[:22]:>22} req/s  per core  other" for f in files)
    print(head)
    for s in scenarios:
        line = f"{s:<20}"
        for x in sums:
            rps, core, other = x[s]
            line += f" | {rps:>28,.0f} {core or 0:>9,.0f} {other or 0:>5.0f}%"
        if len(sums) >= 2 and sums[0][s][1]:
            line += f" | x{sums[-1][s][1] / sums[0][s][1]:.2f} per core, x{sums[-1][s][0] / sums[0][s][0]:.2f} req/s"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
