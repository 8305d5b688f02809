"""The worker program's protocol: length-prefixed JSON frames, and the run's exit codes.

Frames of a 4-byte big-endian length and a UTF-8 JSON document, on the server's stdin
(requests from the judge; after the compiled worker code) and stdout (answers). Part of the
worker program (see :mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import json
import os

from mallm_envs.sandbox.zygote.linux import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

EXIT_SETUP_FAILED = 72  # the run could not apply its limits: an infrastructure error
EXIT_CHANNEL_LOST = 71  # the run could not write to its result channel


def read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        try:
            chunk = os.read(fd, min(n, 1 << 20))
        except InterruptedError:  # pragma: no cover - PEP 475 retries already
            continue
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    head = read_exact(fd, 4)
    if head is None:
        return None
    body = read_exact(fd, int.from_bytes(head, "big"))
    if body is None:
        return None
    return json.loads(body)


def write_frame(fd: int, obj: Any) -> None:
    body = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    data = len(body).to_bytes(4, "big") + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
