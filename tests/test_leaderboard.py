"""The leaderboard: what `bitr leaderboard add` accepts and refuses (every number is recomputed
from the episodes), what `render` writes, and that strings from result files stay text (in
Markdown, in HTML, and in a real browser)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from bitr_envs.datasets import storage
from bitr_envs.files import write_json_atomic
from bitr_envs.registry import entry
from bitr_eval import filing
from bitr_eval.board_cells import sections, standings
from bitr_eval.cli import main
from bitr_eval.filing import ENTRY_FILE, slug
from bitr_eval.leaderboard import render
from bitr_eval.results import SCHEMA_VERSION, validate
from bitr_eval.scoring import aggregates, expected_episodes, score_episodes
from bitr_eval.suites import suite

EVIL_NAME = "<script>alert(1)</script>"
EVIL_FAILURE = "agent.act raised ValueError: <img src=x onerror=alert(2)>\nTraceback | `more`"
HASH = "a" * 64


@pytest.fixture(autouse=True)
def no_local_data(tmp_path, monkeypatch):
    """No local datasets and no pins unless a test says so: the fake results' hashes are made up
    (and their suites are taken as pinned)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setattr(storage, "pins", lambda: {})
    monkeypatch.setattr(filing, "check_pinned_suite", lambda result: None)


def n_tasks(unit) -> int:
    return len(entry(unit.env_id).env_class.split_tasks(unit.split))


def make_result(name: str, score: float = 50.0, suite_name: str = "tiny", privileged: bool = False,
                failed: str | None = None, failure: str = "agent.act raised ValueError", sha256: str = HASH,
                agent: str = "my_pkg.agent:make", checkpoint: str | None = None, spread: float = 5.0,
                training: dict | None = None, isolation: str = "bwrap") -> dict:
    """A valid result whose numbers follow from its episodes: references 0 (random) and 100 (expert),
    so a return is its score; task t, seed s scores `score` -+ `spread` (alternating tasks) + 2 (s - mid);
    the unit whose id ends with `failed` failed with `failure`; every dataset has the hash `sha256`."""
    chosen = suite(suite_name)
    units = []
    mid = (len(chosen.seeds) - 1) / 2
    for unit in chosen.units:
        broken = failed is not None and unit.unit_id.endswith(failed)
        tasks = n_tasks(unit)
        references = {"random": [0.0] * tasks, "expert": [100.0] * tasks}
        episodes = [{"task": t, "seed": s, "episode": k, "phase": phase,
                     "return": score + (spread if t % 2 else -spread) + 2.0 * (i - mid),
                     "length": entry(unit.env_id).horizon, "success": None}
                    for (t, s, k), phase in expected_episodes(unit, chosen.seeds, tasks).items()
                    for i in [list(chosen.seeds).index(s)]]
        record = {
            "unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split, "protocol": unit.protocol,
            "status": "failed" if broken else "ok", "failure": failure if broken else None,
            "datasets": [{"id": d, "data_sha256": sha256, "content_sha256": sha256}
                         for d in dict.fromkeys((unit.context_dataset, unit.reference_dataset)) if d],
            "references": None if broken else references, "isolation": isolation,
            "episodes": [] if broken else episodes, "scores": [], "summary": None, "first_episode": None,
            "success_rate": None,
        }
        if not broken:
            record.update(score_episodes(unit, chosen.seeds, episodes, references))
        units.append(record)
    submission = {"name": name, "agent": agent, "checkpoint": checkpoint, "agent_args": {}, "privileged": privileged}
    if training is not None:
        submission["training"] = training
    return {
        "schema_version": SCHEMA_VERSION,
        "submission": submission,
        "suite": {"name": chosen.name, "fingerprint": chosen.fingerprint(), "seeds": list(chosen.seeds),
                  "units": [u.unit_id for u in chosen.units]},
        "versions": {"python": "3.11"}, "hardware": {"cpus": 2},
        "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 1.0,
        "units": units, "aggregates": aggregates(units),
    }


def add(tmp_path, result: dict | list[dict], *options: str) -> int:
    """`bitr leaderboard add` of `result` (or of several runs) into tmp_path/board."""
    paths = []
    for k, run in enumerate(result if isinstance(result, list) else [result]):
        path = tmp_path / f"submitted-{k}.json"
        path.write_text(json.dumps(run))
        paths.append(str(path))
    return main(["leaderboard", "add", *paths, "--dir", str(tmp_path / "board"), *options])


