"""Registry URLs are decided exactly as src/registry/open-registry.ts parseRegistryUrl (with
checkEtcdOptions) decides them: the reviewer's cases, and more, checked against fixed expectations
and, where node and the built dist/ are there, against the TS parser itself."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from multifrost import parse_registry_url
from multifrost._registry_url import EtcdRegistryUrl, FileRegistryUrl

DIST = Path(__file__).resolve().parents[2] / "dist" / "index.js"

#: (url, what parse_registry_url gives: a parsed URL, or the text its ValueError contains)
CASES = [
    # the reviewer's 14
    ("etcd://h:1?ttl=100000", "ttl must be an integer from 2 to 86400 (got 100000)"),
    ("etcd://h:1/pre%0Afix", "prefix must be a string without control characters"),
    ("etcd://h:1/pre%01fix", "prefix must be a string without control characters"),
    ("etcd://h:1/pre\x01fix", "prefix must be a string without control characters"),
    ("etcd://h:1/app\n", "prefix must be a string without control characters"),
    ("etcd://127.0.0.1:2379\n", "an etcd endpoint must be host:port"),
    ("etcd://a:1\n,b:2", "an etcd endpoint must be host:port"),
    ("etcd://h:1?ttl=١٠", "ttl must be an integer from 2 to 86400 (got NaN)"),
    ("etcd://h:1?timeout=١٠٠", "timeout must be a positive number of milliseconds (got NaN)"),
    ("etcd://host:0", EtcdRegistryUrl(("host:0",))),
    ("etcd://host:99999", EtcdRegistryUrl(("host:99999",))),
    ("file:///tmp/%zz", "URI malformed"),
    ("file:///tmp/%E0%A4%A", "URI malformed"),
    ("file://LOCALHOST/tmp", FileRegistryUrl("/tmp")),
    # around them
    ("etcd://h:1?ttl=86400", EtcdRegistryUrl(("h:1",), None, 86400)),
    ("etcd://h:1?ttl=2.5", "ttl must be an integer from 2 to 86400 (got 2.5)"),
    ("etcd://h:1?ttl=", "ttl must be an integer from 2 to 86400 (got 0)"),
    ("etcd://h:1?ttl=%201%20", "ttl must be an integer from 2 to 86400 (got 1)"),
    ("etcd://h:1?ttl=0x10", EtcdRegistryUrl(("h:1",), None, 16)),
    ("etcd://h:1?ttl=1e1", EtcdRegistryUrl(("h:1",), None, 10)),
    ("etcd://h:1?timeout=Infinity", "timeout must be a positive number of milliseconds (got Infinity)"),
    ("etcd://h:1?timeout=-1", "timeout must be a positive number of milliseconds (got -1)"),
    ("etcd://h:1?timeout=250", EtcdRegistryUrl(("h:1",), None, None, 0.25)),
    ("etcd://h:1/a%20b", EtcdRegistryUrl(("h:1",), "a b/")),
    ("etcd://h:1/%C3%A9t%C3%A9/", EtcdRegistryUrl(("h:1",), "été/")),
    ("etcd://h:1/%ED%A0%80", "the prefix is not valid percent-encoding"),
    ("etcd://h:1/%C0%80", "the prefix is not valid percent-encoding"),
    ("etcd://h:1/%E0%A4%A", "the prefix is not valid percent-encoding"),
    ("etcd://h:1/a\x7fb", EtcdRegistryUrl(("h:1",), "a\x7fb/")),
    ("etcd://[::1]:2379,e.example:2379", EtcdRegistryUrl(("[::1]:2379", "e.example:2379"))),
    ("etcd://https://e.example:2379", "an etcd endpoint must be host:port"),
    ("etcd://h:١", "an etcd endpoint must be host:port"),
    ("etcd://h:123456", "an etcd endpoint must be host:port"),
    ("etcd://h", "an etcd endpoint must be host:port"),
    ("file:///tmp/%2f", "File URL path must not include encoded / characters"),
    ("file:///tmp/%ff", "URI malformed"),
    ("file:///tmp/%C3%A9", FileRegistryUrl("/tmp/é")),
    ("file://localhost/a%20b", FileRegistryUrl("/a b")),
    ("file://LocalHost/a", FileRegistryUrl("/a")),
    ("file://otherhost/a", 'File URL host must be "localhost" or empty'),
    ("file:///a/b/../c/./d", FileRegistryUrl("/a/c/d")),
    ("file:///a/%2e%2E/b", FileRegistryUrl("/b")),
    ("file:///a/b?x=1#y", FileRegistryUrl("/a/b")),
    ("file:///a\n/b", FileRegistryUrl("/a/b")),
    ("file:///a/b/..", FileRegistryUrl("/a/")),
    ("file://", FileRegistryUrl("/")),
]


def _outcome(url):
    try:
        return parse_registry_url(url)
    except ValueError as exc:
        return exc


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[json.dumps(url, ensure_ascii=False) for url, _ in CASES])
def test_registry_url_cases(url, expected):
    got = _outcome(url)
    if isinstance(expected, str):
        assert isinstance(got, ValueError), f"{url!r} parsed as {got!r}, the TS parser refuses it"
        assert expected in str(got)
    else:
        assert got == expected


def _ts_view(parsed):
    """What parseRegistryUrl returns, for a Python result."""
    if isinstance(parsed, FileRegistryUrl):
        return {"kind": "file", "dir": parsed.dir}
    options = {"endpoints": list(parsed.endpoints)}
    if parsed.prefix is not None:
        options["prefix"] = parsed.prefix
    if parsed.lease_ttl is not None:
        options["leaseTtlSeconds"] = parsed.lease_ttl
    if parsed.request_timeout is not None:
        options["requestTimeoutMs"] = round(parsed.request_timeout * 1000, 9)
    return {"kind": "etcd", "options": options}


def test_the_ts_parser_decides_every_case_the_same():
    node = shutil.which("node")
    if node is None or not DIST.exists():
        pytest.skip("needs node and a built dist/ (npm run build)")
    script = (
        f"import({json.dumps(DIST.as_uri())}).then(({{ parseRegistryUrl }}) => {{"
        "  const out = JSON.parse(process.argv[1]).map((url) => {"
        "    try { return { ok: true, value: parseRegistryUrl(url) }; } catch (error) { return { ok: false, error: error.message }; }"
        "  });"
        "  process.stdout.write(JSON.stringify(out));"
        "});"
    )
    urls = [url for url, _ in CASES]
    env = {key: value for key, value in os.environ.items() if not key.startswith("MULTIFROST_")}
    done = subprocess.run([node, "-e", script, json.dumps(urls)], capture_output=True, text=True, timeout=60, env=env, check=True)
    ts = json.loads(done.stdout)
    differ = []
    for url, decided in zip(urls, ts):
        got = _outcome(url)
        if decided["ok"] != (not isinstance(got, ValueError)):
            differ.append(f"{url!r}: TS {decided}, Python {got!r}")
        elif decided["ok"] and _ts_view(got) != decided["value"]:
            differ.append(f"{url!r}: TS {decided['value']}, Python {_ts_view(got)}")
    assert not differ, "\n".join(differ)
