"""Service discovery on etcd, as src/registry/etcd-registry.ts does it, so that TS parents, pools
and `multifrost services` see Python services like TS ones.

Each registration is one key `<prefix>services/<encodeURIComponent(id)>/<instance>` (instance:
16 hex digits) holding `{"host","port","pid","started","hostname"[,"publicKey"]}` (compact JSON,
`started` as JS's toISOString()) under a lease of its own, kept alive by a daemon thread
(_etcd_lease.py): several instances of one id, on any hosts, coexist, and a crashed one disappears
when its lease expires. etcd is reached through its HTTP/JSON gateway (_etcd_gateway.py). Every
etcd failure is a RegistryError; a bad argument a ValueError. Reads are plain range requests
(`discover` polls; the TS side watches).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Final

from ._advertise import LOOPBACK, is_advertised_host
from ._etcd_gateway import EtcdGateway, b64, prefix_end, unb64
from ._etcd_lease import LeasedKey, LeaseEvents
from ._registry_errors import RegistryError, ServiceNotFoundError
from ._registry_url import check_etcd_options, decode_uri_component
from .registry import _is_pid, _is_port, _utc_now_iso, check_registration, check_service_id

DEFAULT_PREFIX: Final = "multifrost/"
DEFAULT_LEASE_TTL: Final = 10
DEFAULT_REQUEST_TIMEOUT: Final = 3.0
#: How often `discover` looks again while the service is not there.
DISCOVER_POLL_S: Final = 0.2
#: What one read may bring back, whoever wrote under the prefix (src/registry/etcd-registry.ts):
#: instances of a service, registrations listed, and characters per entry.
MAX_INSTANCES_READ: Final = 1000
MAX_REGISTRATIONS_LISTED: Final = 10_000
MAX_ENTRY_CHARS: Final = 4096


class EtcdRegistry:
    """Register, unregister and discover services in etcd (`etcd://…` registry URLs)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        events: LeaseEvents | None = None,
    ) -> None:
        """
        endpoints: etcd client endpoints, `host:port` or `http://host:port`, tried in turn.
        prefix: every key this registry writes or reads starts with it.
        lease_ttl: seconds (an integer from 2 to 86400) a crashed service, or a host cut off from etcd, stays
            discoverable; the lease is kept alive every third of it.
        request_timeout: seconds one etcd request may take, over all endpoints, before RegistryError.
        events: told of lease losses and renewals (default: a line on stderr each).
        """
        if not isinstance(endpoints, str):
            endpoints = list(endpoints)  # read once (a generator too)
        check_etcd_options(endpoints, prefix, lease_ttl, request_timeout)
        self._gateway = EtcdGateway(endpoints, float(request_timeout))
        self.prefix = prefix
        self.lease_ttl = int(lease_ttl)
        self.request_timeout = float(request_timeout)
        self._events = events
        self.location = f"etcd://{','.join(str(e) for e in self._gateway.endpoints)}/{prefix}"
        self._lock = threading.Lock()
        self._registrations: dict[str, list[tuple[dict[str, Any], LeasedKey]]] = {}

    # -- registering ----------------------------------------------------------------------------

    def register(
        self,
        service_id: str,
        port: int,
        pid: int | None = None,
        *,
        host: str | None = None,
        public_key: str | None = None,
    ) -> dict[str, Any]:
        """Publishes one instance of `service_id` at `host` (default 127.0.0.1) and `port`, kept
        while this process runs; returns its entry, `instance` included. Other instances of the
        id, here or elsewhere, stay. RegistryError when etcd does not answer in time."""
        owner = check_registration(service_id, port, pid, host, public_key)
        instance = secrets.token_hex(8)
        entry: dict[str, Any] = {
            "host": host if host is not None else "127.0.0.1",
            "port": port,
            "pid": owner,
            "started": _utc_now_iso(),
            "hostname": socket.gethostname(),
        }
        if public_key is not None:
            entry["publicKey"] = public_key
        value = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)  # as JSON.stringify
        key = LeasedKey(self._gateway, self._service_prefix(service_id) + instance, value, self.lease_ttl, self._events)
        key.start()
        with self._lock:
            self._registrations.setdefault(service_id, []).append((entry, key))
        return {**entry, "instance": instance}

    def unregister(self, service_id: str, pid: int | None = None) -> bool:
        """Revokes this registry's registrations of `service_id` owned by `pid` (default: this
        process): they disappear at once. Returns whether there were any."""
        check_service_id(service_id)
        owner = os.getpid() if pid is None else pid
        with self._lock:
            registrations = self._registrations.get(service_id, [])
            mine = [key for entry, key in registrations if entry["pid"] == owner]
            kept = [(entry, key) for entry, key in registrations if entry["pid"] != owner]
            if kept:
                self._registrations[service_id] = kept
            else:
                self._registrations.pop(service_id, None)
        for key in mine:
            key.stop()
        return bool(mine)

    def close(self) -> None:
        """Revokes every registration this registry made (what a stopping process does)."""
        with self._lock:
            keys = [key for registrations in self._registrations.values() for _, key in registrations]
            self._registrations.clear()
        for key in keys:
            key.stop()

    def __enter__(self) -> EtcdRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leases(self, service_id: str) -> list[LeasedKey]:
        """This process's leased keys for `service_id` (lease ids, renewal counts)."""
        with self._lock:
            return [key for _, key in self._registrations.get(service_id, [])]

    # -- reading --------------------------------------------------------------------------------

    def instances(self, service_id: str) -> list[dict[str, Any]]:
        """The live instances of `service_id` this process can reach, oldest first: all but those
        bound to another machine's loopback (`list_instances()` shows them all). At most 1000."""
        return self._instances(service_id, None)

    def lookup(self, service_id: str) -> dict[str, Any] | None:
        """One live instance (picked at random, as the TS side does), or None."""
        return self._lookup(service_id, None)

    def _lookup(self, service_id: str, timeout: float | None) -> dict[str, Any] | None:
        live = self._instances(service_id, timeout)
        return random.choice(live) if live else None

    def _instances(self, service_id: str, timeout: float | None) -> list[dict[str, Any]]:
        check_service_id(service_id)
        prefix = self._service_prefix(service_id)
        here = socket.gethostname()
        found = [to_etcd_entry(key[len(prefix) :], value) for key, value in self._range(prefix, MAX_INSTANCES_READ, timeout)]
        reachable = [
            entry
            for entry in found
            if entry is not None and (LOOPBACK.fullmatch(entry["host"]) is None or entry.get("hostname") in (None, here))
        ]
        return sorted(reachable, key=lambda entry: entry["started"])

    def discover(self, service_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Waits until an instance is registered, all of it within `timeout` seconds (each look
        gets what is left of it, at most a request timeout); then ServiceNotFoundError if etcd
        answered at least once, else the RegistryError of the last look."""
        check_service_id(service_id)
        deadline = time.monotonic() + timeout
        answered = False
        error: RegistryError | None = None
        while True:
            try:
                found = self._lookup(service_id, max(deadline - time.monotonic(), 0.001))
                answered = True
                if found is not None:
                    return found
            except RegistryError as exc:
                error = exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceNotFoundError(service_id, timeout) if answered or error is None else error
            time.sleep(min(DISCOVER_POLL_S, left))

    def list(self) -> dict[str, dict[str, Any]]:
        """One live instance per service id (the oldest)."""
        live: dict[str, dict[str, Any]] = {}
        for service_id, entry in self.list_instances():
            live.setdefault(service_id, entry)
        return live

    def list_instances(self) -> list[tuple[str, dict[str, Any]]]:
        """Every live registration as (service id, entry), several per id where several run."""
        prefix = f"{self.prefix}services/"
        result: list[tuple[str, dict[str, Any]]] = []
        for key, value in self._range(prefix, MAX_REGISTRATIONS_LISTED):
            rest = key[len(prefix) :]
            slash = rest.rfind("/")
            if slash <= 0:
                continue
            entry = to_etcd_entry(rest[slash + 1 :], value)
            service_id = _decode_service_id(rest[:slash])
            if entry is not None and service_id is not None:
                result.append((service_id, entry))
        return sorted(result, key=lambda item: (item[0], item[1]["started"]))

    # -- internals ------------------------------------------------------------------------------

    def _service_prefix(self, service_id: str) -> str:
        return f"{self.prefix}services/{encode_uri_component(service_id)}/"

    def _range(self, prefix: str, limit: int, timeout: float | None = None) -> list[tuple[str, str]]:
        raw = prefix.encode("utf-8")
        try:
            reply = self._gateway.call("kv/range", {"key": b64(raw), "range_end": b64(prefix_end(raw)), "limit": str(limit)}, timeout)
        except RegistryError as exc:
            raise RegistryError(f"etcd read failed ({self.location}): {exc}") from exc
        kvs = reply.get("kvs")
        if not isinstance(kvs, list):
            return []
        return [
            (unb64(kv.get("key")).decode("utf-8", errors="replace"), unb64(kv.get("value")).decode("utf-8", errors="replace"))
            for kv in kvs
            if isinstance(kv, dict)
        ]


def _decode_service_id(encoded: str) -> str | None:
    """A key's id part, or None for one that is not ours (another writer's key under the prefix)."""
    try:
        return check_service_id(decode_uri_component(encoded))
    except ValueError:
        return None


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent (UTF-8; keeps A-Z a-z 0-9 - _ . ! ~ * ' ( ))."""
    return urllib.parse.quote(text, safe="!~*'()")


def to_etcd_entry(instance: str, value: str) -> dict[str, Any] | None:
    """A registered instance as read back (src/registry/etcd-registry.ts toEtcdEntry); None for a
    value that is not one of ours."""
    if len(value) > MAX_ENTRY_CHARS // 2 and len(value.encode("utf-16-le", "surrogatepass")) // 2 > MAX_ENTRY_CHARS:
        return None  # ours are ~200 bytes: not an entry (counted as JavaScript counts)
    try:
        stored = json.loads(value)
    except ValueError:
        return None
    if not isinstance(stored, dict):
        return None
    host, port, pid = stored.get("host"), stored.get("port"), stored.get("pid")
    if not _is_port(port) or not _is_pid(pid) or not is_advertised_host(host):
        return None
    started = stored.get("started")
    entry: dict[str, Any] = {"host": host, "port": port, "pid": pid, "started": started if isinstance(started, str) else "", "instance": instance}
    if isinstance(stored.get("hostname"), str):
        entry["hostname"] = stored["hostname"]
    public_key = stored.get("publicKey")
    if isinstance(public_key, str) and len(public_key) == 40:
        entry["publicKey"] = public_key
    return entry
