"""Command-line entry points: one subcommand per Snakemake rule (`python -m aftbench CMD`).

Rules stay thin: each passes its resolved spec as JSON plus input/output paths here, and the
work happens in the package. Heavy rules also pass `--launcher L --job JSON`: with a launcher
other than `local` the same command is submitted as a job (aftbench.launcher) and this process
only waits for it."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_split(a):
    from .datasets import make_split

    make_split(a.dataset, json.loads(a.spec), a.out, a.out_json)


def _cmd_extract(a):
    from .teachers import extract

    extract(a.teacher, json.loads(a.spec), a.split, a.out, a.out_json, **json.loads(a.options))


def _cmd_train(a):
    from .train import RunSpec, train_run

    m = train_run(RunSpec.from_dict(json.loads(a.spec)), a.split, a.features, a.out,
                  targets_path=a.targets[0] if a.targets else None)
    print(f"val_acc={m['val_acc']:.4f} test_acc={m['test_acc']:.4f} train_seconds={m['train_seconds']}")


def _cmd_probe(a):
    from .probe import probe_run

    s = json.loads(a.spec)
    m = probe_run(s["run_id"], s["dataset"], s["teacher_set"], s["teachers"], s["method"], a.split, a.features, a.out,
                  logits_out=a.logits_out)
    print(f"val_acc={m['val_acc']:.4f} test_acc={m['test_acc']:.4f} C={m['C']}")


def _cmd_paraphraser(a):
    from .methods.ft import make_factors

    make_factors(a.features, a.teachers, a.split, json.loads(a.args), a.out, a.out_json)


def _cmd_report(a):
    from .report import build_report

    paths = list(a.metrics)
    if a.metrics_list:
        paths += [p for p in open(a.metrics_list).read().split() if p]
    runs = build_report(paths, a.out_dir)
    print(f"aggregated {len(runs)} runs into {a.out_dir}/runs.csv, {a.out_dir}/tables/, {a.out_dir}/figures/")


def _cmd_validate(a):
    import yaml

    from .config import check_config, expand_sweep, validate_schema

    cfg = yaml.safe_load(open(a.config))
    validate_schema(cfg)
    check_config(cfg)
    print(f"{a.config}: valid; sweep {cfg['sweep']!r} has {len(expand_sweep(cfg))} runs")


def main(argv=None) -> int:
    from .launcher import split_launch_args, submit_and_wait

    launcher, job, argv = split_launch_args(list(sys.argv[1:] if argv is None else argv))
    if launcher != "local":
        return submit_and_wait(launcher, job, argv)
    p = argparse.ArgumentParser(prog="aftbench", description=__doc__,
                                epilog="Any command also takes --launcher {local,submitit_local,slurm} and --job JSON "
                                       "(see aftbench.launcher).")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="draw and write a dataset's fixed train/val/test split")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", required=True, help="the dataset's config entry, as JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(fn=_cmd_split)
    s = sub.add_parser("extract", help="cache one teacher's features on one dataset")
    s.add_argument("--teacher", required=True)
    s.add_argument("--spec", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument("--options", default="{}", help="config.yaml's `extract:` block, as JSON (threads, device, amp, "
                                                  "batch_size, workers, store)")
    s.set_defaults(fn=_cmd_extract)
    for name, fn, helptext in (("train", _cmd_train, "train one student with one method"),
                               ("probe", _cmd_probe, "linear probe on a teacher set's features")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--spec", required=True, help="resolved run spec, as JSON")
        s.add_argument("--split", required=True)
        s.add_argument("--features", nargs="*", default=[])
        s.add_argument("--out", required=True)
        s.set_defaults(fn=fn)
        if name == "train":
            s.add_argument("--targets", nargs="*", default=[], help="Φ file (factors / probe logits), if the method needs one")
        else:
            s.add_argument("--logits-out", help="also write the probe's logits on every split here")
    s = sub.add_parser("paraphraser", help="factor transfer: fit the paraphraser on train features, cache factors")
    s.add_argument("--teachers", nargs="+", required=True)
    s.add_argument("--features", nargs="+", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--args", default="{}", help="the method's args, as JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(fn=_cmd_paraphraser)
    s = sub.add_parser("report", help="aggregate finished runs into runs.csv, tables and figures")
    s.add_argument("--metrics", nargs="*", default=[])
    s.add_argument("--metrics-list", help="file listing metrics paths (whitespace separated)")
    s.add_argument("--out-dir", default="results")
    s.set_defaults(fn=_cmd_report)
    s = sub.add_parser("validate", help="validate a config file against the schema and registries")
    s.add_argument("--config", default="config.yaml")
    s.set_defaults(fn=_cmd_validate)
    a = p.parse_args(argv)
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