def filed(tmp_path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path / "board" / "results"))
                  for p in (tmp_path / "board" / "results").glob("*/*/*.json"))


def test_helper_makes_valid_results():
    validate(make_result("a", failed="online"))
    validate(make_result("b", suite_name="lite"))


def test_add_files_a_valid_result(tmp_path, capsys):
    result = make_result("My Agent v2", failed="online")  # failed units are allowed
    assert add(tmp_path, result) == 0
    folder = tmp_path / "board" / "results" / "tiny" / "my-agent-v2"
    assert json.loads((folder / "run-1.json").read_text()) == result
    assert json.loads((folder / ENTRY_FILE).read_text()) == {"name": "My Agent v2", "runs": ["run-1.json"]}
    assert "accepted" in capsys.readouterr().out


def _schema_invalid(result):
    del result["submission"]["privileged"]


def _other_fingerprint(result):
    result["suite"]["fingerprint"] = "0" * 64


def _unknown_suite(result):
    result["suite"]["name"] = "huge"


def _incomplete(result):
    result["suite"]["units"].pop()
    result["units"].pop()


def _two_hashes_inside(result):
    result["units"][0]["datasets"][0]["data_sha256"] = "b" * 64


def _score_despite_a_failure(result):
    result["units"][-1].update(status="failed", failure="agent process died")  # online


def _nan_score(result):
    result["aggregates"]["protocols"]["online"]["mean"] = float("nan")


def _changed_aggregate(result):
    result["aggregates"]["protocols"]["offline-iid"]["iqm"] += 3.0


def _changed_drop(result):
    result["aggregates"]["ood_drop"]["bitr/PointRobotSparse-v0/test"] = -4.0


def _changed_return(result):
    result["units"][1]["episodes"][7]["return"] += 30.0  # scores and summaries left as they were


def _changed_score(result):
    result["units"][0]["scores"][3][0] += 10.0


def _changed_summary(result):
    result["units"][2]["summary"]["mean_ci95"][1] += 1.0


def _changed_first_episode(result):
    result["units"][2]["first_episode"]["mean"] += 1.0


def _lowered_reference(result):
    result["units"][0]["references"]["expert"][4] = 60.0  # a lower expert: higher scores, not recomputed


def _missing_episode(result):
    del result["units"][1]["episodes"][5]


def _duplicated_episode(result):
    result["units"][1]["episodes"].append(dict(result["units"][1]["episodes"][0]))


def _extra_episode(result):
    result["units"][0]["episodes"].append({**result["units"][0]["episodes"][0], "seed": 7})


def _too_long_episode(result):
    result["units"][0]["episodes"][2]["length"] = 21


def _infinite_return(result):
    result["units"][0]["episodes"][2]["return"] = math.inf


def _wrong_phase(result):
    result["units"][2]["episodes"][0]["phase"] = "score"  # the online unit's exploration episode


def _references_of_another_split(result):
    result["units"][0]["references"] = {"random": [0.0] * 3, "expert": [100.0] * 3}


def _seeds(result):
    result["suite"]["seeds"] = [1]


