"""Training curves (aftbench.report.curves): every logged value in tables/curves.csv; per dataset a
figure with each method's selected runs as a median line and a band over seeds, and a diverged
run drawn on its own."""

import numpy as np
import pandas as pd

from aftbench.report import curves as curves_mod
from aftbench.report.curves import curves_table, write_curves


def record(run_id, method, seed, beta, ce, diverged=False, rho=None):
    history = [
        {"step": 10 * (i + 1), "ce": c, "penalty": 0.0 if method == "stl" else 0.5 / (i + 1), "lr": [1e-3]}
        for i, c in enumerate(ce)
    ]
    if rho is not None:
        for h in history:
            h["rho_mean"] = rho
    return {"run_id": run_id, "kind": "train", "method": method, "seed": seed, "beta": beta, "history": history}


def runs_of(records):
    rows = []
    for m in records:
        rows.append(
            {
                "run_id": m["run_id"],
                "dataset": "d",
                "student": "s",
                "method": m["method"],
                "penalty": "none" if m["method"] == "stl" else m["method"],
                "role": "baseline" if m["method"] == "stl" else "transfer",
                "teacher_set": "none" if m["method"] == "stl" else "t",
                "seed": m["seed"],
                "selected": m["beta"] == 1.0,
                "diverged": m.get("diverged_", False),
            }
        )
    return pd.DataFrame(rows)


def sweep():
    recs = [record(f"stl{s}", "stl", s, 1.0, [2.0, 1.5, 1.2]) for s in (0, 1)]
    recs += [record(f"aft{s}", "aft", s, 1.0, [2.0, 1.2, 0.9], rho=0.5 + 0.1 * s) for s in (0, 1)]
    bad = record("aft_big_beta", "aft", 0, 100.0, [2.0, 5.0, 40.0], rho=0.9)
    bad["diverged_"] = True
    return [*recs, bad]


def test_every_logged_value_is_in_the_table():
    recs = sweep()
    table = curves_table(recs + [{"run_id": "probe", "kind": "probe"}])
    assert len(table) == 5 * 3 and set(table.run_id) == {r["run_id"] for r in recs}
    row = table[(table.run_id == "aft1") & (table.step == 20)].iloc[0]
    assert row.ce == 1.2 and row.penalty == 0.25 and row.rho_mean == 0.6
    assert np.isnan(table[table.run_id == "stl0"].rho_mean).all()


def test_the_figure_draws_medians_bands_and_the_diverged_run(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, path):
        drawn["fig"], drawn["path"] = fig, path

    monkeypatch.setattr(curves_mod, "save_png", keep)
    recs = sweep()
    (tmp_path / "tables").mkdir()
    write_curves(recs, runs_of(recs), tmp_path)
    assert (tmp_path / "tables" / "curves.csv").exists() and drawn["path"].endswith("d_curves.png")
    ce, penalty, rho = drawn["fig"].axes[:3]
    medians = [line for line in ce.get_lines() if line.get_linestyle() == "-"]
    assert sorted(list(line.get_ydata()) for line in medians) == [[2.0, 1.2, 0.9], [2.0, 1.5, 1.2]]
    dashed = [line for line in ce.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in dashed] == [[2.0, 5.0, 40.0]]  # not selected, still shown
    assert len(ce.collections) == 2  # a band per method (two seeds each)
    assert penalty.get_yscale() == "log" and rho.get_ylabel() == "ρ mean"
    legend = [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
    assert legend == ["STL", "AFT", "diverged run (any β)"]
