"""The leaderboard: what `bitr leaderboard add` accepts and refuses, what `render` writes, and
that strings from result files stay text (in Markdown, in HTML, and in a real browser)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bitr_eval.cli import main
from bitr_eval.leaderboard import render, slug
from bitr_envs.datasets.storage import write_json_atomic
from bitr_eval.results import SCHEMA_VERSION, validate
from bitr_eval.runner import aggregates
from bitr_eval.stats import summarize
from bitr_eval.suites import suite

EVIL_NAME = "<script>alert(1)</script>"
EVIL_FAILURE = "agent.act raised ValueError: <img src=x onerror=alert(2)>\nTraceback | `more`"
HASH = "a" * 64


def make_result(name: str, score: float = 50.0, suite_name: str = "tiny", privileged: bool = False,
                failed: str | None = None, failure: str = "agent.act raised ValueError", sha256: str = HASH) -> dict:
    """A minimal valid result: every unit of the suite has 2 tasks whose mean is `score`; the unit whose
    id ends with `failed` failed with `failure`; every dataset has the hash `sha256`."""
    chosen = suite(suite_name)
    units = []
    for unit in chosen.units:
        seeds = np.arange(len(chosen.seeds)) - (len(chosen.seeds) - 1) / 2
        scores = np.array([score - 5.0 + 2.0 * seeds, score + 5.0 + 2.0 * seeds])
        broken = failed is not None and unit.unit_id.endswith(failed)
        units.append({
            "unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split, "protocol": unit.protocol,
            "status": "failed" if broken else "ok", "failure": failure if broken else None,
            "datasets": [{"id": d, "sha256": sha256} for d in (unit.context_dataset, unit.reference_dataset) if d],
            "episodes": [], "scores": [] if broken else scores.tolist(),
            "summary": None if broken else summarize(scores), "first_episode": None, "success_rate": None,
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "submission": {"name": name, "agent": "my_pkg.agent:make", "checkpoint": None, "agent_args": {},
                       "privileged": privileged},
        "suite": {"name": chosen.name, "fingerprint": chosen.fingerprint(), "seeds": list(chosen.seeds),
                  "units": [u.unit_id for u in chosen.units]},
        "versions": {"python": "3.11"}, "hardware": {"cpus": 2},
        "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 1.0,
        "units": units, "aggregates": aggregates(units),
    }


def add(tmp_path, result: dict, *options: str) -> int:
    path = tmp_path / "submitted.json"
    path.write_text(json.dumps(result))
    return main(["leaderboard", "add", str(path), "--dir", str(tmp_path / "board"), *options])


def filed(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "board" / "results").glob("*/*.json"))


def test_helper_makes_valid_results():
    validate(make_result("a", failed="online"))
    validate(make_result("b", suite_name="lite"))


def test_add_files_a_valid_result(tmp_path, capsys):
    result = make_result("My Agent v2", failed="online")  # failed units are allowed
    assert add(tmp_path, result) == 0
    filed_path = tmp_path / "board" / "results" / "tiny" / "my-agent-v2.json"
    assert json.loads(filed_path.read_text()) == result
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
    result["units"][0]["datasets"][0]["sha256"] = "b" * 64


def _score_despite_a_failure(result):
    result["units"][-1].update(status="failed", failure="agent process died", summary=None)  # online


def _nan_score(result):
    result["aggregates"]["protocols"]["online"]["mean"] = float("nan")


@pytest.mark.parametrize("spoil, reason", [
    (_schema_invalid, "invalid result at submission: 'privileged' is a required property"),
    (_other_fingerprint, "fingerprint differs"),
    (_unknown_suite, "unknown suite 'huge'"),
    (_incomplete, "must be run whole"),
    (_two_hashes_inside, "mismatched data"),
    (_score_despite_a_failure, "aggregates/protocols/online does not follow from the unit records"),
    (_nan_score, "non-finite or absurd"),
])
def test_add_refuses_a_result_that_does_not_compare(tmp_path, capsys, spoil, reason):
    result = make_result("mine")
    spoil(result)
    assert add(tmp_path, result) == 2
    assert reason in capsys.readouterr().err
    assert filed(tmp_path) == []


def test_add_refuses_a_name_on_the_board_unless_replacing(tmp_path, capsys):
    assert add(tmp_path, make_result("mine", 10.0)) == 0
    assert add(tmp_path, make_result("mine", 20.0)) == 2
    assert "'mine' is already on the tiny board" in capsys.readouterr().err
    assert add(tmp_path, make_result("MINE", 20.0)) == 2  # another name, the same file name
    assert "choose a name" in capsys.readouterr().err
    assert add(tmp_path, make_result("mine", 20.0), "--replace") == 0
    assert json.loads((tmp_path / "board/results/tiny/mine.json").read_text())["aggregates"]["protocols"]["online"]["mean"] == 20.0
    assert add(tmp_path, make_result("mine", suite_name="lite")) == 0  # the same name on another suite
    assert filed(tmp_path) == ["mine.json", "mine.json"]


def test_add_refuses_data_that_differ_from_the_board(tmp_path, capsys):
    assert add(tmp_path, make_result("first")) == 0
    assert add(tmp_path, make_result("second", sha256="c" * 64)) == 2
    assert "mismatched data: dataset bitr/point-robot-sparse/" in capsys.readouterr().err
    assert filed(tmp_path) == ["first.json"]


def board(tmp_path, *results) -> tuple[str, str]:
    """File `results` and render; return README.md and index.html."""
    for result in results:
        write_json_atomic(tmp_path / "results" / result["suite"]["name"] / f"{slug(result['submission']['name'])}.json", result)
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


def test_render_ranks_best_first_and_shows_anchors_apart(tmp_path):
    high = make_result("high", 80.0)
    high["started"] = "2026-02-01T00:00:00+00:00"
    readme, page = board(
        tmp_path, make_result("low", 20.0), high, make_result("tied", 20.0),
        make_result("broken", 90.0, failed="online"), make_result("oracle", 100.0, privileged=True))
    iid = table(readme, "### offline-iid")
    assert [(row[0], row[1]) for row in iid] == [("1", "broken"), ("2", "high"), ("3", "low"), ("3", "tied")]
    online = table(readme, "### online")
    assert [(row[0], row[1], row[3]) for row in online][-1] == ("–", "broken", "failed")
    assert table(readme, "### online", "| Submission")[0][:2] == ["oracle", "my\\_pkg.agent:make"]
    assert "oracle" not in [row[1] for row in iid]
    assert "- broken, point-robot-sparse/test/online: agent.act raised ValueError" in readme
    assert "Latest result started: 2026-02-01T00:00:00+00:00." in readme
    assert 'id="suite-tiny"' in page and page.count("Anchors (privileged, not ranked)") == 3
    assert board(tmp_path) == (readme, page)  # the same files render the same pages


def test_render_skips_and_warns_about_invalid_files(tmp_path, capsys):
    board(tmp_path, make_result("good"))
    (tmp_path / "results" / "tiny" / "bad.json").write_text("{}")
    outdated = make_result("outdated")
    outdated["suite"]["fingerprint"] = "0" * 64
    write_json_atomic(tmp_path / "results" / "tiny" / "outdated.json", outdated)
    assert main(["leaderboard", "render", "--dir", str(tmp_path)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and "bad.json" in warnings[0] and "fingerprint differs" in warnings[1]
    readme = (tmp_path / "README.md").read_text()
    assert "good" in readme and "outdated" not in readme


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
    results = [make_result("alpha", 70.0, "lite"), make_result("gamma", 55.0, "lite", failed="reach-sparse/test/online"),
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
        cells = ranking.locator("tbody").first.locator("td:nth-child(4)")
        return [float(s) for s in cells.evaluate_all("cells => cells.map(cell => cell.dataset.sort)")]

    ranking.get_by_role("button", name="Score (mean [95% CI])").click()
    assert scores() == [40.0, 55.0, 70.0]
    ranking.get_by_role("button", name="Score (mean [95% CI])").click()
    assert scores() == [70.0, 55.0, 40.0]
    ranking.get_by_role("button", name="Submission").click()
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
