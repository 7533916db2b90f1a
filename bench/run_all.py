"""Run every benchmark script in this directory (``make bench``).

Every ``bench/*.py`` except this file and helper modules (names starting with
``_``) is run in its own process, in name order, with this interpreter.
``--plot`` is passed on to the scripts that draw (``scale.py`` writes
``bench/scale.png``).  Exits 1 if any script failed or reported a missed
target (exit status 1).

usage: run_all.py [--plot]
"""

import argparse
import glob
import os
import subprocess
import sys


#: the scripts that take --plot
PLOTTING = {"scale.py"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plot", action="store_true", help="draw the plots too")
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    me = os.path.basename(__file__)
    scripts = sorted(p for p in glob.glob(os.path.join(here, "*.py"))
                     if not os.path.basename(p).startswith("_") and os.path.basename(p) != me)
    failed = []
    for path in scripts:
        name = os.path.basename(path)
        print("## %s" % name, flush=True)
        extra = ["--plot"] if args.plot and name in PLOTTING else []
        if subprocess.run([sys.executable, path] + extra, cwd=here).returncode:
            failed.append(name)
    if failed:
        print("missed targets or failed: %s" % ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
