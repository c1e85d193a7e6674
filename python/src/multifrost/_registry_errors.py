"""The registry's errors (`multifrost.RegistryError` and its subclasses)."""

from __future__ import annotations


class RegistryError(RuntimeError):
    """The registry could not be read, locked or written."""


class ServiceAlreadyRunningError(RegistryError):
    """Another live process owns the service id."""

    def __init__(self, service_id: str, pid: int, port: int) -> None:
        super().__init__(f"Service '{service_id}' already running (PID: {pid}, port: {port})")
        self.service_id = service_id
        self.pid = pid
        self.port = port


class ServiceNotFoundError(RegistryError, TimeoutError):
    def __init__(self, service_id: str, timeout: float) -> None:
        super().__init__(f"Service '{service_id}' not found within {timeout:g}s")
        self.service_id = service_id
