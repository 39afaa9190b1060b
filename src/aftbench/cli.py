"""Command-line entry points: one subcommand per Snakemake rule (`python -m aftbench CMD`).

Rules stay thin: each passes its resolved spec as JSON plus input/output paths here, and the
work happens in the package. Heavy commands also take `--launcher L --job JSON`: with a launcher
other than `local` the same command is submitted as a job (aftbench.launch.launcher) and this process
only waits for it."""

from __future__ import annotations

import argparse
import json
import sys
import time

from submitit.helpers import Checkpointable

from aftbench.core import plugins
from aftbench.core.layout import RESULTS, job_name
from aftbench.cost import clock
from aftbench.launch.console import run_logged
from aftbench.launch.launcher import LAUNCHERS, name_job, submit_and_wait
from aftbench.launch.lifeline import stop_when_orphaned, watched_ancestors
from aftbench.project_commands import add_project_commands

from . import __version__


class Command(Checkpointable):
    """A submitted job: one `python -m aftbench` command (without `--launcher`), run on the job
    side from the installed package. Checkpointable: on a timeout or preemption signal submitit
    requeues it with the same arguments (training then resumes from its checkpoint file)."""

    def __call__(self, argv: list[str]) -> int:
        return main(argv)

    def preload(self, argv: list[str]) -> None:
        """Import what the command `argv` needs, once, before a pack forks a run per command
        (aftbench.launch.pack): the runs then share the start-up."""
        import importlib

        plugin_names, command = _leading_plugins(argv)
        for module in PRELOAD.get(command[0], ()):
            importlib.import_module(module)
        plugins.activate(plugin_names)
        plugins.import_active()


# What each packable command imports (its _cmd_* function's imports, and torch below them).
PRELOAD = {
    "extract": ("aftbench.teachers.extract",),
    "train": ("aftbench.train.loop", "aftbench.train.refit"),
    "probe": ("aftbench.train.probe",),
    "paraphraser": ("aftbench.train.paraphraser",),
    "score": ("aftbench.selection.scores",),
}


def _leading_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the plugins a job's command line names with a leading `--plugins a,b`, the rest)."""
    if argv and argv[0] == "--plugins":
        return _plugin_list(argv[1]), argv[2:]
    if argv and argv[0].startswith("--plugins="):
        return _plugin_list(argv[0].partition("=")[2]), argv[1:]
    return [], argv


def _plugin_list(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _without_launch_options(argv: list[str]) -> list[str]:
    """The command line the job runs: argv less `--launcher`/`--job`/`--log` (already parsed;
    the log is this waiting process's)."""
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
        elif tok in ("--launcher", "--job", "--log"):
            skip = True
        elif not tok.startswith(("--launcher=", "--job=", "--log=")):
            out.append(tok)
    return out


def _cmd_split(a):
    from aftbench.data.splits import make_split

    make_split(a.dataset, json.loads(a.spec), a.out, a.out_json)


def _cmd_extract(a):
    from aftbench.teachers.extract import extract

    extract(a.teacher, json.loads(a.spec), a.split, a.out, a.out_json, **json.loads(a.options))


def _cmd_train(a):
    from aftbench.train.loop import RunSpec, train_run
    from aftbench.train.refit import choose_tuned

    spec = json.loads(a.spec)
    if a.tuned:  # tune-then-refit: the tune stage chooses β (or label smoothing) on validation
        spec = choose_tuned(spec, a.tuned)
        print(f"{spec['tuning']['knob']} chosen on validation: {spec['tuning']['chosen']:g}")
    m = train_run(
        RunSpec.from_dict(spec),
        a.split,
        a.features,
        a.out,
        targets_path=a.targets[0] if a.targets else None,
    )
    val = "none (fitted on val)" if m["val_acc"] is None else f"{m['val_acc']:.4f}"
    print(f"val_acc={val} test_acc={m['test_acc']:.4f} train_seconds={m['train_seconds']}")


def _cmd_probe(a):
    from aftbench.train.probe import probe_run

    s = json.loads(a.spec)
    m = probe_run(
        s["run_id"],
        s["dataset"],
        s["teacher_set"],
        s["teachers"],
        s["method_id"],
        s["method"],
        a.split,
        a.features,
        a.out,
        logits_out=a.logits_out,
    )
    print(f"val_acc={m['val_acc']:.4f} test_acc={m['test_acc']:.4f} C={m['C']}")


def _cmd_paraphraser(a):
    from aftbench.train.paraphraser import make_factors

    make_factors(a.features, a.teachers, a.split, json.loads(a.args), a.out, a.out_json)


def _cmd_score(a):
    from aftbench.selection.scores import score_teacher_set

    rec = score_teacher_set(a.dataset, a.teacher_set, a.teachers, a.split, a.features, json.loads(a.options), a.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in rec["scores"].items()), f"({rec['n_examples']} train examples)")


