"""The quick start's programs run as printed (docs/quickstart.md).

Every fenced ``python`` block is a complete program: each runs in its own
interpreter (``-X dev``), in one directory shared by the page, after the
page's ``sh`` blocks (which make the TLS certificate) ran there.  A block
passes when it exits 0, writes nothing to stderr (no traceback, warning or
error line), and prints what its ``print(...)  # expected`` comments say.
The DNS blocks ask a dnsmasq that answers the names they look up (root
only: a resolv.conf cannot name a port other than 53).
"""

import os
import re
import subprocess
import sys

import pytest

from conftest import require_tool
from fixtures_dns import Dnsmasq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAGE = os.path.join(ROOT, "docs", "quickstart.md")

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_EXPECTED = re.compile(r"^print\(.*\)\s+#\s*(.+)$", re.MULTILINE)
_USES_DNS = ("anyevent.dns", "resolve_sockaddr")

#: Records for the names the DNS examples look up (any plausible answers do).
DNS_RECORDS = [
    "host-record=www.python.org,192.0.2.80,2001:db8::80",
    "host-record=mail.python.org,192.0.2.25",
    "mx-host=python.org,mail.python.org,50",
    "ptr-record=8.8.8.8.in-addr.arpa,dns.google",
    "local=/python.org/", "local=/localhost/",
]
#: What a block using :mod:`anyevent.dns` must print with those records.
DNS_ANSWERS = ["192.0.2.80", "2001:db8::80", "mail.python.org", "dns.google"]


def _blocks(kind):
    with open(PAGE) as f:
        text = f.read()
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in _FENCE.finditer(text) if m.group(1) == kind]


PYTHON_BLOCKS = _blocks("python")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The page's directory, after its shell blocks ran there."""
    path = tmp_path_factory.mktemp("quickstart")
    for line, code in _blocks("sh"):
        if "openssl" in code:
            require_tool("openssl")
        subprocess.run(["sh", "-e", "-c", code], cwd=path, check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def resolv_conf(tmp_path_factory):
    """A resolv.conf naming a dnsmasq that knows :data:`DNS_RECORDS`."""
    if os.geteuid() != 0:
        pytest.skip("a resolv.conf names port 53 only, which needs root for dnsmasq")
    path = tmp_path_factory.mktemp("dns")
    server = Dnsmasq(str(path), DNS_RECORDS)
    conf = path / "resolv.conf"
    conf.write_text("nameserver %s\n" % server.ip)
    yield str(conf)
    server.stop()


def test_page_has_examples():
    assert len(PYTHON_BLOCKS) >= 5
    assert _blocks("sh")


@pytest.mark.parametrize("line, code", PYTHON_BLOCKS,
                         ids=["line%d" % line for line, _ in PYTHON_BLOCKS])
def test_quickstart_block_runs(line, code, workdir, request):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if any(word in code for word in _USES_DNS):
        env["ANYEVENT_RESOLV_CONF"] = request.getfixturevalue("resolv_conf")
    script = workdir / ("block%d.py" % line)
    script.write_text(code)
    proc = subprocess.run([sys.executable, "-X", "dev", str(script)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expected_texts = _EXPECTED.findall(code)
    if "anyevent.dns" in code:
        expected_texts += DNS_ANSWERS
    for expected in expected_texts:
        assert expected in proc.stdout, (expected, proc.stdout)
    assert proc.stdout.strip(), "the example printed nothing"


def test_type_reference_lists_every_builtin_type():
    """docs/types.rst has a section for every read and write type the handle package registers."""
    # a fresh interpreter: tests in this one register types of their own
    registered = subprocess.run(
        [sys.executable, "-c", "import anyevent.handle._stream as h; print(' '.join(h._READ_TYPES)); "
                               "print(' '.join(h._WRITE_TYPES))"],
        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, check=True)
    read_types, write_types = (line.split() for line in registered.stdout.splitlines())
    assert "tls_autostart" in read_types and "storable" in write_types
    with open(os.path.join(ROOT, "docs", "types.rst")) as f:
        text = f.read()
    read_part, _, write_part = text.partition("\nWrite types\n")
    for name in read_types:
        assert "\n``%s``\n" % name in read_part, "read type %s undocumented" % name
        assert 'push_read("%s"' % name in read_part
    for name in write_types:
        assert "\n``%s``\n" % name in write_part, "write type %s undocumented" % name
        assert 'push_write("%s"' % name in write_part
