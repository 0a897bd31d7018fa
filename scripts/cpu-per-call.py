#!/usr/bin/env python3
"""Where the CPU of a load run goes, per invocation: runs a load command and reads every
process's user + system time (/proc/PID/stat) before and after it, then charges each process
to a role given on the command line (and its descendants, e.g. a worker's sandboxes, to
"<role> children"). The load command's own time comes from its rusage. Everything else on the
machine (other users' builds, the shell) is "other". Used by scripts/cluster-bench.sh.

Usage: cpu-per-call.py OUT.txt ROLE=PID [ROLE=PID ...] -- LOAD COMMAND...
Prints the load command's output, then one line per role: CPU seconds and microseconds per
completed invocation (the "N ok" count in the load command's output).
"""
import os
import re
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def snapshot():
    """pid -> (ppid, cpu seconds) for every process readable now."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        procs[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return procs


def busy():
    """CPU seconds the whole machine has been busy (all cores, not idle or waiting on I/O)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def owner(pid, procs, roles):
    """The role `pid` belongs to: its own, or '<role> children' for a descendant."""
    seen = pid
    depth = 0
    while seen in procs and depth < 64:
        if seen in roles:
            return roles[seen] if seen == pid else roles[seen] + " children"
        seen = procs[seen][0]
        depth += 1
    return "other"


def main():
    args = sys.argv[1:]
    out, sep = args[0], args.index("--")
    roles = {int(p): r for r, p in (a.split("=", 1) for a in args[1:sep])}
    before, busy_before = snapshot(), busy()
    proc = subprocess.Popen(args[sep + 1 :], stdout=subprocess.PIPE, text=True)
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    after, busy_after = snapshot(), busy()
    print(text, end="")
    n = int((re.search(r"(\d+) ok", text) or [0, 0])[1])
    used = {"load generator": usage.ru_utime + usage.ru_stime}
    for pid, (_, cpu) in after.items():
        delta = cpu - before.get(pid, (0, 0.0))[1]
        if delta > 0:
            role = owner(pid, after, roles)
            if role != "other":
                used[role] = used.get(role, 0.0) + delta
    used["other"] = max(0.0, busy_after - busy_before - sum(used.values()))
    lines = []
    total = 0.0
    for role in sorted(used, key=lambda r: (r == "other", r)):
        total += used[role]
        per = used[role] / n * 1e6 if n else 0.0
        lines.append(f"  {role:<22} {used[role]:7.2f} s  {per:7.1f} us/invocation")
    lines.append(f"  {'machine':<22} {total:7.2f} s  {total / n * 1e6 if n else 0:7.1f} us/invocation")
    report = f"CPU during the run ({n} invocations, {busy_after - busy_before:.2f} s busy):\n" + "\n".join(lines)
    print(report)
    with open(out, "w") as f:
        f.write(report + "\n")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
