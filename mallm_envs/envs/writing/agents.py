"""The old name of :mod:`mallm_envs.envs.writing.scripted`, the family's scripted policies.

Entry points recorded in registered specs, transcripts and submissions name this module
(``mallm_envs.envs.writing.agents:KeyPhraseWriter``), so it stays importable: importing it gives the
``scripted`` module itself. New code imports ``scripted``.
"""

import sys

from mallm_envs.envs.writing import scripted

sys.modules[__name__] = scripted
