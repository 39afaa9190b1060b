"""The paper's Fig. 1b quantity (aftbench.report.paper_error): per (dataset, student) error ratio
to STL on the headline teacher set, averaged over cells with its standard error, per modality."""

import numpy as np
import pandas as pd
import pytest
from fake_runs import runs_frame
from test_pipeline import tiny_config

from aftbench.config.check import validate_config
from aftbench.core.schema import ConfigError
from aftbench.report.paper_error import paper_error_table, write_paper_error


def runs_for(cells: dict) -> pd.DataFrame:
    """cells: (modality, dataset, student) -> {(method, teacher set): [test acc per seed]}."""
    return runs_frame(
        [
            dict(modality=mod, dataset=ds, student=st, method=m, teacher_set=ts, seed=seed, test_acc=acc)
            for (mod, ds, st), arms in cells.items()
            for (m, ts), accs in arms.items()
            for seed, acc in enumerate(accs)
        ]
    )


CELLS = {
    ("image", "a", "s"): {("stl", "none"): [0.8, 0.8], ("aft", "big"): [0.84, 0.84], ("aft", "small"): [0.7, 0.7]},
    ("image", "b", "s"): {("stl", "none"): [0.6, 0.6], ("aft", "big"): [0.7, 0.7]},
    ("text", "c", "s"): {("stl", "none"): [0.5, 0.7], ("aft", "small"): [0.7, 0.7], ("aft", "big"): [0.9, 0.9]},
}


def test_the_ratio_of_mean_errors_per_cell_averaged_with_its_standard_error(tmp_path):
    headline = {"image": ["big"], "text": ["small", "big"]}  # text: the first listed set it has
    t = paper_error_table(runs_for(CELLS), headline).set_index("modality")
    ratios = [0.16 / 0.2, 0.3 / 0.4]
    assert t.loc["image", "mean_ratio"] == pytest.approx(np.mean(ratios))
    assert t.loc["image", "se"] == pytest.approx(np.std(ratios, ddof=1) / np.sqrt(2))
    assert t.loc["image", "n_cells"] == 2
    assert t.loc["text", "mean_ratio"] == pytest.approx(0.3 / 0.4) and np.isnan(t.loc["text", "se"])
    assert t.loc["text", "teacher_sets"] == "small"
    write_paper_error(runs_for(CELLS), headline, tmp_path)
    md = (tmp_path / "tables" / "paper_error.md").read_text()
    assert "| AFT      | 0.775 ± 0.025 |" in md
    figure = (tmp_path / "figures" / "paper_error.png").read_bytes()
    write_paper_error(runs_for(CELLS), {}, tmp_path)
    assert (tmp_path / "figures" / "paper_error.png").read_bytes() != figure  # now the placeholder
    assert (
        "name one per modality in config.yaml `headline_sets`" in (tmp_path / "tables" / "paper_error.md").read_text()
    )


def test_a_headline_set_must_exist(text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["headline_sets"] = {"image": ["nope"]}
    with pytest.raises(ConfigError, match=r"headline_sets.image: unknown teacher set 'nope'"):
        validate_config(cfg)


def test_the_figure_marks_the_papers_value_beside_each_paper_method_and_only_those(tmp_path, monkeypatch):
    import matplotlib.axes

    arms = {
        ("stl", "none"): [0.8, 0.8],
        **{(m, "big"): [0.82, 0.82] for m in ("kd", "btune", "rkd", "ft", "vkd", "aft")},
    }
    runs = runs_for({("image", "a", "s"): arms})
    marks, plot = [], matplotlib.axes.Axes.plot

    def spy(ax, *args, **kw):
        if kw.get("marker") == "D":
            marks.append(args[1])
        return plot(ax, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    write_paper_error(runs, {"image": ["big"]}, tmp_path)
    assert sorted(marks) == sorted([0.956, 0.944, 0.939, 0.928, 0.887])  # B-Tuning's too; none for VkD
