"""ChildWorker: expose a class's methods to Multifrost, JS v4 and Python v4 parents.

This module is the public class; a run's machinery is in _runtime.py (threads, shutdown),
_io.py (the socket), _dispatch.py (calls), _streaming.py (generator methods) and _context.py
(`self.call`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _wire as wire
from ._advertise import advertised_address, check_bind
from ._callables import callable_table
from ._context import CallContext, current_call, current_call_var
from ._curve import ServiceCurve, resolve_service_curve
from ._registry_url import RegistryBackend, open_registry
from ._runtime import Runtime
from .registry import FileRegistry

__all__ = ["CallContext", "ChildWorker", "current_call"]


@dataclass
class _Settings:
    service_id: str | None = None
    max_concurrency: int = 64
    max_queued_calls: int = 10_000
    shutdown_grace: float = 5.0
    disconnect_grace: float = 2.0
    accept_shutdown: bool | None = None
    forward_output: bool = True
    handle_signals: bool = True
    registry: RegistryBackend | None = None
    host: str = "127.0.0.1"
    #: The `advertise` option; what is published is decided when connect mode binds (_advertise.py).
    advertise: str | None = None
    #: Connect mode's CURVE settings, checked (None: plain ZeroMQ); spawn mode never uses them.
    curve: ServiceCurve | None = None
    max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE


class ChildWorker:
    """Subclass it, add methods, call `run()`.

    Spawn mode (the parent set `COMLINK_ZMQ_PORT`): connects to the parent. Connect mode
    (`ChildWorker("service-id")`): binds `host` (default 127.0.0.1) on a port the OS picks, over
    CURVE with `curve=`, and registers it — in `registry`, else `$MULTIFROST_REGISTRY`
    (`file:///dir`, `etcd://…`), else the file registry.
    Only the methods your subclasses define are callable — never `_private` ones nor anything
    ChildWorker defines (`run`, `stop`, `list_functions`, ...). Methods may be `def` (run in a
    thread pool) or `async def` (run on the worker's asyncio loop); heartbeats are answered
    whatever they are doing. A generator method (`def` with `yield`, run in the pool, or
    `async def` with `yield`, run on the loop) streams its values to a streamed call
    (docs/python.md, Streaming).
    """

    #: The namespace this worker answers; calls for another one are ignored (spec §9.3).
    namespace: str = wire.DEFAULT_NAMESPACE

    def __init__(
        self,
        service_id: str | None = None,
        *,
        max_concurrency: int = 64,
        max_queued_calls: int = 10_000,
        shutdown_grace: float = 5.0,
        disconnect_grace: float = 2.0,
        accept_shutdown: bool | None = None,
        forward_output: bool = True,
        handle_signals: bool = True,
        registry: RegistryBackend | str | None = None,
        registry_dir: str | None = None,
        host: str = "127.0.0.1",
        advertise: str | None = None,
        curve: Mapping[str, Any] | str | None = None,
        insecure: bool = False,
        max_message_size: int = wire.DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        """
        service_id: connect mode's name in the registry (ignored when COMLINK_ZMQ_PORT is set).
        max_concurrency: sync calls running at once (thread pool size), and async calls at once.
        max_queued_calls: calls accepted beyond those running; past it a call gets a BusyError reply.
        shutdown_grace: seconds a stop (SIGTERM, `shutdown`) lets running calls finish.
        disconnect_grace: spawn mode: seconds without the parent's connection before exiting.
        accept_shutdown: obey `shutdown` messages; default True in spawn mode, False for services.
        forward_output: connect mode: send printed lines to connected parents as stdout/stderr messages.
        handle_signals: SIGTERM/SIGINT stop the worker (only when `run()` is on the main thread).
        registry: where connect mode registers: a registry object, or a URL (`file:///dir`,
            `etcd://host:port[,host:port…][/prefix][?ttl=10&timeout=3000]`); default
            $MULTIFROST_REGISTRY, else the file registry ($MULTIFROST_REGISTRY_DIR or ~/.multifrost).
        registry_dir: shorthand for registry=FileRegistry(registry_dir).
        host: connect mode's interface to bind; not loopback needs `curve` or insecure=True.
        advertise: the address parents on other machines reach this service at, published in its
            registry entry; default `host`, or for a wildcard host ("0.0.0.0", "*") this machine's
            first non-loopback IPv4 address. A loopback service publishes none.
        curve: connect mode: serve over CURVE. A key pair `{"public_key", "secret_key",
            "authorized_keys"?}` (Z85 strings; the TS names publicKey/secretKey/authorizedKeys work
            too; without authorized_keys any CURVE client is admitted), or the name of a key pair in
            the keys directory ($MULTIFROST_KEYS_DIR or ~/.multifrost/keys: <name>.pub, <name>.key,
            and authorized_keys if present). The public key is published in the registry entry
            (`publicKey`). ValueError for a bad key, a pair that does not match, a missing file.
        insecure: allow a non-loopback `host` without encryption or authentication.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (got {max_concurrency})")
        if max_queued_calls < 0:
            raise ValueError(f"max_queued_calls must be >= 0 (got {max_queued_calls})")
        resolved_curve = None if curve is None else resolve_service_curve(curve)
        check_bind(host, insecure, curve=resolved_curve is not None)
        if service_id is not None:
            advertised_address(host, advertise)  # a bad advertise (or nothing to publish) fails here, as in TS
        if isinstance(registry, str):
            registry = open_registry(registry)  # a bad URL fails here, not at run()
        elif registry is None and registry_dir:
            registry = FileRegistry(registry_dir)
        self.service_id = service_id
        self._mf_settings = _Settings(
            service_id=service_id,
            max_concurrency=max_concurrency,
            max_queued_calls=max_queued_calls,
            shutdown_grace=shutdown_grace,
            disconnect_grace=disconnect_grace,
            accept_shutdown=accept_shutdown,
            forward_output=forward_output,
            handle_signals=handle_signals,
            registry=registry,
            host=host,
            advertise=advertise,
            curve=resolved_curve,
            max_message_size=max_message_size,
        )

    # -- public API ---------------------------------------------------------------------------

    def list_functions(self) -> list[str]:
        """The names a parent may call."""
        return list(callable_table(self, ChildWorker))

    @property
    def call(self) -> CallContext | None:
        """The call being handled (id, traceparent, deadline...), or None outside a call."""
        return current_call_var.get()

    @property
    def stats(self) -> dict[str, Any]:
        runtime: Runtime | None = getattr(self, "_mf_runtime", None)
        return runtime.stats_snapshot() if runtime is not None else {}

    def run(self) -> None:
        """Serves calls until a `shutdown` message, SIGTERM/SIGINT, the parent's death
        (spawn mode) or `stop()`, then unregisters (connect mode) and returns.

        Exits the process with code 1 and a FATAL line on stderr when COMLINK_ZMQ_PORT is
        invalid or neither it nor a service id is given. Raises ServiceAlreadyRunningError when
        another live process holds the service id (file registry), RegistryError when the
        registry cannot be written (etcd not answering within its timeout...).
        """
        settings = getattr(self, "_mf_settings", None)
        if settings is None:  # a subclass __init__ that did not call super().__init__()
            settings = _Settings(service_id=getattr(self, "service_id", None))
            self._mf_settings = settings
        if getattr(self, "_mf_runtime", None) is not None:
            raise RuntimeError("ChildWorker.run() called twice")
        service_id = getattr(self, "service_id", None) or settings.service_id
        port_text = os.environ.get(wire.ENV_PORT)
        endpoint: str | None = None
        if port_text is not None:
            text = port_text.strip()
            if not text.isdigit() or not wire.MIN_PORT <= int(text) <= wire.MAX_PORT:
                _fatal(
                    f"invalid {wire.ENV_PORT} {port_text!r}: expected an integer port between "
                    f"{wire.MIN_PORT} and {wire.MAX_PORT}"
                )
            endpoint = f"tcp://127.0.0.1:{int(text)}"
            # A Multifrost parent also offers a private ipc:// endpoint (in a directory only its
            # user can enter); v4 parents do not set it.
            private = os.environ.get(wire.ENV_ENDPOINT, "")
            if private.startswith("ipc://"):
                endpoint = private
        elif not service_id:
            _fatal(f"Need {wire.ENV_PORT} env (spawn mode) or a service_id (connect mode)")
        runtime = Runtime(self, ChildWorker, settings, endpoint, None if endpoint else service_id)
        self._mf_runtime = runtime
        try:
            runtime.serve()
        finally:
            self._mf_runtime = None

    def stop(self, wait: bool = True) -> None:
        """Asks a running worker to stop (as SIGTERM does); waits for it unless called from a handler."""
        runtime: Runtime | None = getattr(self, "_mf_runtime", None)
        if runtime is None:
            return
        runtime.request_stop("api")
        if wait and current_call_var.get() is None and threading.current_thread() is not runtime.serving_thread:
            runtime.finished.wait()

    def __enter__(self) -> "ChildWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(wait=False)


def _fatal(message: str) -> None:
    sys.stderr.write(f"FATAL: {message}\n")
    sys.stderr.flush()
    sys.exit(1)
