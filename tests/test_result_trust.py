"""A real evaluation's result file proves itself: `bitr leaderboard add` recomputes it against the
local datasets and accepts it, and refuses it once a number in it is edited."""

from __future__ import annotations

import json

import pytest

from bitr_envs import datasets
from bitr_envs.datasets import storage
from bitr_eval import evaluate, suite
from bitr_eval.cli import main
from bitr_eval.sandbox import isolation_level
from bitr_eval.scoring import aggregates, score_episodes

TINY = suite("tiny")


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """The random agent's result on the tiny suite, with its datasets built in a scratch root."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        for dataset_id in TINY.datasets:
            datasets.build(dataset_id)
        out = tmp_path_factory.mktemp("runs") / "random.json"
        result = evaluate(TINY, {"name": "random", "agent": "random"}, out, jobs=1)
    return root, result


@pytest.fixture(autouse=True)
def local_root(honest, monkeypatch):
    """The scratch root; its datasets, as built on this machine, are the pinned ones."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(honest[0]))
    pinned = {d: storage.file_hashes(d) for d in TINY.datasets}
    monkeypatch.setattr(storage, "pins", lambda: pinned)


def add(tmp_path, result) -> int:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "submitted.json"
    path.write_text(json.dumps(result))
    return main(["leaderboard", "add", str(path), "--dir", str(tmp_path / "board")])


def test_a_real_result_records_what_it_read(honest):
    _, result = honest
    for unit in result["units"]:
        assert unit["isolation"] == isolation_level()  # bwrap where it can start, else process
        for dataset in unit["datasets"]:
            assert dataset == {"id": dataset["id"], **storage.file_hashes(dataset["id"])}
        references = datasets.load(TINY.units[0].reference_dataset).reference_returns
        assert unit["references"] == {"random": references["random"], "expert": references["expert"]}


def test_a_real_result_is_accepted_and_a_doctored_one_refused(tmp_path, honest, capsys, monkeypatch):
    _, result = honest
    assert add(tmp_path / "a", result) == 0
    doctored = json.loads(json.dumps(result))
    for record in doctored["units"]:  # a lower expert on every task, every number redone to match
        record["references"]["expert"] = [v - 1.0 for v in record["references"]["expert"]]
        record.update(score_episodes(TINY.units[0], TINY.seeds, record["episodes"], record["references"])
                      if record["protocol"] != "online" else
                      score_episodes(TINY.units[2], TINY.seeds, record["episodes"], record["references"]))
    doctored["aggregates"] = aggregates(doctored["units"])
    assert add(tmp_path / "b", doctored) == 2
    assert "references/expert[0] is" in capsys.readouterr().err
    first = result["units"][0]["datasets"][0]
    monkeypatch.setattr(storage, "pins", lambda: {first["id"]: {"data_sha256": first["data_sha256"],
                                                                 "content_sha256": "0" * 64}})
    assert add(tmp_path / "c", result) == 2
    assert "the benchmark pins 000000000000" in capsys.readouterr().err


def test_evaluate_refuses_to_start_on_datasets_that_are_not_the_benchmarks(honest, tmp_path, monkeypatch):
    root, _ = honest
    dataset_id = TINY.units[0].reference_dataset
    hashes = storage.file_hashes(dataset_id)
    monkeypatch.setattr(storage, "pins", lambda: {dataset_id: {**hashes, "data_sha256": "f" * 64}})
    with pytest.raises(ValueError, match=f"failed their checks: {dataset_id} is intact but is not the benchmark's"):
        evaluate(TINY, {"name": "random", "agent": "random"}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_a_replay_matches_an_honest_entry_and_catches_invented_episodes(honest, tmp_path, capsys):
    from bitr_eval.filing import slug

    _, result = honest
    assert add(tmp_path / "a", result) == 0
    entry = tmp_path / "a" / "board" / "results" / "tiny" / slug("random")
    assert main(["leaderboard", "verify", str(entry), "--units", "1"]) == 0
    assert json.loads((entry / "verification.json").read_text())["matched"]

    invented = json.loads(json.dumps(result))  # better returns, every number redone to follow from them
    for record, unit in zip(invented["units"], TINY.units):
        for episode in record["episodes"]:
            episode["return"] += 1.0
        record.update(score_episodes(unit, TINY.seeds, record["episodes"], record["references"]))
    invented["aggregates"] = aggregates(invented["units"])
    assert add(tmp_path / "b", invented) == 0  # the file is consistent: only playing it again tells
    entry = tmp_path / "b" / "board" / "results" / "tiny" / slug("random")
    capsys.readouterr()
    assert main(["leaderboard", "verify", str(entry), "--units", "all"]) == 1
    assert "DIFFERS: episode (task, seed, index) (0, 0, 0)" in capsys.readouterr().out
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "b" / "board")]) == 0
    assert "re-played 3 units: DIFFERED" in (tmp_path / "b" / "board" / "README.md").read_text()


def test_a_replay_decides_the_sandbox_and_the_privilege_itself_and_samples_in_secret(honest, tmp_path, capsys):
    from bitr_eval.filing import slug
    from bitr_eval.replay import sample_units

    _, result = honest
    doctored = json.loads(json.dumps(result))
    ran = doctored["units"][0]["isolation"]
    doctored["units"][0]["isolation"] = "process" if ran == "bwrap" else "bwrap"  # the file's word on its sandbox
    assert add(tmp_path / "a", doctored) == 0
    entry = tmp_path / "a" / "board" / "results" / "tiny" / slug("random")
    assert main(["leaderboard", "verify", str(entry), "--units", "all"]) == 1
    assert f"the re-play ran it under {ran!r}" in capsys.readouterr().out
    claimed = json.loads(json.dumps(result))
    claimed["submission"]["privileged"] = True
    assert add(tmp_path / "b", claimed) == 0  # a privileged claim only loses the rank
    entry = tmp_path / "b" / "board" / "results" / "tiny" / slug("random")
    assert main(["leaderboard", "verify", str(entry), "--units", "1"]) == 1
    assert "the file says privileged True, the evaluator's probe says False" in capsys.readouterr().out
    samples = {tuple(sample_units(result, 1)) for _ in range(40)}
    assert len(samples) > 1  # not fixed by the file
