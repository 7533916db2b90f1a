"""Framed values (issue 22): reading CBOR and storable frames through a Handle
against decoding the same frames with ``cbor2.loads`` / ``pickle.loads``.

N values are written through a socketpair by a thread and read with one
``push_read(type, cb)`` each (the next pushed from the callback); the time
from the first push to the last value is compared with a loop of the
library's ``loads`` over the same frames (without the framing).  Best of 3.

* cbor small: 100,000 small maps (18 bytes each);
* cbor 100 B: 100,000 maps of about 100 bytes;
* storable small: 100,000 small dicts (``push_read("storable")``, restricted
  unpickling with the nesting pre-check) against ``pickle.loads``;
* storable 400 KiB: 50 lists of 20,000 ints.

Beside each, the floor: as many ``push_read("chunk", size, cb)`` of the mean
frame size, nothing decoded; what a framed read costs beyond that, against
``loads``.  Then Perl's same case (frames.pl: AnyEvent::Handle's cbor and
storable types on EV against CBOR::XS's ``decode_cbor`` / Storable's
``thaw``), its own ratio, and how many times our time its time is.

usage: frames.py  (exits 1 when a ratio is above 2)
"""

import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time

import _common  # noqa: F401  (puts the repository on sys.path)

import cbor2


def through_handle(kind, frames):
    """Seconds to read ``frames`` with one ``push_read(kind, cb)`` each; kind
    "chunk" reads frames of one size undecoded (the floor of any read)."""
    from anyevent import AE
    from anyevent.handle import Handle
    a, b = socket.socketpair()
    count, cv = 0, AE.cv()
    args = (len(frames[0]),) if kind == "chunk" else ()

    def got(h, value):
        nonlocal count
        count += 1
        if count == len(frames):
            cv.send()
        else:
            h.push_read(kind, *args, got)
    hdl = Handle(fh=a, on_error=lambda h, fatal, msg: cv.croak(msg))
    threading.Thread(target=lambda: (b.sendall(b"".join(frames)), b.close()),
                     daemon=True).start()
    began = time.perf_counter()
    hdl.push_read(kind, *args, got)
    cv.recv()
    took = time.perf_counter() - began
    hdl.destroy()
    return took


def plain(loads, payloads):
    began = time.perf_counter()
    for data in payloads:
        loads(data)
    return time.perf_counter() - began


def perl_figures():
    """{case: (Handle s, decode alone s)} from frames.pl, Perl's same cases
    (empty when perl or its modules are missing)."""
    if shutil.which("perl") is None:
        return {}
    out = subprocess.run(["perl", os.path.join(os.path.dirname(__file__), "frames.pl")],
                         capture_output=True, text=True)
    return {name: (float(h), float(d)) for name, h, d in
            (line.split("\t") for line in out.stdout.splitlines())}


def main():
    from anyevent.handle._types import _write_storable
    _common.check_core()
    small = [{"a": i, "b": [1, 2, 3], "c": "hello"} for i in range(100000)]
    medium = [{"id": i, "name": "x" * 40, "tags": ["a", "b", "c"], "score": i / 7}
              for i in range(100000)]
    big = [list(range(20000)) for _ in range(50)]
    cases = [("cbor small", "cbor", small, cbor2.loads, None),
             ("cbor 100 B", "cbor", medium, cbor2.loads, None),
             ("storable small", "storable", small, pickle.loads, _write_storable),
             ("storable 400 KiB", "storable", big, pickle.loads, _write_storable)]
    perl = perl_figures()
    print("| frames | Handle, s | loads alone, s | ratio | target | floor, s | "
          "(Handle - floor) / loads | Perl Handle, s | Perl ratio | Perl / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    missed = 0
    for name, kind, values, loads, frame in cases:
        frames = [cbor2.dumps(v) for v in values] if frame is None else \
            [frame(None, v) for v in values]
        payloads = frames if frame is None else [pickle.dumps(v) for v in values]
        ours = min(through_handle(kind, frames) for _ in range(3))
        theirs = min(plain(loads, payloads) for _ in range(3))
        # as many reads of as many bytes, undecoded: chunks of the mean frame size
        size = sum(map(len, frames)) // len(frames)
        floor = min(through_handle("chunk", [b"x" * size] * len(frames)) for _ in range(3))
        ok = ours / theirs <= 2
        missed += not ok
        perl_handle, perl_decode = perl.get(name, (float("nan"), float("nan")))
        print("| %s | %.3f | %.3f | %.2f× | ≤ 2× %s | %.3f | %.2f× | %.3f | %.2f× | %.2f× |" % (
            name, ours, theirs, ours / theirs, "ok" if ok else "MISSED", floor,
            (ours - floor) / theirs, perl_handle, perl_handle / perl_decode,
            perl_handle / ours))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
