"""The old name of :mod:`mallm_envs.envs.kitchen.scripted`, the family's scripted policies.

Entry points recorded in registered specs, transcripts and submissions name this module
(``mallm_envs.envs.kitchen.agents:GreedyChef``), so it stays importable: importing it gives the
``scripted`` module itself. New code imports ``scripted``.
"""

import sys

from mallm_envs.envs.kitchen import scripted

sys.modules[__name__] = scripted
