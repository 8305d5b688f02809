"""CommonWord: two agents must name the same word without talking.

| | |
|---|---|
| Id | `CommonWord-v0`, `CommonWord-v1` |
| Agents | `agent_0`, `agent_1` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: the word list, the rules, feedback |
| Action | text: one word from the agent's own list |
| Reward | team: +1.0 agreement, -0.25 per unusable answer, -0.1 per turn without agreement |
| Max turns | v0: 2, v1: 1 (argument `max_turns`) |

Description
-----------
A coordination game in the spirit of Schelling's focal points. Each agent sees a list of
`list_size` words drawn from a bundled vocabulary. Both lists hold the same words; with
`shuffle=True` each agent sees them in its own order. The team scores when both agents
answer with the same word. Nothing is said between the agents during a turn; between turns
each agent sees what both answered. A team can succeed by agreeing on a convention (the
first word, the alphabetically first word, ...) or by copying the partner's last answer.

It is small on purpose: a model trained from scratch can learn it in minutes on a CPU, so it
serves as the smoke test of multi-agent trainers, and as the first example of the core API.

Observation
-----------
The prompt states the rules, the agent's word list, the turn, and the answers of the
previous turn. In the sequential schedule `agent_1` also sees `agent_0`'s answer of the
current turn.

Actions and invalid actions
---------------------------
An answer is read by stripping whitespace, surrounding quotes and a final full stop, and
lower-casing. It must then be exactly one word of the agent's own list. Anything else
(empty text, several words, a word not in the list, text the core refuses) is unusable: it
costs -0.25 and `infos[agent]["invalid_reason"]` says why.

Rewards
-------
Per turn, the same for both agents, with components in `infos[agent]["reward_components"]`:

- `agreement`: 1.0 when both answers are usable and equal, else 0;
- `invalid_penalty`: -0.25 per unusable answer;
- `turn_cost`: -0.1 when the turn ends without agreement.

A team that agrees in the first turn earns 1.0; one that never agrees and always answers
validly earns -0.1 per turn.

Episode end
-----------
Terminated when the agents agree; truncated after `max_turns` turns.

Arguments
---------
- `list_size` (int, 2-16; registered 4 in v0, 16 in v1): words per list.
- `shuffle` (bool, default False): each agent sees the list in its own order.
- `max_turns` (int >= 1; registered 2 in v0, 1 in v1).
- `schedule` (`"simultaneous"` or `"sequential"`).
- `render_mode` (`None`, `"ansi"`, `"human"`).

`reset(options={"words": [...]})` fixes the word list (for tests and evaluation).

Version history
---------------
- v1: the same rules registered with `list_size=16` and `max_turns=1`. With 16 of the 64
  vocabulary words in the list, a language model trained from scratch stumbles on valid
  answers often enough to learn from them; this is the task of `make demo`.
- v0: initial version (`list_size=4`, `max_turns=2`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mallm_envs.core import CoopTextEnv, TurnResult
from mallm_envs.core.errors import EnvArgumentError

VOCABULARY: tuple[str, ...] = tuple(
    [
        "apple",
        "river",
        "stone",
        "cloud",
        "table",
        "window",
        "garden",
        "bridge",
        "candle",
        "forest",
        "mountain",
        "ocean",
        "pencil",
        "ladder",
        "basket",
        "mirror",
        "violin",
        "rocket",
        "castle",
        "meadow",
        "island",
        "desert",
        "harbor",
        "jacket",
        "lantern",
        "compass",
        "anchor",
        "feather",
        "blanket",
        "kettle",
        "carpet",
        "saddle",
        "tunnel",
        "valley",
        "glacier",
        "orchard",
        "pepper",
        "walnut",
        "cherry",
        "tomato",
        "barrel",
        "hammer",
        "needle",
        "button",
        "ribbon",
        "wagon",
        "engine",
        "planet",
        "comet",
        "thunder",
        "rainbow",
        "shadow",
        "marble",
        "silver",
        "copper",
        "velvet",
        "cotton",
        "canvas",
        "pillow",
        "teapot",
        "bottle",
        "helmet",
        "trumpet",
        "whistle",
    ]
)
AGREEMENT = 1.0
INVALID_PENALTY = -0.25
TURN_COST = -0.1


def parse_answer(text: str) -> str:
    """The normalised answer: stripped of whitespace, quotes and a final full stop, lower-case.

    >>> parse_answer('  "River." ')
    'river'
    """
    answer = text.strip().strip("\"'`").strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip().lower()


class CommonWordEnv(CoopTextEnv):
    """See the module docstring."""

    metadata = {
        "name": "common_word_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        *,
        list_size: int = 4,
        shuffle: bool = False,
        max_turns: int = 2,
        schedule: str = "simultaneous",
        render_mode: str | None = None,
    ) -> None:
        if (
            not isinstance(list_size, int)
            or isinstance(list_size, bool)
            or not 2 <= list_size <= 16
        ):
            raise EnvArgumentError(f"list_size must be an int in [2, 16], got {list_size!r}")
        if not isinstance(shuffle, bool):
            raise EnvArgumentError(f"shuffle must be a bool, got {shuffle!r}")
        super().__init__(
            agents=("agent_0", "agent_1"),
            schedule=schedule,
            max_turns=max_turns,
            max_action_chars=200,
            max_observation_chars=2_000,
            render_mode=render_mode,
        )
        self.list_size = list_size
        self.shuffle = shuffle

    @property
    def data_hash(self) -> str:
        return hashlib.sha256(" ".join(VOCABULARY).encode()).hexdigest()[:16]

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        words = options.get("words")
        if words is None:
            picks = rng.choice(len(VOCABULARY), size=self.list_size, replace=False)
            words = [VOCABULARY[int(i)] for i in picks]
        else:
            if (
                not isinstance(words, (list, tuple))
                or len(words) != self.list_size
                or len(set(words)) != len(words)
                or not all(isinstance(w, str) and w in VOCABULARY for w in words)
            ):
                raise EnvArgumentError(
                    f"options['words'] must be {self.list_size} distinct words of the vocabulary"
                )
            words = list(words)
        self.words = {agent: list(words) for agent in self.possible_agents}
        if self.shuffle:
            for agent in self.possible_agents:
                order = rng.permutation(self.list_size)
                self.words[agent] = [words[int(i)] for i in order]

    def _prompt(self, agent: str) -> str:
        lines = [
            "You and your partner each see the same words. Without talking, both of you must "
            "answer with the same word. Answer with one word from your list and nothing else.",
            f"Your words: {', '.join(self.words[agent])}",
            f"Turn {min(self.turn + 1, self.max_turns)} of {self.max_turns}.",
        ]
        if self.history:
            last = self.history[-1]
            said = {a: self._shown(last.actions[a]) for a in self.possible_agents}
            partner = next(a for a in self.possible_agents if a != agent)
            lines.append(f"Last turn you said {said[agent]} and your partner said {said[partner]}.")
        for partner, action in self.visible_actions(agent).items():
            lines.append(f"Your partner ({partner}) has already answered: {self._shown(action)}")
        return "\n".join(lines)

    @staticmethod
    def _shown(action: str) -> str:
        answer = parse_answer(action)
        if answer in VOCABULARY:
            return f'"{answer}"'
        return "something that is not a word from the list"

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        answers: dict[str, str] = {}
        invalid: dict[str, str] = {}
        for agent, action in actions.items():
            if action is None:
                continue  # the core refused it and recorded why
            answer = parse_answer(action)
            if answer in self.words[agent]:
                answers[agent] = answer
            elif not answer:
                invalid[agent] = "empty answer; answer with one word from your list"
            elif len(answer.split()) > 1:
                invalid[agent] = "answer with exactly one word, not several"
            else:
                invalid[agent] = f"{answer[:40]!r} is not one of your words"
        unusable = len(actions) - len(answers)
        agreed = len(answers) == len(actions) and len(set(answers.values())) == 1
        components = {
            "agreement": AGREEMENT if agreed else 0.0,
            "invalid_penalty": INVALID_PENALTY * unusable if unusable else 0.0,
            "turn_cost": 0.0 if agreed else TURN_COST,
        }
        events = [f"{a} answered {answers.get(a, '(unusable)')}" for a in self.possible_agents]
        events.append("agreed" if agreed else "no agreement")
        return TurnResult(
            reward=sum(components.values()),
            components=components,
            events=tuple(events),
            invalid=invalid,
            terminated=agreed,
            agent_infos={a: {"success": agreed} for a in self.possible_agents},
        )

    def _state_text(self) -> str:
        lines = [f"turn {self.turn}/{self.max_turns}, schedule {self.schedule}"]
        lines += [f"{a} words: {', '.join(self.words[a])}" for a in self.possible_agents]
        for record in self.history:
            said = ", ".join(f"{a}={self._shown(record.actions[a])}" for a in self.possible_agents)
            lines.append(f"turn {record.turn + 1}: {said}; reward {record.result.reward:+.2f}")
        return "\n".join(lines)

    def _render_text(self) -> str:
        return self._state_text()


class ConventionAgent:
    """Scripted partner: repeats the partner's last usable answer, else the alphabetically first word.

    Two of them agree in the first turn whatever the order of their lists.
    """

    def __init__(self, env: Any, agent: str) -> None:
        self.env = env.unwrapped
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        text = observation["text"]
        words_line = next(line for line in text.splitlines() if line.startswith("Your words: "))
        words = words_line[len("Your words: ") :].split(", ")
        for line in reversed(text.splitlines()):
            if "your partner said" in line or "has already answered" in line:
                said = line.rsplit(" ", 1)[-1].strip('".')
                if said in words:
                    return said
        return sorted(words)[0]

    def describe(self) -> dict[str, Any]:
        return {"class": "scripted", "policy": "copy partner, else alphabetically first"}