@pytest.mark.parametrize("spoil, reason", [
    (_schema_invalid, "invalid result at submission: 'privileged' is a required property"),
    (_other_fingerprint, "fingerprint differs"),
    (_unknown_suite, "unknown suite 'huge'"),
    (_incomplete, "must be run whole"),
    (_two_hashes_inside, "mismatched data"),
    (_score_despite_a_failure, "unit point-robot-sparse/test/online: a failed unit holds scores"),
    (_nan_score, "aggregates/protocols/online/mean is nan, the unit records give"),
    (_changed_aggregate, "aggregates/protocols/offline-iid/iqm is"),
    (_changed_drop, "aggregates/ood_drop/bitr/PointRobotSparse-v0/test is -4.0"),
    (_changed_return, "unit point-robot-sparse/test/offline-ood: scores[7][0] is 55.0, the episodes give 85.0"),
    (_changed_score, "unit point-robot-sparse/test/offline-iid: scores[3][0] is 65.0, the episodes give 55.0"),
    (_changed_summary, "unit point-robot-sparse/test/online: summary/mean_ci95[1] is"),
    (_changed_first_episode, "unit point-robot-sparse/test/online: first_episode/mean is"),
    (_lowered_reference, "unit point-robot-sparse/test/offline-iid: scores[4][0] is"),
    (_missing_episode,
     "unit point-robot-sparse/test/offline-ood: episodes: 1 missing (first: task 5, seed 0, episode 0)"),
    (_duplicated_episode,
     "unit point-robot-sparse/test/offline-ood: episodes[10] (task 0, seed 0, episode 0) is duplicated"),
    (_extra_episode, "episodes[10] (task 0, seed 7, episode 0) is not an episode of the unit"),
    (_too_long_episode, "episodes[2] (task 2, seed 0, episode 0): length 21 exceeds the horizon 20"),
    (_infinite_return, "episodes[2] (task 2, seed 0, episode 0): return is not finite"),
    (_wrong_phase, "phase 'score', expected 'explore'"),
    (_references_of_another_split, "references/random must hold one finite return for each of the 10 tasks"),
    (_seeds, "suite/seeds is [1]"),
])
def test_add_refuses_a_result_that_does_not_follow(tmp_path, capsys, spoil, reason):
    result = make_result("mine")
    spoil(result)
    assert add(tmp_path, result) == 2
    err = capsys.readouterr().err
    assert reason in err, err
    assert filed(tmp_path) == []


@pytest.mark.parametrize("spoil", [
    lambda r: r["units"][1]["episodes"][3].update(task=-1),
    lambda r: r["units"][1]["episodes"][3].update(task="a"),
    lambda r: r["units"][1]["episodes"][3].update(task=2.5),
    lambda r: r["units"][1]["episodes"][3].update(task=True),
    lambda r: r["units"][1]["episodes"][3].update(task=2.0),  # an integer to JSON Schema: valid
    lambda r: r["units"][1]["episodes"][3].update(length=0),
    lambda r: r["units"][1]["episodes"][3].update(episode=-10**400),
    lambda r: r["units"][1]["episodes"][3].update(phase="x"),
    lambda r: r["units"][1]["episodes"][3].update(success=1),
    lambda r: r["units"][1]["episodes"][3].update({"return": None}),
    lambda r: r["units"][1]["episodes"][3].pop("seed"),
    lambda r: r["units"][1]["episodes"].__setitem__(3, [1]),
    lambda r: r["units"][1]["episodes"][3].update(task=-1, phase="x"),
    lambda r: r["units"][0]["scores"][2].__setitem__(0, "x"),
    lambda r: r["units"][0]["scores"].__setitem__(2, 5),
    lambda r: r["units"][0].update(status="done"),
])
def test_the_episode_arrays_are_checked_as_json_schema_would(spoil):
    """`validate` checks the episodes and scores column by column, not with jsonschema's walk:
    the same verdict and the same message as jsonschema on the whole SCHEMA."""
    import jsonschema

    from bitr_eval.results import SCHEMA, ResultError

    result = make_result("mine")
    spoil(result)
    try:
        jsonschema.validate(result, SCHEMA)
        expected = None
    except jsonschema.ValidationError as err:
        expected = f"invalid result at {'/'.join(map(str, err.absolute_path))}: {err.message}"
    try:
        validate(result)
        found = None
    except ResultError as err:
        found = str(err)
    assert found == expected


def rescored(result: dict) -> dict:
    """The result with every score, summary and aggregate recomputed honestly from its episodes
    and (possibly changed) references: a careful forgery."""
    chosen = suite(result["suite"]["name"])
    for unit, record in zip(chosen.units, result["units"]):
        if record["status"] == "ok":
            record.update(score_episodes(unit, chosen.seeds, record["episodes"], record["references"]))
    result["aggregates"] = aggregates(result["units"])
    return result


def fake_local_dataset(dataset_id: str, references: dict) -> None:
    """Just the metadata of a local dataset: what the reference check reads."""
    path = storage.metadata_file(dataset_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"bitr_format_version": storage.FORMAT_VERSION, "bitr_reference_returns": references}))


