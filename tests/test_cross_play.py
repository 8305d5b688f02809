"""Cross-play: partner populations frozen with their suites, evaluate -> verify -> board with
held-out partners, and forged partners refused with their own message."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import mallm_envs
from mallm_envs.agents.spec import build_agents
from mallm_envs.cli import main
from mallm_envs.core import run_episode
from mallm_envs.leaderboard import build, evaluate, verify_file
from mallm_envs.leaderboard.population import (
    Partner,
    generate_population,
    load_population,
)
from mallm_envs.leaderboard.suites import (
    SuiteError,
    generate_suite,
    load_suite,
    official_variants,
)
from mallm_envs.leaderboard.verify import VerificationError

WRITING = "SummaryPair-v1"  # the cheapest pair env: the round trip runs in seconds
KITCHEN_LAYOUTS = (
    "asymmetric_advantages",
    "coordination_ring",
    "forced_coordination",
    "counter_circuit",
)
POPULATED = (
    "CodePair-v0",
    "CoopCode-v0",
    "CodePair-v1",
    "CoopCode-v1",
    "SummaryPair-v0",
    "SummaryPair-v1",
    "ExpandPair-v0",
    "ExpandPair-v1",
    "Kitchen-v0",
    "KitchenNumeric-v0",
    *(
        f"{env}@{layout}"
        for env in ("Kitchen-v0", "KitchenNumeric-v0")
        for layout in KITCHEN_LAYOUTS
    ),
)


# ------------------------------------------------------------------ populations and suites


@pytest.mark.parametrize("board_id", ["Kitchen-v0", "CoopCode-v1", WRITING])
def test_frozen_population_matches_its_code(board_id: str) -> None:
    assert load_population(board_id) == generate_population(board_id), (
        f"{board_id}: the partners changed; freeze the population again "
        "(python -m mallm_envs.leaderboard.population ID): a new cross-play suite version"
    )


@pytest.mark.slow
@pytest.mark.parametrize("board_id", POPULATED)
def test_every_frozen_population_matches_its_code(board_id: str) -> None:
    assert load_population(board_id) == generate_population(board_id)


def test_every_two_seat_env_with_a_scripted_partner_has_a_population() -> None:
    for env_id, spec in mallm_envs.registry.items():
        if spec.family in ("code", "writing", "kitchen") and len(spec.agents) == 2:
            assert env_id in POPULATED, env_id
    for board_id in POPULATED:
        population = load_population(board_id)
        assert population.suite_digest == load_suite(board_id).digest
        assert len(population.partners) >= 2


def test_population_digest_covers_suite_and_partner_behaviour() -> None:
    population = load_population("Kitchen-v0")
    first = population.partners[0]
    changed = Partner(**{**first.__dict__, "fingerprint": "0" * 16})
    other = type(population)(
        population.board_id,
        population.suite_digest,
        population.episodes_per_seat,
        (changed, *population.partners[1:]),
    )
    assert other.digest != population.digest
    moved = type(population)(
        population.board_id, "feedface", population.episodes_per_seat, population.partners
    )
    assert moved.digest != population.digest


def test_every_kitchen_layout_has_an_official_suite() -> None:
    for env_id in ("Kitchen-v0", "KitchenNumeric-v0"):
        variants = {suite.variant: suite for suite in official_variants(env_id)}
        assert sorted(variants) == sorted(KITCHEN_LAYOUTS)
        for layout, suite in variants.items():
            assert suite.kwargs() == {"layout": layout}
            assert suite == generate_suite(suite.board_id, env_kwargs={"layout": layout})
            assert suite.digest != load_suite(env_id).digest


def test_plain_suites_keep_their_digest() -> None:
    # Digests recorded by the committed submissions before variants existed.
    assert load_suite("Kitchen-v0").to_dict().keys() == {"format", "env_id", "episodes"}
    for path in sorted(Path("leaderboards").glob("*/*.json.gz"))[:6]:
        data = json.loads(gzip.decompress(path.read_bytes()))
        assert data["suite_digest"] == load_suite(data["env_id"]).digest, path


def test_malformed_variant_names_are_refused() -> None:
    with pytest.raises(SuiteError, match="malformed variant"):
        load_suite("Kitchen-v0@../../etc")
    with pytest.raises(SuiteError, match="no official suite"):
        load_suite("Kitchen-v0@no_such_layout")


@pytest.mark.parametrize("board_id", ["Kitchen-v0", "KitchenNumeric-v0@forced_coordination"])
def test_kitchen_partners_play_both_seats_deterministically(board_id: str) -> None:
    population = load_population(board_id)
    suite = load_suite(board_id)
    env_id = suite.env_id
    for partner in population.partners:
        for role in partner.roles:
            runs = []
            for _ in range(2):
                env = mallm_envs.make(env_id, **suite.kwargs())
                agents = build_agents("scripted", env)
                agents[role] = partner.build(env, role)
                runs.append(run_episode(env, agents, seed=3))
            assert runs[0].to_json() == runs[1].to_json(), (partner.name, role)
            assert runs[0].team_return > 0, (partner.name, role)


# ------------------------------------------------------------------ round trip


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    """A boards folder with self-play and cross-play entries for the writing pair, made
    through the command line as a submitter would."""
    root = tmp_path_factory.mktemp("boards")
    for agent in ("scripted", "fixed:A short text."):
        name = agent.split(":")[0]
        for cross, where in ((False, root / WRITING), (True, root / WRITING / "cross-play")):
            args = ["evaluate", WRITING, "--agent", agent, "--quiet", "--name", name]
            args += ["--out", str(where / f"{name}.json.gz")]
            assert main([*args, "--cross-play"] if cross else args) == 0
    return root


def test_cross_play_round_trip(boards: Path, capsys) -> None:
    path = boards / WRITING / "cross-play" / "scripted.json.gz"
    data = json.loads(gzip.decompress(path.read_bytes()))
    population = load_population(WRITING)
    games = population.games(load_suite(WRITING))
    assert data["cross_play"]["population_digest"] == population.digest
    assert len(data["episodes"]) == len(games) == len(data["cross_play"]["games"])
    for game, episode in zip(data["cross_play"]["games"], data["episodes"]):
        # Every transcript records which partner filled which seat.
        assert episode["agent_descriptions"][game["partner_role"]]["partner"] == game["partner"]
        others = [r for r in episode["agents"] if r != game["partner_role"]]
        assert all(episode["agent_descriptions"][r].get("class") == "scripted" for r in others)
    assert main(["verify", "--reproduce", str(path)]) == 0
    assert "cross-play" in capsys.readouterr().out
    built, failures, _written = build(boards)
    assert failures == []
    table = (boards / WRITING / "cross-play" / "README.md").read_text()
    assert "worst partner" in table and "gap (self - cross)" in table
    assert "with terse" in table and "with expansive" in table
    row = next(line for line in table.splitlines() if "| scripted |" in line)
    self_play = built[WRITING][0] if built[WRITING][0].name == "scripted" else built[WRITING][1]
    assert f"{self_play.summary['team_return']['mean']:.3f}" in row
    site = (boards / "site" / "index.html").read_text()
    assert f'id="{WRITING}-cross-play"' in site and "self-play (grey)" in site
    assert f"## {WRITING}: cross-play" in (boards / "BOARDS.md").read_text()


def _load(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def _write(path: Path, data: dict) -> Path:
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    return path


def test_a_cross_play_file_on_the_self_play_board_is_refused(boards: Path, tmp_path) -> None:
    root = tmp_path / "b"
    (root / WRITING).mkdir(parents=True)
    source = boards / WRITING / "cross-play" / "scripted.json.gz"
    (root / WRITING / "scripted.json.gz").write_bytes(source.read_bytes())
    _, failures, _ = build(root, reproduce=False)
    assert len(failures) == 1 and "belongs in" in failures[0]


def test_swapped_in_partner_fails_with_its_own_message(boards: Path, tmp_path, monkeypatch) -> None:
    """A submitter who plays with an easier partner of their own, but records the official
    partner's name, is caught: the verifier re-runs the official partner."""
    from mallm_envs.envs.writing.agents import KeyPhraseWriter

    original = Partner.build

    def swapped(self, env, role):
        official = original(self, env, role)
        if self.name != "terse":
            return official

        class Impostor(KeyPhraseWriter):  # writes the scripted text, claims to be "terse"
            def describe(self):
                return official.describe()

        return Impostor(env, role)

    monkeypatch.setattr(Partner, "build", swapped)
    forged = evaluate(
        WRITING,
        lambda env: build_agents("scripted", env),
        agent_info={"name": "forger", "spec": "scripted"},
        progress=False,
        cross_play=True,
    )
    monkeypatch.setattr(Partner, "build", original)
    path = forged.save(tmp_path / "forged.json.gz")
    with pytest.raises(VerificationError) as caught:
        verify_file(path)
    assert caught.value.code == "partner", str(caught.value)
    assert "the official partner 'terse'" in str(caught.value)
    assert "was not played with the official partner" in str(caught.value)


