"""The real Snakefile, end to end, on a tiny config (sklearn digits + a tiny text task, tiny
random-projection teachers): tables and figures appear with the expected rows; a second run
does nothing; deleting one run reruns only it; adding a teacher reruns only what uses it;
`snakemake tables` re-aggregates without training."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aftbench.core.layout import run_id, run_wildcard_regex

# Whole-DAG runs of the tiny sweep: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def tiny_config(text_tsv):
    return {
        "sweep": "tiny",
        "train": {"steps": 10, "batch_size": 32, "lr": 0.01, "log_every": 5, "threads": 1},
        "extract": {"threads": 1},
        "datasets": {
            "digits": {"loader": "sklearn_digits", "modality": "image", "n_train": 150, "n_val": 50, "n_test": 100},
            "tinytext": {
                "loader": "tsv",
                "modality": "text",
                "args": {"path": text_tsv},
                "n_train": 60,
                "n_val": 24,
                "n_test": 36,
            },
        },
        "teachers": {
            "rp_a": {"backend": "random_projection", "args": {"dim": 8}},
            "rp_text": {"backend": "random_projection", "args": {"modality": "text", "dim": 6}},
        },
        "teacher_sets": {"a": ["rp_a"], "t": ["rp_text"]},
        "students": {
            "cnn_t": {"arch": "cnn", "args": {"width": 4, "depth": 2, "image_size": 8}},
            "bag_t": {"arch": "wordpiece_bag", "args": {"emb_dim": 8, "hidden": 8}},
        },
        "methods": {
            "stl": {"kind": "train", "penalty": "none"},
            "kd": {"kind": "train", "penalty": "kd", "beta": 1.0},
            "aft": {"kind": "train", "penalty": "aft", "beta": [0.5, 2.0], "args": {"rho_lr": 0.01}},
            "ft": {"kind": "train", "penalty": "ft", "beta": 1.0, "args": {"rate": 0.5, "paraphraser_steps": 20}},
            "logit_kd": {"kind": "train", "penalty": "logit_kd", "beta": 1.0, "args": {"temperature": 2.0}},
            "probe": {"kind": "probe", "C_grid": [0.1, 1.0]},
        },
        "sweeps": {
            "tiny": [
                {
                    "datasets": ["digits"],
                    "students": ["cnn_t"],
                    "methods": ["stl", "kd", "aft", "probe"],
                    "teacher_sets": ["a"],
                    "seeds": [0, 1],
                },
                {
                    "datasets": ["tinytext"],
                    "students": ["bag_t"],
                    "methods": ["stl", "aft", "ft", "logit_kd", "probe"],
                    "teacher_sets": ["t"],
                    "seeds": [0],
                },
            ]
        },
    }


def smk(workdir, *args, check=True):
    cmd = SNAKEMAKE + [
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "tiny.yaml"),
        "--cores",
        "2",
        *args,
    ]
    # Rules call `python -m aftbench`: the interpreter running the tests must be first on PATH.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "PATH": path})
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


def planned(workdir) -> dict[str, int]:
    """Jobs a dry run would execute, per rule."""
    out = smk(workdir, "-n").stdout
    if "Nothing to be done" in out:
        return {}
    stats = out[out.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, text_tsv):
    wd = tmp_path_factory.mktemp("pipeline")
    (wd / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(text_tsv), sort_keys=False))
    smk(wd)
    return wd


def test_html_report_opens_with_the_claims(workdir):
    """`snakemake --report` builds from the finished sweep; its first category is the claims table."""
    smk(workdir, "--report", str(workdir / "report.html"))
    html = (workdir / "report.html").read_text(errors="replace")
    cats = ["1. Claims", "2. Tables", "3. Per dataset", "4. Paper claims", "5. Which teachers"]
    assert all(c in html for c in cats) and "claims.md" in html


def test_outputs_exist_with_expected_rows(workdir):
    r = workdir / "results"
    rep = r / "reports" / "tiny"  # each sweep has its own report folder
    runs = pd.read_csv(rep / "runs.csv")
    # digits: stl×2 seeds + kd × 2 seeds + aft × 2 β × 2 seeds + probe; tinytext: stl + aft × 2 β + ft + logit_kd + probe
    assert len(runs) == 2 + 2 + 4 + 1 + 1 + 2 + 1 + 1 + 1
    # one selected β per (student, method, teacher set, seed), chosen on validation
    sel = runs[runs.selected]
    assert (
        len(sel) == len(runs) - 3 and not sel.duplicated(["dataset", "student", "method", "teacher_set", "seed"]).any()
    )
    aft = runs[(runs.method == "aft") & (runs.dataset == "digits")]
    for _, g in aft.groupby("seed"):
        assert g[g.selected].val_acc.item() == g.val_acc.max()
    assert set(runs.method) == {"stl", "kd", "aft", "ft", "logit_kd", "probe"}
    assert (r / "factors/dataset~tinytext/teachers~t/method~ft/factors.json").exists()
    assert (r / "runs/dataset~tinytext/student~probe/method~probe/teachers~t/beta~0/seed~0/logits.safetensors").exists()
    assert runs.test_acc.between(0, 1).all() and runs.student_params.gt(0).all()
    assert set(runs.modality) == {"image", "text"}
    table = pd.read_csv(rep / "tables" / "main.csv")
    assert sorted(zip(table.dataset, table.student, table.teacher_set, strict=False)) == [
        ("digits", "cnn_t", "a"),
        ("tinytext", "bag_t", "t"),
    ]
    md = (rep / "tables" / "main.md").read_text()
    assert "## digits" in md and "## tinytext" in md and "± " in md and "probe − STL" in md
    assert "(Δ " in md and ("**" in md or " ≈" in md)  # paired differences; bold only where separable
    assert "a (control: not pre-trained)" in md  # random-projection teachers are labelled as controls
    assert "`cnn_t`: scratch, " in md and "by validation accuracy over the grid (aft: {0.5, 2}, ft: {1}, kd: {1}" in md
    tex = (rep / "tables" / "main.tex").read_text()
    assert r"\begin{tabular}" in tex and r"accuracy (\%)" in tex and "(%)" not in tex  # a bare % comments out LaTeX
    from aftbench.core.layout import CLAIM_FIGURES
    from aftbench.report.drawable import figure_gaps

    gaps = figure_gaps(runs)  # what this sweep supports: the workflow planned the same from its config
    drawn = [f for f in CLAIM_FIGURES if not gaps[f]]
    # its teachers are random projections (controls): no figure of pre-trained sets is drawn
    assert {"rho_by_teacher", "accuracy_vs_beta"} <= set(drawn) and "normalized_error" not in drawn
    for name in [f"{d}_difference" for d in ("digits", "tinytext")] + drawn:
        png = rep / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (rep / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    claims = (rep / "tables" / "claims.md").read_text()
    for name in set(CLAIM_FIGURES) - set(drawn):  # not drawn: named in the claims with the reason
        assert not (rep / "figures" / f"{name}.png").exists() and f"`{name}.png`: {gaps[name]}" in claims
    assert "1. AFT beats every baseline" in claims and "verdict" in claims
    rho = runs[runs.method == "aft"].rho_by_teacher.map(json.loads)
    assert all(set(d) in ({"rp_a"}, {"rp_text"}) and all(0 < v < 1 for v in d.values()) for d in rho)
    assert (r / "features" / "digits" / "rp_a.json").exists()
    assert (r / "logs" / "aggregate" / "tiny.log").exists()
    assert list((r / "benchmarks" / "features").rglob("*.tsv"))
    hidden = [
        p for p in r.rglob(".*") if p.is_file() and p.name != ".snakemake_timestamp"
    ]  # Snakemake's marker in directory outputs
    assert not hidden, f"temporary files left behind: {hidden}"
    assert sorted(p.name for p in (r / "splits" / "digits.images").iterdir()) == [
        ".snakemake_timestamp",
        "test.npy",
        "train.npy",
        "val.npy",
    ]
    assert [p.name for p in (r / "splits" / "tinytext.images").iterdir()] == [".snakemake_timestamp"]


def test_second_run_does_nothing(workdir):
    assert planned(workdir) == {}


def test_deleting_one_run_reruns_only_it(workdir):
    m = workdir / "results/runs/dataset~digits/student~cnn_t/method~kd/teachers~a/beta~1/seed~1/metrics.json"
    m.unlink()
    assert planned(workdir) == {"train": 1, "aggregate": 1, "leaderboard": 1, "all": 1}
    smk(workdir)
    assert m.exists() and planned(workdir) == {}


def test_a_deleted_figure_is_made_again_without_training(workdir):
    """Once the report exists, `all` names every output of it (before, only runs.csv: the report
    job writes them all at once), so a lost table or figure makes the report again, alone."""
    fig = workdir / "results/reports/tiny/figures/digits_difference.png"
    fig.unlink()
    assert planned(workdir) == {"aggregate": 1, "leaderboard": 1, "all": 1}
    smk(workdir)
    assert fig.exists() and planned(workdir) == {}


def test_tables_target_reaggregates_without_training(workdir):
    run = workdir / "results/runs/dataset~digits/student~cnn_t/method~stl/teachers~none/beta~0/seed~0"
    shutil.move(run, workdir / "stash")
    try:
        p = smk(workdir, "tables")
        assert "aggregated 14 runs" in (workdir / "results/logs/tables/tiny.log").read_text()
        assert "rule train" not in p.stdout + p.stderr
        assert len(pd.read_csv(workdir / "results/reports/tiny/runs.csv")) == 14
    finally:
        shutil.move(workdir / "stash", run)
    smk(workdir, "tables")
    assert len(pd.read_csv(workdir / "results/reports/tiny/runs.csv")) == 15


# What adding one teacher to the digits block plans: its extraction, (kd + aft × 2 β) × 2 seeds,
# its probe and its teacher scores; nothing of STL or tinytext.
NEW_TEACHER_JOBS = {
    "extract_features": 1,
    "train": 6,
    "probe": 1,
    "score_teachers": 1,
    "aggregate": 1,
    "leaderboard": 1,
    "all": 1,
}


def test_adding_a_teacher_reruns_only_what_uses_it(workdir, text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["teachers"]["rp_b"] = {"backend": "random_projection", "args": {"dim": 5, "seed": 1}}
    cfg["teacher_sets"]["a"].append("rp_b")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # one extraction; set a's runs: (kd + aft × 2 β) × 2 seeds + its probe and its scores; nothing of STL or tinytext
    assert planned(workdir) == NEW_TEACHER_JOBS


def test_renaming_stl_gives_the_same_tables_under_the_new_name(workdir, text_tsv, tmp_path):
    """Roles come from config, not ids: `stl` renamed to `baseline` (in methods and sweeps) retrains
    only the renamed runs, to the same numbers, and every table holds them under the new name."""
    wd = tmp_path / "renamed"
    shutil.copytree(workdir, wd, symlinks=True)
    cfg = tiny_config(text_tsv)
    cfg["methods"] = {("baseline" if m == "stl" else m): v for m, v in cfg["methods"].items()}
    for block in cfg["sweeps"]["tiny"]:
        block["methods"] = ["baseline" if m == "stl" else m for m in block["methods"]]
    (wd / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # the 3 STL runs under their new name, and the tables; nothing else
    assert planned(wd) == {"train": 3, "aggregate": 1, "leaderboard": 1, "all": 1}
    smk(wd)
    old, new = (
        pd.read_csv(workdir / "results/reports/tiny/tables/main.csv"),
        pd.read_csv(wd / "results/reports/tiny/tables/main.csv"),
    )
    assert list(new.columns) == [c.replace("stl_", "baseline_") for c in old.columns]
    new.columns = old.columns
    for col in ("best", "ties"):  # these hold method ids
        new[col] = new[col].fillna("").str.replace("baseline", "stl")
        old[col] = old[col].fillna("")
    pd.testing.assert_frame_equal(old, new)

    def cells(md):  # markdown cells, without the padding that column widths add
        return re.sub(r"-{3,}", "---", re.sub(r" +", " ", md))

    md = (workdir / "results/reports/tiny/tables/main.md").read_text().replace("STL", "baseline")
    assert cells((wd / "results/reports/tiny/tables/main.md").read_text()) == cells(md)
    runs = pd.read_csv(wd / "results/reports/tiny/runs.csv")
    assert set(runs[runs.role == "baseline"].method) == {"baseline"} and "stl" not in set(runs.method)


def documented_teacher_lines() -> dict:
    """The yaml block of docs/configuration.md's "Add a teacher" section, as a user would paste it."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Add a teacher") :]
    section = section[: section.index("\n## ", 1)]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S)[1])