def test_add_refuses_references_that_differ_from_the_local_datasets(tmp_path, capsys):
    result = make_result("mine")
    for record in result["units"]:
        record["references"]["expert"][4] = 60.0
    forged = rescored(result)
    validate(forged)
    fake_local_dataset(suite("tiny").units[0].reference_dataset, {"random": [0.0] * 10, "expert": [100.0] * 10})
    assert add(tmp_path, forged) == 2
    assert ("unit point-robot-sparse/test/offline-iid: references/expert[4] is 60.0, the dataset "
            "bitr/point-robot-sparse/test-iid-tiny-v0 says 100.0") in capsys.readouterr().err
    assert add(tmp_path, make_result("honest")) == 0  # the true references pass


def test_add_refuses_references_that_differ_from_the_board(tmp_path, capsys):
    assert add(tmp_path, make_result("first")) == 0
    result = make_result("second")
    for record in result["units"]:
        record["references"]["random"][0] = -50.0
    assert add(tmp_path, rescored(result)) == 2
    assert "mismatched references: unit point-robot-sparse/test/offline-iid of 'second'" in capsys.readouterr().err


def test_add_refuses_dataset_hashes_that_differ_from_the_pins(tmp_path, capsys, monkeypatch):
    dataset_id = suite("tiny").units[0].context_dataset
    monkeypatch.setattr(storage, "pins", lambda: {dataset_id: {"data_sha256": HASH, "content_sha256": "c" * 64}})
    assert add(tmp_path, make_result("mine")) == 2
    assert (f"unit point-robot-sparse/test/offline-iid: datasets[0]/content_sha256 of {dataset_id} is aaaaaaaaaaaa..., "
            "the benchmark pins cccccccccccc...") in capsys.readouterr().err
    monkeypatch.setattr(storage, "pins", lambda: {dataset_id: {"data_sha256": HASH, "content_sha256": HASH}})
    assert add(tmp_path, make_result("mine")) == 0


def test_add_refuses_a_name_on_the_board_unless_replacing(tmp_path, capsys):
    assert add(tmp_path, make_result("mine", 10.0)) == 0
    assert add(tmp_path, make_result("mine", 20.0)) == 2
    assert "'mine' is already on the tiny board" in capsys.readouterr().err
    assert add(tmp_path, make_result("MINE", 20.0)) == 2  # another name, the same folder name
    assert "choose a name" in capsys.readouterr().err
    assert add(tmp_path, make_result("mine", 20.0), "--replace") == 0
    run = json.loads((tmp_path / "board/results/tiny/mine/run-1.json").read_text())
    assert run["aggregates"]["protocols"]["online"]["mean"] == 20.0
    assert add(tmp_path, make_result("mine", suite_name="quick")) == 0  # the same name on another suite
    assert filed(tmp_path) == ["quick/mine/entry.json", "quick/mine/run-1.json",
                               "tiny/mine/entry.json", "tiny/mine/run-1.json"]


def test_add_refuses_data_that_differ_from_the_board(tmp_path, capsys):
    assert add(tmp_path, make_result("first")) == 0
    assert add(tmp_path, make_result("second", sha256="c" * 64)) == 2
    assert "mismatched data: dataset bitr/point-robot-sparse/" in capsys.readouterr().err
    assert filed(tmp_path) == ["tiny/first/entry.json", "tiny/first/run-1.json"]


def file_entry(directory, name: str, *runs: dict) -> None:
    folder = directory / "results" / runs[0]["suite"]["name"] / slug(name)
    files = [f"run-{k}.json" for k in range(1, len(runs) + 1)]
    for file, run in zip(files, runs):
        write_json_atomic(folder / file, run)
    write_json_atomic(folder / ENTRY_FILE, {"name": name, "runs": files})


def board(tmp_path, *results) -> tuple[str, str]:
    """File each result (or list of runs) as an entry and render; return README.md and index.html."""
    for result in results:
        runs = result if isinstance(result, list) else [result]
        file_entry(tmp_path, runs[0]["submission"]["name"], *runs)
    assert render(tmp_path) == []
    return (tmp_path / "README.md").read_text(), (tmp_path / "index.html").read_text()


