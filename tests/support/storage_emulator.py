"""An in-process gcp-storage-emulator on a free port, for google-cloud-storage tests.

google-cloud-storage talks to it when `STORAGE_EMULATOR_HOST` names it; it accepts
any credentials and does not verify signed-URL signatures or ACLs.
"""

from __future__ import annotations

from typing import Any

from gcp_storage_emulator.server import create_server


class StorageEmulator:
    def __init__(self, default_bucket: str = "reeltrace-default") -> None:
        self._server: Any = create_server("127.0.0.1", 0, in_memory=True, default_bucket=default_bucket)

    def start(self) -> StorageEmulator:
        self._server.start()
        return self

    @property
    def host(self) -> str:
        """`http://127.0.0.1:<port>`: the value for STORAGE_EMULATOR_HOST."""
        # The emulator binds port 0 itself; its thread holds the bound server.
        port = self._server._api._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> StorageEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
