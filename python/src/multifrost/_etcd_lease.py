"""One key kept in etcd while this process runs (mirrors src/registry/etcd-lease.ts).

The key is put under a lease of its own, renewed by a daemon thread every third of the TTL. When
etcd says the lease is gone (it expired while we were cut off, or etcd lost it), a new lease is
granted and the key put again as soon as etcd answers — an outage never loses a service for good.
While etcd does not answer at all, the thread keeps trying (200 ms, doubling to 2 s, never more
often than a request per wait): a lease often outlives a short outage (an etcd restart extends
every lease by its TTL), so it is not given up before etcd says so.
`stop()` ends the thread and revokes the lease: the key goes at once. A process that dies without
it (kill -9) leaves the key to the TTL.
"""

from __future__ import annotations

import sys
import threading
from typing import Final

from ._etcd_gateway import EtcdGateway, b64
from ._registry_errors import RegistryError

#: Waits between attempts while etcd does not answer: from the first to the last, doubling.
RENEW_FIRST_S: Final = 0.2
RENEW_MAX_S: Final = 2.0


class LeaseEvents:
    """What a registration reports while it runs (for logs); override what you need. By default
    one line on stderr each, as the TS EtcdRegistry writes them: a registration that silently
    vanished from discovery would be a mystery."""

    def lost(self, key: str, reason: str) -> None:
        """The lease is gone (etcd said so); re-creating it."""
        sys.stderr.write(f"multifrost: the etcd lease of {key} was lost ({reason}); registering again when etcd answers\n")

    def renewed(self, key: str) -> None:
        """The key is back under a new lease after a loss."""
        sys.stderr.write(f"multifrost: {key} is registered in etcd again\n")


class LeasedKey:
    def __init__(self, gateway: EtcdGateway, key: str, value: str, ttl: int, events: LeaseEvents | None = None) -> None:
        self.key = key
        self._gateway = gateway
        self._key = b64(key.encode("utf-8"))
        self._value = b64(value.encode("utf-8"))
        self._ttl = ttl
        self._events = events or LeaseEvents()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: The lease holding the key now; None while it is being re-created. Written by start()
        #: and then only by the keep-alive thread; stop() reads it after joining that thread.
        self.lease: int | None = None
        #: Keep-alives etcd answered, and leases granted after the first (for tests and stats).
        self.renewals = 0
        self.recreated = 0

    def start(self) -> None:
        """Grants the lease, puts the key and starts the keep-alive thread; RegistryError when etcd does not answer in time."""
        try:
            self.lease = self._put_under_new_lease()
        except RegistryError as exc:
            raise RegistryError(f"cannot register {self.key} in etcd: {exc}") from exc
        self._thread = threading.Thread(target=self._keep_alive, name="multifrost-etcd-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the keep-alives and revokes the lease (the key goes with it); a revoke etcd does
        not answer is left to the TTL. Waits at most about three request timeouts (every etcd
        request has one deadline, whatever the endpoint does)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            # The thread is at most in one grant + put; it revokes a lease it made after this.
            self._thread.join(2 * self._gateway.timeout + 1.0)
        lease, self.lease = self.lease, None
        if lease is not None:
            self._revoke(lease)

    # -- the keep-alive thread ----------------------------------------------------------------

    def _keep_alive(self) -> None:
        interval = self._ttl / 3
        wait = interval
        retry = RENEW_FIRST_S
        while not self._stopping.wait(wait):
            lease = self.lease
            try:
                if lease is None:
                    lease = self._put_under_new_lease()
                    if self._stopping.is_set():  # stop() may have read `lease` already
                        self._revoke(lease)
                        return
                    self.lease = lease
                    self.recreated += 1
                    self._events.renewed(self.key)
                elif self._renew(lease) <= 0:
                    self.lease = None
                    self._events.lost(self.key, f"etcd no longer has lease {lease:x} (expired or revoked)")
                    wait, retry = 0.0, RENEW_FIRST_S  # re-create it now
                    continue
                else:
                    self.renewals += 1
            except RegistryError:
                wait, retry = min(retry, interval), min(retry * 2, RENEW_MAX_S)
                continue
            except Exception:  # noqa: BLE001 - a bug here must not end the registration
                wait = interval
                continue
            wait, retry = interval, RENEW_FIRST_S

    def _renew(self, lease: int) -> int:
        """One keep-alive; the TTL etcd gives back (0: the lease is gone)."""
        reply = self._gateway.call("lease/keepalive", {"ID": str(lease)})
        result = reply.get("result")
        ttl = result.get("TTL", 0) if isinstance(result, dict) else 0
        try:
            return int(ttl)
        except (TypeError, ValueError):
            return 0

    def _put_under_new_lease(self) -> int:
        granted = self._gateway.call("lease/grant", {"TTL": self._ttl})
        try:
            lease = int(granted["ID"])
        except (KeyError, TypeError, ValueError):
            raise RegistryError(f"etcd granted no lease: {granted!r}") from None
        try:
            self._gateway.call("kv/put", {"key": self._key, "value": self._value, "lease": str(lease)})
        except RegistryError:
            self._revoke(lease)
            raise
        return lease

    def _revoke(self, lease: int) -> None:
        try:
            self._gateway.call("lease/revoke", {"ID": str(lease)})
        except RegistryError:
            pass  # unreachable, or already gone: the TTL removes the key

