"""The leaderboard over every finished run (aftbench.report.leaderboard), on hand-made records:
its table is the main table of the same runs; a record that fails verification and a report that
cannot be read are left out and named, never stopping it. (The whole-DAG test with two real
sweeps is in test_pipeline.py.)"""

import json
import shutil

import pandas as pd
from fake_runs import fake_sweep

from aftbench.report.build import runs_table
from aftbench.report.leaderboard import build_leaderboard
from aftbench.report.tables import main_table


def lay_out(tmp_path):
    """fake_sweep's records as results/runs/<run id>/metrics.json; two sweeps' reports."""
    paths = fake_sweep(tmp_path / "made", {"aft": 0.02}, n_seeds=3)
    runs = tmp_path / "runs"
    ids = []
    for i, p in enumerate(paths):
        rid = json.loads(open(p).read())["run_id"]
        (runs / f"r{i}").mkdir(parents=True)
        shutil.copy(p, runs / f"r{i}" / "metrics.json")
        ids.append(rid)
    reports = tmp_path / "reports"
    (reports / "one").mkdir(parents=True)
    pd.DataFrame({"run_id": ids[: len(ids) // 2]}).to_csv(reports / "one" / "runs.csv", index=False)
    (reports / "two").mkdir()
    pd.DataFrame({"run_id": ids[len(ids) // 2 :]}).to_csv(reports / "two" / "runs.csv", index=False)
    return paths, runs, reports


def test_the_leaderboard_is_the_main_table_of_every_finished_run(tmp_path):
    paths, runs, reports = lay_out(tmp_path)
    out = tmp_path / "board"
    board_runs, table, problems = build_leaderboard(str(runs), str(reports), str(out))
    assert problems == [] and len(board_runs) == len(paths)
    expected = main_table(runs_table([json.loads(open(p).read()) for p in paths]))
    got = pd.read_csv(out / "tables" / "main.csv")
    pd.testing.assert_frame_equal(
        got.drop(columns="sweeps"), pd.read_csv(pd.io.common.StringIO(expected.to_csv(index=False)))
    )
    # the first half of the records (dataset d1) is sweep one's report, the rest (d2) sweep two's
    assert dict(zip(got.dataset, got.sweeps, strict=True)) == {"d1": "one", "d2": "two"}
    assert "## Where each row's runs come from" in (out / "tables" / "main.md").read_text()


def test_a_tampered_record_and_an_unreadable_report_are_left_out_and_named(tmp_path):
    paths, runs, reports = lay_out(tmp_path)
    bad = runs / "r0" / "metrics.json"
    record = json.loads(bad.read_text())
    record["test_acc"] = 0.99  # edited after it was signed
    bad.write_text(json.dumps(record))
    (reports / "two" / "runs.csv").write_text("no run ids here\n")
    board_runs, _, problems = build_leaderboard(str(runs), str(reports), str(tmp_path / "board"))
    assert len(board_runs) == len(paths) - 1
    assert any(str(bad) in p for p in problems) and any("two/runs.csv: not readable" in p for p in problems)
    md = (tmp_path / "board" / "tables" / "main.md").read_text()
    assert "## Left out: 2 file(s)" in md and str(bad) in md