def table(readme: str, heading: str, first_cell: str = "| Rank") -> list[list[str]]:
    """The rows (cells) of the first table under `heading` that starts with `first_cell`."""
    lines = readme[readme.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_cell))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_render_ranks_best_first_and_shows_references_apart(tmp_path):
    high = make_result("high", 80.0)
    high["started"] = "2026-02-01T00:00:00+00:00"
    readme, page = board(
        tmp_path, make_result("low", 20.0), high, make_result("tied", 20.0),
        make_result("broken", 90.0, failed="online"), make_result("oracle", 100.0, privileged=True),
        make_result("random", 0.0, agent="random"), make_result("sneaky", 100.0, agent="oracle"))
    iid = table(readme, "### offline-iid")
    assert [(row[0], row[1]) for row in iid] == [("1", "broken"), ("2", "high"), ("3", "low"), ("3", "tied")]
    online = table(readme, "### online")
    assert [(row[0], row[1], row[4]) for row in online][-1] == ("–", "broken", "failed")
    others = table(readme, "### online", "| Role")
    # the file's flag does not decide: the random and oracle specs are anchors, whatever they say
    assert [row[:3] for row in others] == [["privileged", "oracle", "my\\_pkg.agent:make"],
                                           ["anchor", "random", "random"], ["anchor", "sneaky", "oracle"]]
    assert "oracle" not in [row[1] for row in iid] and "random" not in [row[1] for row in iid]
    assert "- broken, point-robot-sparse/test/online: agent.act raised ValueError" in readme
    assert "Latest result started: 2026-02-01T00:00:00+00:00." in readme
    assert 'id="suite-tiny"' in page and page.count("Anchors and privileged references (not ranked)") == 3
    assert board(tmp_path) == (readme, page)  # the same files render the same pages


def test_each_sealing_key_is_a_section_of_its_own_ranked_apart():
    # entries of two keys, or of a key and the public split, were scored on different tasks: a
    # public-split score may even be recognition of the known test tasks
    def view(name, mean, sealed, started):
        return {"name": name, "suite": "tiny", "role": "ranked", "sealed": sealed, "started": started,
                "protocols": {"offline-iid": {"mean": mean}}}

    day = "2026-12-0{}T00:00:00+00:00".format
    views = [view("public best", 99.0, None, day(3)), view("old low", 30.0, "a" * 64, day(1)),
             view("new high", 60.0, "b" * 64, day(2)), view("old high", 50.0, "a" * 64, day(1)),
             {**view("quick public", 10.0, None, day(4)), "suite": "quick"}]
    found = sections(views)
    # sealed sections first, the newest key first; then the public ones in suite order
    assert [(s.title, s.stem) for s in found] == [
        ("tiny, sealed draw bbbbbbbb", "tiny-bbbbbbbb"), ("tiny, sealed draw aaaaaaaa", "tiny-aaaaaaaa"),
        ("tiny", "tiny"), ("quick", "quick")]
    assert [[(rank, v["name"]) for rank, v in standings(s.entries, "offline-iid")] for s in found] == [
        [(1, "new high")], [(1, "old high"), (2, "old low")], [(1, "public best")], [(1, "quick public")]]


def test_render_skips_and_warns_about_invalid_and_old_files(tmp_path, capsys):
    board(tmp_path, make_result("good"))
    (tmp_path / "results" / "tiny" / "bad.json").write_text("{}")
    old = make_result("old one", agent="my_pkg.agent:make", checkpoint="runs/old")
    old["schema_version"] = 1
    write_json_atomic(tmp_path / "results" / "tiny" / "old.json", old)
    outdated = make_result("outdated")
    outdated["suite"]["fingerprint"] = "0" * 64
    file_entry(tmp_path, "outdated", outdated)
    assert main(["leaderboard", "render", "--dir", str(tmp_path)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 3, warnings
    assert "bad.json" in warnings[0]
    assert "old.json: result schema version 1" in warnings[1]
    assert ("make it again with `bitr evaluate --agent my_pkg.agent:make --checkpoint runs/old --name 'old one' "
            "--suite tiny --out NEW.json`") in warnings[1]
    assert "outdated" in warnings[2] and "fingerprint differs" in warnings[2]
    readme = (tmp_path / "README.md").read_text()
    assert "good" in readme and "outdated" not in readme and "old one" not in readme


def counting_verify(monkeypatch) -> list:
    """Count the full checks of a result's numbers (`scoring.verify`, as the checks call it)."""
    from bitr_eval import checks

    calls, real = [], checks.verify

    def verify(result, suite):
        calls.append(result["submission"]["name"])
        real(result, suite)

    monkeypatch.setattr(checks, "verify", verify)
    return calls


def test_render_does_not_check_unchanged_files_again(tmp_path, monkeypatch):
    """A file is checked in full when it is filed; renders read what that check kept of its
    bytes. Another cache (other checking code, another machine) checks it again."""
    calls = counting_verify(monkeypatch)
    assert add(tmp_path, make_result("first")) == 0 and add(tmp_path, make_result("second", 60.0)) == 0
    assert calls == ["first", "second"]  # each new file once; "first" was read from the cache by the second add
    readme = (tmp_path / "board" / "README.md")
    for _ in range(2):
        assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    assert calls == ["first", "second"]
    assert "| 1 | second |" in readme.read_text() and "| 2 | first |" in readme.read_text()
    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path / "another-cache"))
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    assert sorted(calls) == ["first", "first", "second", "second"]