def test_forged_partner_description_fails(boards: Path, tmp_path) -> None:
    data = _load(boards / WRITING / "cross-play" / "scripted.json.gz")
    role = data["cross_play"]["games"][0]["partner_role"]
    data["episodes"][0]["agent_descriptions"][role] = {"class": "partner", "partner": "mine"}
    with pytest.raises(VerificationError) as caught:
        verify_file(_write(tmp_path / "f.json.gz", data))
    assert caught.value.code == "partner" and "describes itself" in str(caught.value)


def test_other_population_and_reordered_games_fail(boards: Path, tmp_path) -> None:
    data = _load(boards / WRITING / "cross-play" / "scripted.json.gz")
    stale = json.loads(json.dumps(data))
    stale["cross_play"]["population_digest"] = "0123456789abcdef"
    with pytest.raises(VerificationError) as caught:
        verify_file(_write(tmp_path / "a.json.gz", stale))
    assert caught.value.code == "population" and "official population" in str(caught.value)
    swapped = json.loads(json.dumps(data))
    games = swapped["cross_play"]["games"]
    last = next(i for i, g in enumerate(games) if g["partner"] != games[0]["partner"])
    games[0], games[last] = games[last], games[0]
    with pytest.raises(VerificationError) as caught:
        verify_file(_write(tmp_path / "b.json.gz", swapped))
    assert caught.value.code == "cross-play" and "the official game 0" in str(caught.value)
    short = json.loads(json.dumps(data))
    short["cross_play"]["games"].pop()
    with pytest.raises(VerificationError) as caught:
        verify_file(_write(tmp_path / "c.json.gz", short))
    assert caught.value.code == "cross-play"


