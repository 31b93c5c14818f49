"""Thread states of a command sampled from outside: is a batch's pipeline thread waiting for the writer's GIL?

    .venv/bin/python benchmarks/thread_states.py .venv/bin/python -m facerecon.cli reconstruct DIR -o OUT --no-overlay

Runs the command and reads ``/proc/PID/task/*/stat`` about every millisecond (from this process: no GIL of the
command's in the way).  A thread waiting for the GIL sleeps on a condition variable (state 'S'); one running or
waiting for a core is 'R'.  Over the samples while the busiest other thread (the writer) exists, it prints how
often the main thread (the frame pipeline) and that thread were 'R', and both at once: two threads serialised by
the GIL are rarely 'R' together; two that are both 'R' most of the time are competing for cores, not for the GIL.
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import time


def main(argv=None) -> int:
    cmd = list(sys.argv[1:] if argv is None else argv)
    if not cmd:
        print(__doc__)
        return 2
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = proc.pid
    samples = []
    while proc.poll() is None:
        snap = {}
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            break
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                snap[int(tid)] = (f[0], int(f[11]) + int(f[12]))
            except OSError:
                pass
        samples.append(snap)
        time.sleep(0.001)
    last: dict = collections.defaultdict(int)
    for s in samples:
        for t, (_, cpu) in s.items():
            last[t] = max(last[t], cpu)
    others = sorted((t for t in last if t != pid), key=lambda t: -last[t])
    if not others:
        print("no second thread seen")
        return 1
    writer = others[0]
    batch = [s for s in samples if writer in s]
    n = max(len(batch), 1)

    def share(pred) -> float:
        return 100.0 * sum(1 for s in batch if pred(s)) / n

    def running(s, t) -> bool:
        return t in s and s[t][0] == "R"

    hz = os.sysconf("SC_CLK_TCK")
    print(f"exit {proc.returncode}; {len(batch)} samples while the second thread existed; CPU s: main {last[pid] / hz:.2f}, "
          f"busiest other {last[writer] / hz:.2f}, the next {' '.join(f'{last[t] / hz:.2f}' for t in others[1:4])}")
    print(f"'R' (running or waiting for a core): main {share(lambda s: running(s, pid)):.0f} %, the other "
          f"{share(lambda s: running(s, writer)):.0f} %, both {share(lambda s: running(s, pid) and running(s, writer)):.0f} %, "
          f"neither {share(lambda s: not running(s, pid) and not running(s, writer)):.0f} %; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
