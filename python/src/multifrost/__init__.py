"""Multifrost for Python: write workers that Multifrost (TypeScript), JS v4 and Python v4
parents call over the comlink_ipc_v4 wire.

    from multifrost import ChildWorker

    class Model(ChildWorker):
        def predict(self, xs): ...          # runs in a thread pool
        async def fetch(self, url): ...     # runs on the worker's asyncio loop

    if __name__ == "__main__":
        Model().run()                       # spawn mode, or Model("model-svc").run() for connect mode
"""

from ._wire import APP_ID, DEFAULT_NAMESPACE, EncodeError
from .child import CallContext, ChildWorker, current_call
from .registry import FileRegistry, RegistryError, ServiceAlreadyRunningError, ServiceNotFoundError

__version__ = "0.1.0"

__all__ = [
    "APP_ID",
    "DEFAULT_NAMESPACE",
    "CallContext",
    "ChildWorker",
    "EncodeError",
    "FileRegistry",
    "RegistryError",
    "ServiceAlreadyRunningError",
    "ServiceNotFoundError",
    "current_call",
    "__version__",
]
