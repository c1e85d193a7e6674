"""Multifrost for Python: write workers that Multifrost (TypeScript), JS v4 and Python v4
parents call over the comlink_ipc_v4 wire.

    from multifrost import ChildWorker

    class Model(ChildWorker):
        def predict(self, xs): ...          # runs in a thread pool
        async def fetch(self, url): ...     # runs on the worker's asyncio loop

    if __name__ == "__main__":
        Model().run()                       # spawn mode, or Model("model-svc").run() for connect mode
"""

from typing import TYPE_CHECKING, Any

from ._curve import curve_key_pair, load_curve_keys, save_curve_keys
from ._registry_url import REGISTRY_ENV, RegistryBackend, open_registry, parse_registry_url
from ._wire import APP_ID, DEFAULT_NAMESPACE, EncodeError
from .child import CallContext, ChildWorker, current_call
from .registry import FileRegistry, RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError

if TYPE_CHECKING:
    from ._etcd_lease import LeaseEvents
    from ._etcd_registry import EtcdRegistry

__version__ = "0.1.0"

__all__ = [
    "APP_ID",
    "DEFAULT_NAMESPACE",
    "CallContext",
    "ChildWorker",
    "EncodeError",
    "EtcdRegistry",
    "FileRegistry",
    "LeaseEvents",
    "REGISTRY_ENV",
    "RegistryBackend",
    "RegistryError",
    "ServiceAlreadyRunningError",
    "ServiceNotFoundError",
    "current_call",
    "curve_key_pair",
    "load_curve_keys",
    "open_registry",
    "parse_registry_url",
    "save_curve_keys",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The etcd client (http.client, threads) is imported on first use: a spawned worker never needs it.
    if name == "EtcdRegistry":
        from ._etcd_registry import EtcdRegistry

        return EtcdRegistry
    if name == "LeaseEvents":
        from ._etcd_lease import LeaseEvents

        return LeaseEvents
    raise AttributeError(f"module 'multifrost' has no attribute {name!r}")