def test_adding_effnet_lite1_as_the_docs_say(workdir, text_tsv):
    lines = documented_teacher_lines()
    [(tid, entry)] = lines["teachers"].items()
    [(set_id, members)] = lines["teacher_sets"].items()
    assert entry["backend"] == "effnet_lite" and entry["args"]["variant"] == "lite1" and members == [tid]
    cfg = tiny_config(text_tsv)
    cfg["teachers"][tid] = entry
    cfg["teacher_sets"][set_id] = members
    cfg["sweeps"]["tiny"][0]["teacher_sets"].append(set_id)
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        # one extraction (Lite1 on digits); the new set's kd + aft × 2 β runs × 2 seeds, its probe and scores
        assert planned(workdir) == NEW_TEACHER_JOBS
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(text_tsv), sort_keys=False))


@pytest.mark.parametrize(
    "entry,key",
    [
        ({"backend": "effnet_lite", "args": {"variant": "lite9"}}, "teachers.bad.args.variant: 'lite9' is not valid"),
        ("hf:openai-community/gpt2#maxpool", "teachers.bad.args.pooling: 'maxpool' is not valid"),
    ],
)
def test_bad_backend_args_fail_before_any_job(tmp_path, text_tsv, entry, key):
    cfg = tiny_config(text_tsv)
    cfg["teachers"]["bad"] = entry
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", check=False)
    assert p.returncode != 0 and key in p.stdout + p.stderr
    assert not (tmp_path / "results").exists()