def test_kitchen_layout_variant_round_trip(tmp_path, capsys) -> None:
    board_id = "Kitchen-v0@forced_coordination"
    out = tmp_path / board_id / "scripted.json.gz"
    assert main(["evaluate", board_id, "--agent", "scripted", "--quiet", "--out", str(out)]) == 0
    assert "unofficial" not in capsys.readouterr().out
    report = verify_file(out)
    assert report.board_id == board_id
    assert report.submission.env_spec["kwargs"]["layout"] == "forced_coordination"
    # The layout given as an env argument is the same official variant.
    again = tmp_path / "again.json.gz"
    args = ["evaluate", "Kitchen-v0", "--agent", "scripted", "--quiet", "--out", str(again)]
    assert main([*args, "--env-kwargs", '{"layout": "forced_coordination"}']) == 0
    assert verify_file(again).board_id == board_id
    # A variant's file on the plain board is refused.
    (tmp_path / "Kitchen-v0").mkdir()
    (tmp_path / "Kitchen-v0" / "x.json.gz").write_bytes(out.read_bytes())
    _, failures, _ = build(tmp_path, reproduce=False)
    assert any(f"a {board_id} submission in the Kitchen-v0 board" in f for f in failures)
    # Another layout that no suite declares stays unofficial.
    other = tmp_path / "other.json.gz"
    args = ["evaluate", "Kitchen-v0", "--agent", "scripted", "--quiet", "--out", str(other)]
    assert main([*args, "--env-kwargs", '{"horizon": 40}']) == 0
    with pytest.raises(VerificationError, match="unofficial"):
        verify_file(other)


def test_a_tampered_cross_play_reward_fails_replay(boards: Path, tmp_path) -> None:
    data = _load(boards / WRITING / "cross-play" / "scripted.json.gz")
    step = next(s for s in data["episodes"][3]["steps"] if s["reward"])
    step["reward"] += 1.0
    with pytest.raises(VerificationError) as caught:
        verify_file(_write(tmp_path / "t.json.gz", data))
    assert caught.value.code == "replay" and "episode 3" in str(caught.value)


def test_docstring_examples() -> None:
    import doctest

    from mallm_envs.envs.code import partners as code_partners
    from mallm_envs.leaderboard import board, suites

    for module in (board, suites, code_partners):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
