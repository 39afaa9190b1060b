"""A sweep's jobs as the workflow plans them, without Snakemake: every split, extraction, score,
selection, paraphraser, probe, training and refit job with its output, its benchmark file and the jobs it
waits for (the same inputs the rules declare; the workflow takes a run's Φ file from here too).
aftbench.cost.bill prices them; a job whose output exists is done, as `snakemake -n` sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aftbench.core.layout import (
    LEADERBOARD_DIR,
    benchmark_path,
    factors_path,
    features_path,
    job_name,
    metrics_path,
    probe_logits_path,
    probe_run_id,
    real_set_of,
    runs_table_path,
    scores_path,
    selection_path,
    split_path,
    track_done,
)
from aftbench.core.roles import penalty_of
from aftbench.core.schema import setting
from aftbench.selection.adaptive import known_selections, scored_sets, selected_sets, selection_requests
from aftbench.sweep.expand import distilled_probe, expand_sweep
from aftbench.sweep.runs import Run, teachers_of
from aftbench.sweep.summary import target_source


@dataclass
class Job:
    kind: (
        str  # split | extract | score | select | paraphraser | probe | train | refit | aggregate | leaderboard | track
    )
    output: str  # the main output: it exists = the job is done
    benchmark: str | None  # the rule's benchmark: file (None where the rule has none)
    needs: list[str] = field(default_factory=list)  # outputs of the jobs this one waits for
    dataset: str | None = None
    teacher: str | None = None  # extraction
    teacher_set: str | None = None
    run: Run | None = None  # probe and train


def target_files(config: dict, dataset: str, teacher_set: str, method: str) -> list[str]:
    """The Φ file a training run's method reads instead of the features (FT's factors, the
    distilled probe's logits), or none."""
    m = config["methods"][method]
    source = target_source(penalty_of(m))
    if source == "factors":
        return [factors_path(dataset, teacher_set, method)]
    if source == "probe_logits":
        return [probe_logits_path(probe_run_id(dataset, distilled_probe(m), teacher_set))]
    return []


def _assumed_selections(config: dict, made: dict[str, list[str]]) -> tuple[dict[str, list[str]], list[str]]:
    """Selections made so far, and for each one not yet made its first top_k candidates as a stand-in
    (how much a student costs does not depend on which teachers it learns from; which caches are
    extracted does not either: every candidate is extracted and scored)."""
    out, assumed = dict(made), []
    for r in selection_requests(config):
        if r.digest not in out:
            out[r.digest] = list(r.candidates[: r.top_k])
            assumed.append(r.dataset)
    return out, assumed


def sweep_jobs(config: dict) -> tuple[dict[str, Job], list[str]]:
    """Every job of the configured sweep, by output; and the datasets whose adaptive selection is
    not made yet (their runs are planned on a stand-in selection)."""
    made = known_selections(config)
    selections, assumed = _assumed_selections(config, made)
    runs = expand_sweep(config, selections=selections)
    jobs: dict[str, Job] = {}

    def add(job: Job) -> str:
        jobs.setdefault(job.output, job)
        return job.output

    def split(d):
        return add(Job("split", split_path(d), benchmark_path("split", d), dataset=d))

    def features(d, ts):
        return [
            add(
                Job(
                    "extract",
                    features_path(d, t),
                    benchmark_path("extract", job_name(features_path(d, t))),
                    [split(d)],
                    d,
                    t,
                )
            )
            for t in teachers_of(config, ts)
        ]

    for d, ts in scored_sets(config):
        add(
            Job(
                "score",
                scores_path(d, ts),
                benchmark_path("score", job_name(scores_path(d, ts))),
                [split(d), *features(d, ts)],
                d,
                teacher_set=ts,
            )
        )
    picks = {}
    for r in selection_requests(config):
        out = add(
            Job(
                "select",
                selection_path(r.dataset, r.digest),
                None,
                [scores_path(r.dataset, c) for c in r.candidates],
                r.dataset,
            )
        )
        for ts in selected_sets(config, r, selections[r.digest]):
            picks[(r.dataset, ts)] = out
    for run in runs:
        d, ts = run.dataset, run.teacher_set
        needs = [split(d), *features(d, ts)]
        pick = picks.get((d, real_set_of(ts) or ts))  # a selected set's noise null waits for it too
        if pick:
            needs.append(pick)
        bench = benchmark_path("train", run.run_id)
        if run.kind == "probe":
            add(Job("probe", metrics_path(run.run_id), bench, needs, d, teacher_set=ts, run=run))
            continue
        for target in target_files(config, d, ts, run.method):
            needs.append(target)
            if target_source(config["methods"][run.method]["penalty"]) == "factors":
                add(
                    Job(
                        "paraphraser",
                        target,
                        benchmark_path("paraphraser", job_name(target)),
                        needs[:-1],
                        d,
                        teacher_set=ts,
                    )
                )
            else:
                needs[-1] = metrics_path(probe_run_id(d, distilled_probe(config["methods"][run.method]), ts))
        if run.grid:  # tune-then-refit: the refit waits for its tune stage's records
            needs.extend(metrics_path(t.run_id) for t in run.tune_stage)
        add(Job("refit" if run.grid else "train", metrics_path(run.run_id), bench, needs, d, teacher_set=ts, run=run))
    # the report reads every run, score and selection (the aggregate rule's inputs)
    reads = [j.output for j in jobs.values() if j.kind in ("train", "refit", "probe", "score", "select")]
    add(Job("aggregate", runs_table_path(config["sweep"]), None, reads))
    # the leaderboard after the report (other sweeps' reports, where they exist, are not jobs here)
    add(Job("leaderboard", f"{LEADERBOARD_DIR}/runs.csv", None, [runs_table_path(config["sweep"])]))
    if setting(config, "track") != "none":  # the tracker gets every run once they are done
        runs = [j.output for j in jobs.values() if j.kind in ("train", "refit", "probe")]
        add(Job("track", track_done(setting(config, "track"), config["sweep"]), None, runs))
    return jobs, assumed


def done(job: Job, root: str | Path = ".") -> bool:
    return (Path(root) / job.output).exists()