def test_bad_config_fails_before_any_job(tmp_path, text_tsv):
    cfg = tiny_config(text_tsv)
    cfg["teacher_sets"]["a"] = ["rp_typo"]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    p = smk(tmp_path, "-n", check=False)
    assert p.returncode != 0 and "teacher_sets.a: unknown teacher 'rp_typo'" in p.stdout + p.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "rid, rule",
    [
        (run_id("digits", "cnn_t", "kd", "a", 1, 0), "train"),
        (run_id("digits", "cnn_t", "stl", "none", 0, 3, "0123abcd"), "train"),  # a block's own train settings
        (run_id("digits", "probe", "probe", "a", 0, 0), "probe"),
        (run_id("digits", "probe_net", "kd", "a", 0.5, 0), "train"),  # a student id that merely starts with "probe"
        (run_id("digits", "cnn_t", "kd", "a", None, 0, "0123abcd", (1.0, 10.0)), "refit"),  # tune-then-refit
        (run_id("digits", "cnn_t", "stl", "none", None, 1, None, (0.0, 0.1)), "refit"),
    ],
)
def test_each_run_id_is_one_rule_s_run(rid, rule):
    """The training, refit and probe rules share one output pattern (`{run}/metrics.json`); their
    `{run}` constraints must give every run id to exactly one of them (else Snakemake reports an
    ambiguity, or no rule at all)."""
    matches = {r for r in ("train", "refit", "probe") if re.fullmatch(run_wildcard_regex(r), rid)}
    assert matches == {rule}


