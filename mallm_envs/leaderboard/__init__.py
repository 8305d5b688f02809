"""Leaderboards: evaluate an agent on an official suite, verify a submission by replay (and
reproduce its declared agent where possible), build boards ranked by each env's primary measure."""

from mallm_envs.leaderboard.board import build
from mallm_envs.leaderboard.submission import Submission, evaluate, summarize
from mallm_envs.leaderboard.suites import Suite, generate_suite, load_suite
from mallm_envs.leaderboard.verify import (
    VerificationError,
    VerifyReport,
    reproduce,
    verify_file,
    verify_submission,
)

__all__ = [
    "Submission",
    "Suite",
    "VerificationError",
    "VerifyReport",
    "build",
    "evaluate",
    "generate_suite",
    "load_suite",
    "reproduce",
    "summarize",
    "verify_file",
    "verify_submission",
]
