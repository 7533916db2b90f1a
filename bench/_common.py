"""Helpers shared by the benchmark scripts (not a benchmark itself: run_all skips ``_*.py``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_core():
    """Stop when the compiled core is built but not in use and
    ``ANYEVENT_PURE_PYTHON`` does not ask for that: a source edited since the
    build makes anyevent import the ``.py`` files (with a warning), and every
    row said to be the compiled core would measure pure Python."""
    from anyevent import _core
    if (not os.environ.get("ANYEVENT_PURE_PYTHON") and not _core.compiled()
            and _core._extension("handle") is not None):
        sys.exit("benchmark: the compiled core is older than its source: rebuild it (make)")


class Table:
    """Collects rows ``(metric, anyevent, asyncio, better, target)`` and prints them.

    ``better`` is ``"higher"`` (rates) or ``"lower"`` (times); the ratio is
    always "how many times better anyevent is".  ``target`` is the ratio to
    reach, or a callable ``value -> bool`` with a text, or ``None``.
    """

    def __init__(self, title, columns=("anyevent", "asyncio")):
        self.title = title
        self.columns = columns
        self.rows = []
        self.missed = []

    def add(self, metric, ours, theirs, better="higher", target=None, unit=""):
        ratio = None
        if theirs is not None:
            ratio = ours / theirs if better == "higher" else theirs / ours
        if target is None:
            verdict = ""
        elif isinstance(target, tuple):
            text, check = target
            verdict = ("ok " if check(ours) else "MISSED ") + text
        else:
            verdict = ("ok " if ratio >= target else "MISSED ") + "≥%.2f×" % target
        if verdict.startswith("MISSED"):
            self.missed.append(metric)
        self.rows.append((metric, _fmt(ours, unit), _fmt(theirs, unit),
                          "" if ratio is None else "%.2f×" % ratio, verdict))

    def print(self):
        head = ("metric", *self.columns, "ratio", "target")
        widths = [max(len(str(r[i])) for r in self.rows + [head]) for i in range(5)]
        line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
        print("### " + self.title)
        print()
        print(line(head))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            print(line(r))
        print()
        sys.stdout.flush()
        return 1 if self.missed else 0


def _fmt(value, unit):
    if value is None:
        return "-"
    if unit == "/s":
        return "{:,.0f}/s".format(value)
    if unit == "s":
        return "%.3f s" % value
    return "%g%s" % (value, unit)