def test_a_file_edited_after_filing_is_refused(tmp_path, capsys):
    """The cache is keyed by the file's bytes: an edited file misses it and is checked in full."""
    assert add(tmp_path, make_result("honest")) == 0
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    run = tmp_path / "board" / "results" / "tiny" / "honest" / "run-1.json"
    result = json.loads(run.read_text())
    result["units"][1]["episodes"][7]["return"] += 30.0
    run.write_text(json.dumps(result))
    capsys.readouterr()
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    warnings = capsys.readouterr().err
    assert f"skipped entry {run.parent}: {run}: unit point-robot-sparse/test/offline-ood: scores[7][0]" in warnings
    assert "honest" not in (tmp_path / "board" / "README.md").read_text()


def test_what_may_change_on_this_machine_is_checked_on_every_render(tmp_path, capsys, monkeypatch):
    """A cached file still meets the pins of today (and the local datasets, and the suites)."""
    assert add(tmp_path, make_result("mine")) == 0
    dataset_id = suite("tiny").units[0].context_dataset
    monkeypatch.setattr(storage, "pins", lambda: {dataset_id: {"data_sha256": HASH, "content_sha256": "c" * 64}})
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    assert "the benchmark pins cccccccccccc..." in capsys.readouterr().err


def test_a_damaged_cache_is_checked_again(tmp_path, monkeypatch):
    calls = counting_verify(monkeypatch)
    assert add(tmp_path, make_result("mine")) == 0
    from bitr_eval.check_cache import cache_root

    damaged = list(cache_root().rglob("*.json"))
    assert len(damaged) == 1
    damaged[0].write_text("{not json")
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    assert calls == ["mine", "mine"] and "mine" in (tmp_path / "board" / "README.md").read_text()


def test_the_committed_board_passes_every_check_and_its_pages_are_current(tmp_path):
    """Every filed number recomputed and every checksum pinned; the committed README, web page,
    figures and the results page's tables are what `bitr leaderboard render --results-page` makes of them."""
    import pathlib

    root = pathlib.Path(__file__).parent.parent
    shutil.copytree(root / "leaderboard" / "results", tmp_path / "leaderboard" / "results")
    (tmp_path / "docs").mkdir()
    shutil.copy(root / "docs" / "results.md", tmp_path / "docs" / "results.md")
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "leaderboard")]) == 0  # and docs/results.md
    readme = (tmp_path / "leaderboard" / "README.md").read_text()
    assert "| 1 | BITR (quick) | bitr\\_agent:load | 3; re-played 9 units: matched |" in readme
    assert readme == (root / "leaderboard" / "README.md").read_text()
    assert (tmp_path / "leaderboard" / "index.html").read_text() == (root / "leaderboard" / "index.html").read_text()
    assert (tmp_path / "docs" / "results.md").read_text() == (root / "docs" / "results.md").read_text()
    plots = tmp_path / "leaderboard" / "plots"
    assert sorted(p.name for p in (root / "leaderboard" / "plots").iterdir()) == sorted(p.name for p in plots.iterdir())
    for plot in plots.iterdir():
        assert plot.read_text() == (root / "leaderboard" / "plots" / plot.name).read_text()


