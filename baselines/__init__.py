"""Baselines: readable trainers, one algorithm per file, run as modules from a checkout.

* ``python -m baselines.magrpo``: MAGRPO (group-relative policy optimisation for LLM teams);
* ``python -m baselines.maac``: actor-critic with a shared (or per-agent) critic;
* ``baselines.common``: the plumbing they share (run folder, resume, logging, evaluation,
  saving); the checkpoint and policy format itself lives in ``mallm_envs.agents.checkpoint``.
"""
