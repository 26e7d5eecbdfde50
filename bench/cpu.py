# Copied from /work/shared/bench/cpu.py (unchanged apart from this note) so that the repo
# does not depend on ../shared at run time.
"""Print the CPU seconds (user+system) used so far by each PID given and all its descendants."""
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK  # ppid, utime+stime


def tree_cpu_seconds(roots) -> float:
    """CPU seconds used so far by the given PIDs and all their live descendants."""
    roots = {int(r) for r in roots}
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = stat(d)
            except (OSError, ValueError, IndexError):
                pass
    total, seen, todo = 0.0, set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        total += procs[pid][1]
        todo += [p for p, (ppid, _) in procs.items() if ppid == pid]
    return total


def main():
    print(f"{tree_cpu_seconds(sys.argv[1:]):.2f}")


if __name__ == "__main__":
    main()