def test_a_board_of_your_own_leaves_the_repository_as_it_is(tmp_path, monkeypatch):
    """The main job's last commands (README): `add --dir runs/board` and `render --dir runs/board`
    file and draw a board in the user's folder; the repository's board and its results page are
    untouched (and runs/ is ignored by git). Only the repository's own board refreshes the page."""
    import pathlib

    root = pathlib.Path(__file__).parent.parent
    assert "/runs/" in (root / ".gitignore").read_text().split()
    repository = tmp_path / "repo"
    (repository / "docs").mkdir(parents=True)
    shutil.copy(root / "docs" / "results.md", repository / "docs" / "results.md")
    file_entry(repository / "leaderboard", "theirs", make_result("theirs"))
    before = {p: p.read_bytes() for p in repository.rglob("*") if p.is_file()}
    (tmp_path / "result.json").write_text(json.dumps(make_result("BITR (quick, yours)", 70.0)))
    monkeypatch.chdir(repository)
    for board in ("runs/board", "board"):  # below the repository's root or beside its docs/
        assert main(["leaderboard", "add", str(tmp_path / "result.json"), "--dir", board, "--replace"]) == 0
        assert main(["leaderboard", "render", "--dir", board]) == 0
        assert "BITR (quick, yours)" in (repository / board / "README.md").read_text()
        assert (repository / board / "plots" / "tiny.svg").is_file()
    assert {p: p.read_bytes() for p in before} == before
    assert not (repository / "leaderboard" / "README.md").exists()
    assert main(["leaderboard", "render"]) == 0  # the repository's own board: its page too
    assert "theirs" in (repository / "docs" / "results.md").read_text()


def test_the_results_page_needs_its_table_block(tmp_path):
    """A page without the block (or with its lines swapped) is refused before anything is written."""
    from bitr_eval.board_markdown import RESULTS_BEGIN, RESULTS_END

    for text in ("# Results\n\nno block here\n", f"{RESULTS_END}\n{RESULTS_BEGIN}\n"):
        page = tmp_path / "results.md"
        page.write_text(text)
        with pytest.raises(ValueError, match="no table block"):
            render(tmp_path, page)
        assert page.read_text() == text and not (tmp_path / "README.md").exists()
    assert main(["leaderboard", "render", "--dir", str(tmp_path), "--results-page", str(tmp_path / "nope.md")]) == 2


def test_figures_follow_the_board(tmp_path):
    """One figure per suite on the board, linked from the results page; a suite that left the
    board takes its figure with it."""
    from bitr_eval.board_markdown import RESULTS_BEGIN, RESULTS_END

    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "lite.svg").write_text("<svg/>")  # a suite no entry is filed in any more
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text(f"# R\n{RESULTS_BEGIN}\n{RESULTS_END}\n")
    board(tmp_path, make_result("good"))
    render(tmp_path, page)
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["tiny.svg"]
    assert "](../plots/tiny.svg)" in page.read_text()


def test_strings_from_results_are_escaped(tmp_path):
    result = make_result(EVIL_NAME, failed="online", failure=EVIL_FAILURE)
    result["submission"]["agent"] = "evil|agent`x`"
    readme, page = board(tmp_path, result)
    for text in (readme, page):
        assert "<script>alert" not in text and "<img" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "evil\\|agent\\`x\\`" in readme and "Traceback" not in readme  # one line per failure
    assert "<code>evil|agent`x`</code>" in page
    # the figures and the results page's tables too; a control character keeps the figure valid XML
    from xml.etree import ElementTree

    from bitr_eval.board_markdown import RESULTS_BEGIN, RESULTS_END

    result = make_result(EVIL_NAME + "\x01", failed="online", failure=EVIL_FAILURE)
    results_page = tmp_path / "results.md"
    results_page.write_text(f"{RESULTS_BEGIN}\n{RESULTS_END}\n")
    file_entry(tmp_path, result["submission"]["name"], result)
    assert render(tmp_path, results_page) == []
    figure = (tmp_path / "plots" / "tiny.svg").read_text()
    ElementTree.fromstring(figure)
    for text in (figure, results_page.read_text()):
        assert "<script>alert" not in text and "<img" not in text