def test_the_leaderboard_merges_two_sweeps_with_each_sweep_s_numbers(workdir, text_tsv):
    """A second sweep in the same folder (another student on digits, sharing the teacher set's
    probe): the leaderboard holds both sweeps' rows, each equal to its sweep's own main table,
    and names the sweeps each row's runs come from."""
    cfg = tiny_config(text_tsv)
    cfg["students"]["cnn_u"] = {"arch": "cnn", "args": {"width": 6, "depth": 2, "image_size": 8}}
    cfg["sweeps"]["other"] = [
        {"datasets": ["digits"], "students": ["cnn_u"], "methods": ["stl", "aft", "probe"], "teacher_sets": ["a"]}
        | {"seeds": [0, 1]}
    ]
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        p = smk(workdir, "--config", "sweep=other")
        assert "rule probe:" not in p.stdout + p.stderr  # the shared probe run is not redone
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(text_tsv), sort_keys=False))
    board = pd.read_csv(workdir / "results/leaderboard/tables/main.csv")
    keys = ["dataset", "student", "teacher_set"]
    for sweep in ("tiny", "other"):
        own = pd.read_csv(workdir / f"results/reports/{sweep}/tables/main.csv")
        rows = own[keys].merge(board, on=keys, how="left")[own.columns]
        pd.testing.assert_frame_equal(rows, own, check_dtype=False)
    assert len(board) == 3
    sources = dict(zip(board.student + "/" + board.teacher_set, board.sweeps, strict=True))
    assert sources == {"cnn_t/a": "other+tiny", "cnn_u/a": "other+tiny", "bag_t/t": "tiny"}
    md = (workdir / "results/leaderboard/tables/main.md").read_text()
    assert "## Where each row's runs come from" in md and "## digits" in md and "## tinytext" in md
    assert r"\begin{tabular}" in (workdir / "results/leaderboard/tables/main.tex").read_text()
