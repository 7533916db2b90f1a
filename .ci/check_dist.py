"""Check what `make dist` made (dist/): a wheel a package index accepts and a
complete sdist.  Exits 1 with the reasons when not.

* the wheel: a manylinux platform tag (auditwheel's), under 1.5 MB, every
  compiled core module in it as an extension, no generated C;
* the sdist: what its own test suite reads (tests/, examples/, the docs'
  sources, README.md), and the compiled core's sources.
"""

import re
import sys
import tarfile
import zipfile
from pathlib import Path

MAX_WHEEL = 1.5e6  # bytes
CORE = ("anyevent/reactor", "anyevent/handle/_stream", "anyevent/handle/_types",
        "anyevent/handle/_wire", "anyevent/_speedups")
SDIST_NEEDS = ("tests/conftest.py", "examples/chat_server.py", "docs/quickstart.md",
               "docs/types.rst", "README.md", "setup.py", "anyevent/handle/_stream.pxd",
               "anyevent/_speedups.pyx")


def check_wheel(path):
    problems = []
    if not re.search(r"-manylinux_\d+_\d+_\w+\.whl$|\.manylinux_\d+_\d+_\w+\.whl$", path.name):
        problems.append("%s: no manylinux tag" % path.name)
    if path.stat().st_size >= MAX_WHEEL:
        problems.append("%s: %d bytes (limit %d)" % (path.name, path.stat().st_size, MAX_WHEEL))
    names = zipfile.ZipFile(path).namelist()
    for module in CORE:
        if not any(n.startswith(module + ".") and n.endswith(".so") for n in names):
            problems.append("%s: %s is not compiled in it" % (path.name, module))
    problems += ["%s: generated C %s" % (path.name, n) for n in names if n.endswith(".c")]
    return problems


def check_sdist(path):
    with tarfile.open(path) as tar:
        names = {n.partition("/")[2] for n in tar.getnames()}
    return ["%s: %s missing" % (path.name, need) for need in SDIST_NEEDS if need not in names]


def main(dist):
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems = [] if wheels and sdists else ["%s: a wheel and an sdist expected" % dist]
    for wheel in wheels:
        problems += check_wheel(wheel)
    for sdist in sdists:
        problems += check_sdist(sdist)
    for wheel in wheels:
        print("%s: %.2f MB" % (wheel.name, wheel.stat().st_size / 1e6))
    print("\n".join(problems) or "dist: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
