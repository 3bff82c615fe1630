"""`make bench`: every benchmark script in this folder, one subprocess each, figures printed.

Run with the server URLs set (the Makefile goes through `python -m common.cli exec`, which
starts the embedded servers when DATABASE_URL / REDIS_URL are unset). Pass names to run a subset:
    python bench/run_all.py bench_jobs bench_auth_users
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    every = [*HERE.glob("bench_*.py"), HERE / "exam_minute.py"]
    scripts = sorted(p for p in every if not wanted or p.stem in wanted)
    failed = []
    for script in scripts:
        print(f"\n### {script.stem}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"### {script.stem}: exit {code} in {time.monotonic() - start:.0f} s", flush=True)
        if code:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
