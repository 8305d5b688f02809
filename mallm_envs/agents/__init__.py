"""Agents: the protocol, model-free agents, and (with the ``llm`` extra) LLM agents."""

from mallm_envs.agents.base import Agent, BaseAgent, FixedAgent, RandomAgent

__all__ = ["Agent", "BaseAgent", "FixedAgent", "RandomAgent"]