# A real browser on index.html ---------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install playwright")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_index_html_in_a_browser(tmp_path, browser):
    alpha = [make_result("alpha", 69.0, "lite", checkpoint="runs/a1"),
             make_result("alpha", 71.0, "lite", checkpoint="runs/a2")]
    results = [alpha, make_result("gamma", 55.0, "lite", failed="reach-sparse/test/online"),
               make_result(EVIL_NAME, 40.0, "lite", failed="cheetah-vel/test/online", failure=EVIL_FAILURE),
               make_result("oracle", 100.0, "lite", privileged=True)]
    board(tmp_path, *results)
    page = browser.new_page()
    errors, dialogs = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((tmp_path / "index.html").as_uri())

    ranking = page.locator("#suite-lite table").first  # offline-iid
    names = ranking.locator("tbody").first.locator("td:nth-child(2)")
    assert names.all_inner_texts() == ["alpha", "gamma", EVIL_NAME]

    def scores() -> list[float]:
        cells = ranking.locator("tbody").first.locator("td:nth-child(5)")
        return [float(s) for s in cells.evaluate_all("cells => cells.map(cell => cell.dataset.sort)")]

    ranking.get_by_role("button", name="Score (mean [95% CI])").click()
    assert scores() == [40.0, 55.0, 70.0]
    ranking.get_by_role("button", name="Score (mean [95% CI])").click()
    assert scores() == [70.0, 55.0, 40.0]
    runs = ranking.locator("tbody").first.locator("td:nth-child(4)").all_inner_texts()
    assert sorted(runs) == ["1 (single run)", "1 (single run)", "2"]
    ranking.get_by_role("button", name="Entry").click()
    assert names.all_inner_texts() == sorted(["alpha", "gamma", EVIL_NAME])
    assert ranking.locator("tr").last.locator("td:nth-child(2)").inner_text() == "oracle"  # anchors stay apart

    units = page.locator("#suite-lite tr[data-family]")
    assert units.count() == 4 * len(suite("lite").units)
    page.get_by_role("checkbox", name="CheetahVel").uncheck()
    hidden = page.locator("#suite-lite tr[data-family=CheetahVel]")
    assert hidden.count() == 4 * 6 and all(not row.is_visible() for row in hidden.all())
    assert page.locator("#suite-lite tr[data-family=Reach]").first.is_visible()
    page.get_by_role("checkbox", name="CheetahVel").check()
    page.locator("#env-filter").select_option("bitr/ReachSparse-v0")
    assert [row.get_attribute("data-env") for row in units.all() if row.is_visible()] == ["bitr/ReachSparse-v0"] * 12

    assert page.evaluate("document.querySelector('img[src=x]')") is None
    assert page.get_by_text(EVIL_NAME, exact=True).count() > 0
    assert page.get_by_text("failed: agent.act raised ValueError: <img src=x onerror=alert(2)>").count() == 1
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    assert dialogs == [] and errors == []


def test_raw_returns_count_scored_episodes_only():
    """The raw-return table (what the peers' papers report) leaves out online exploration."""
    import pathlib

    from bitr_eval.check_cache import board_record
    from bitr_eval.entry_stats import entry_view

    path = pathlib.Path(__file__).parent.parent / "leaderboard" / "results" / "quick" / "bitr-quick" / "run-1.json"
    run = json.loads(path.read_text())
    online = next(u for u in run["units"] if u["protocol"] == "online")
    scored = [e["return"] for e in online["episodes"] if e["phase"] == "score"]
    explored = [e["return"] for e in online["episodes"] if e["phase"] == "explore"]
    assert scored and explored and np.mean(scored) != np.mean(scored + explored)
    view = entry_view("BITR", [board_record(run)])
    assert next(u for u in view["units"] if u["protocol"] == "online")["raw_return"] == pytest.approx(np.mean(scored))


def test_sealed_data_is_compared_with_the_same_key_s_results_only():
    """A key's datasets carry the public ids but hold other tasks' episodes: a board can hold the
    public results and each key's side by side, and still refuses two builds under one id."""
    from bitr_eval.checks import check_dataset_hashes
    from bitr_eval.results import ResultError

    public, other = make_result("public"), make_result("other build", sha256="b" * 64)
    sealed = make_result("sealed", sha256="c" * 64)
    sealed["sealed"] = {"key_sha256": "d" * 64}
    check_dataset_hashes([public, sealed])
    with pytest.raises(ResultError, match="mismatched data: dataset bitr/point-robot-sparse/test-iid-tiny-v0"):
        check_dataset_hashes([public, other])
    same_key = make_result("sealed too", sha256="e" * 64)
    same_key["sealed"] = {"key_sha256": "d" * 64}
    with pytest.raises(ResultError, match="mismatched data"):
        check_dataset_hashes([sealed, same_key])