def _cmd_select(a):
    from aftbench.selection.scores import select_teacher_sets

    rec = select_teacher_sets(json.loads(a.request), a.scores, a.out, json.loads(a.teacher_sets))
    print(f"{rec['dataset']}: by {rec['by']}: ranking {rec['ranking']}; training on {rec['trained']}")


def _cmd_report(a):
    from aftbench.report.build import build_report

    paths = list(a.metrics)
    if a.metrics_list:
        paths += [p for p in open(a.metrics_list).read().split() if p]
    headline = json.loads(a.headline) if a.headline else {}
    runs = build_report(
        paths,
        a.out_dir,
        scores=a.scores,
        selections=a.selections,
        headline=headline,
        delta=a.equivalence_margin,
        figures=a.figures,
    )
    print(f"aggregated {len(runs)} runs into {a.out_dir}/runs.csv, {a.out_dir}/tables/, {a.out_dir}/figures/")


def _cmd_track(a):
    from aftbench.report.track import track_runs

    n = track_runs(a.metrics, a.sink, a.sweep, json.loads(a.options), a.out)
    print(f"{a.sink}: sent {n['sent']} runs, {n['unchanged']} unchanged since last sent ({a.out})")


def main(argv=None) -> int:
    as_process = argv is None  # `python -m aftbench ...` (a rule's job), not a call from Python
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="aftbench", description=__doc__)
    p.add_argument("--version", action="version", version=f"aftbench {__version__}")
    p.add_argument(
        "--log",
        help="a rule's log: the command runs in a child process writing here, and how it ended (a failure's "
        "cause, a signal, the out-of-memory killer) reaches the console when the log cannot say it "
        "(aftbench.launch.console)",
    )
    p.add_argument(
        "--plugins",
        type=_plugin_list,
        metavar="MODULE,...",
        help="import these plugin modules first (config.yaml `plugins:`; the rules pass it to every job)",
    )
    launch = argparse.ArgumentParser(add_help=False)
    g = launch.add_argument_group("where the job runs (aftbench.launch.launcher)")
    g.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: in this process; submitit_local / slurm: submitted as a job, this process waits",
    )
    g.add_argument(
        "--job",
        type=json.loads,
        help="the job spec (resources, deadline, requeues) from "
        "aftbench.launch.launcher.job_spec, as JSON; needed by submitit_local / slurm",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="draw and write a dataset's fixed train/val/test split")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", required=True, help="the dataset's config entry, as JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(fn=_cmd_split)
    s = sub.add_parser("extract", help="cache one teacher's features on one dataset", parents=[launch])
    s.add_argument("--teacher", required=True)
    s.add_argument("--spec", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument(
        "--options",
        default="{}",
        help="config.yaml's `extract:` block, as JSON (threads, device, amp, batch_size, workers, store)",
    )
    s.set_defaults(fn=_cmd_extract)
    for name, fn, helptext in (
        ("train", _cmd_train, "train one student with one method"),
        ("probe", _cmd_probe, "linear probe on a teacher set's features"),
    ):
        s = sub.add_parser(name, help=helptext, parents=[launch])
        s.add_argument("--spec", required=True, help="resolved run spec, as JSON")
        s.add_argument("--split", required=True)
        s.add_argument("--features", nargs="*", default=[])
        s.add_argument("--out", required=True)
        s.set_defaults(fn=fn)
        if name == "train":
            s.add_argument(
                "--targets", nargs="*", default=[], help="Φ file (factors / probe logits), if the method needs one"
            )
            s.add_argument(
                "--tuned",
                nargs="*",
                default=[],
                help="a refit run's tune stage: its runs' metrics.json (fitted on train, one per value of the grid)",
            )
        else:
            s.add_argument("--logits-out", help="also write the probe's logits on every split here")
    s = sub.add_parser(
        "paraphraser", help="factor transfer: fit the paraphraser on train features, cache factors", parents=[launch]
    )
    s.add_argument("--teachers", nargs="+", required=True)
    s.add_argument("--features", nargs="+", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--args", default="{}", help="the method's args, as JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(fn=_cmd_paraphraser)
    s = sub.add_parser(
        "score", help="transferability scores of one teacher set (training split only)", parents=[launch]
    )
    s.add_argument("--dataset", required=True)
    s.add_argument("--teacher-set", required=True)
    s.add_argument("--teachers", nargs="+", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--features", nargs="+", required=True)
    s.add_argument("--options", default="{}", help="config.yaml's `scores:` block, as JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_score)
    s = sub.add_parser("select", help="an adaptive block's selection: rank candidates' scores, keep the top k")
    s.add_argument(
        "--request", required=True, help="the selection request (aftbench.selection.adaptive.SelectRequest), as JSON"
    )
    s.add_argument("--scores", nargs="+", required=True)
    s.add_argument(
        "--teacher-sets",
        default="{}",
        help="the configured sets a union may be named after (adaptive.related_sets), as JSON",
    )
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_select)
    s = sub.add_parser("track", help="send finished runs' settings, curves and final metrics to a tracker")
    s.add_argument("--sink", required=True, choices=["tensorboard", "mlflow", "wandb"])
    s.add_argument("--sweep", required=True, help="the sweep's id (the MLflow experiment, the W&B project)")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--options", default="{}", help="config.yaml's `track_options`, as JSON")
    s.add_argument("--out", required=True, help="the manifest: what was sent, per run id")
    s.set_defaults(fn=_cmd_track)
    s = sub.add_parser("report", help="aggregate finished runs into runs.csv, tables and figures")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--scores", nargs="*", default=[], help="teacher-set score files (the score step's)")
    s.add_argument("--selections", nargs="*", default=[], help="adaptive blocks' selection files")
    s.add_argument("--metrics-list", help="file listing metrics paths (whitespace separated)")
    s.add_argument("--out-dir", default=RESULTS)
    s.add_argument("--headline", help="JSON {modality: [teacher set, ...]}: config.yaml headline_sets")
    s.add_argument(
        "--figures",
        nargs="*",
        help="the claim and gain figures to draw (default: those the runs support; aftbench.report.drawable)",
    )
    s.add_argument(
        "--equivalence-margin", type=float, default=0.5, help="the claims' δ, points: config.yaml equivalence_margin"
    )
    s.set_defaults(fn=_cmd_report)
    add_project_commands(sub)
    a = p.parse_args(argv)
    # The Snakemake this job runs under, found now: a child forked below might look only after a
    # kill -9 of Snakemake had already cut it from its ancestors, and so never notice.
    owners = watched_ancestors() if as_process and getattr(a, "launcher", None) == "local" else None
    if as_process and a.log:
        out = getattr(a, "out", None) or getattr(a, "out_dir", None)
        what = f"{a.cmd} {job_name(out)}" if out else a.cmd
        t0 = time.monotonic()
        rc = run_logged(lambda: _run(p, a, argv, owners), what, a.log)
        output = getattr(a, "out", None) or (f"{a.out_dir}/runs.csv" if getattr(a, "out_dir", None) else None)
        if rc == 0 and (line := clock.tick(output, time.monotonic() - t0)):
            print(line, flush=True)  # the console: what is left of the sweep (aftbench.cost.clock)
        return rc
    return _run(p, a, argv, owners)


def _run(p, a, argv: list[str], owners: list[int] | None) -> int:
    if getattr(a, "launcher", "local") != "local":
        if a.job is None:
            p.error(f"--launcher {a.launcher} needs --job (the job spec from aftbench.launch.launcher.job_spec)")
        return submit_and_wait(a.launcher, name_job(a.job, a.out), _without_launch_options(argv), Command())
    if a.cmd != "list":  # the job's plugins (and installed ones) register their entries; list adds the config's
        plugins.activate(a.plugins or [])
        plugins.import_active()
    if owners is not None:
        stop_when_orphaned(owners)  # Snakemake killed (even -9): this job stops too, instead of running unowned
    return a.fn(a) or 0


if __name__ == "__main__":
    sys.exit(main())
