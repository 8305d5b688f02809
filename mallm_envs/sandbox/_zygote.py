"""The worker program's old single-file name, kept for code that imports from it.

The worker program now lives in :mod:`mallm_envs.sandbox.zygote` (one program in several
files, joined and compiled once per judge process). Importing this module imports the server
part; nothing here is sent to a worker.
"""

from mallm_envs.sandbox.zygote.server import PRELOAD

__all__ = ["PRELOAD"]
