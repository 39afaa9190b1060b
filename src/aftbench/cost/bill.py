"""The bill of a sweep before it is submitted: jobs per kind, teacher, student and method; FLOPs
(aftbench.cost.flops, counted on the meta device: no weights, no download); device-hours at the
`cost.devices` table's achieved FLOP/s plus a fixed start-up per job; feature-cache and split
bytes; and the wall time on N GPUs with the DAG's own dependencies (list scheduling of the jobs:
splits, then extraction, scores and selections, then training). Jobs whose output exists are done
and cost nothing (as `snakemake -n` sees them), so the bill is what is left.

`python -m aftbench cost --config sweep=NAME [--device h100] [--gpus 8 64]`; with
`--compare results/benchmarks` it also sets each finished job's estimate against its measured
seconds (aftbench.cost.measured; the calibration in docs/cost.md)."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aftbench.core.declare import native_image_shape
from aftbench.core.io import read_json
from aftbench.core.layout import NO_TEACHERS, sidecar, split_images_dir, split_path
from aftbench.core.schema import defaults, setting
from aftbench.cost.flops import student_flops, teacher_flops
from aftbench.sweep.plan import Job, done, sweep_jobs
from aftbench.sweep.runs import train_spec
from aftbench.sweep.summary import describe
from aftbench.teachers.registry import BACKENDS

FLOP_KINDS = ("extract", "train", "refit")  # priced by FLOPs on the chosen device; the rest: start-up only, on CPUs
TRAINING_KINDS = ("train", "refit")  # a refit (tune-then-refit) is one more training run: priced as one
STORE_BYTES = {"float32": 4, "float16": 2, "auto": 2}  # auto stores float16 wherever it is exact enough
WORDS_TO_TOKENS = 1.3  # sub-word tokens per whitespace word (English, BPE / WordPiece), for text lengths


@dataclass
class Priced:
    job: Job
    flops: float  # 0 for kinds priced by start-up only
    seconds: float
    on_gpu: bool
    done: bool


def cost_settings(config: dict) -> dict:
    return {**defaults("cost"), **config.get("cost", {})}


def device_entry(config: dict, device: str | None) -> tuple[str, dict]:
    c = cost_settings(config)
    name = device or c["device"]
    if name not in c["devices"]:
        raise ValueError(
            f"cost: device {name!r} is not in cost.devices (known: {sorted(c['devices'])}); add its achieved FLOP/s there"
        )
    return name, c["devices"][name]


def _n_classes(dataset: str, root: Path) -> int:
    """The dataset's number of classes from its split's sidecar, else 10 (the head's width barely
    matters before the split exists)."""
    meta = root / sidecar(split_path(dataset))
    return len(read_json(meta)["classes"]) if meta.is_file() else 10


def n_examples(config: dict, dataset: str) -> int:
    d = config["datasets"][dataset]
    return int(d["n_train"]) + int(d["n_val"]) + int(d["n_test"])


def image_shape(config: dict, dataset: str) -> tuple[int, int, int] | None:
    """The stored (height, width, channels) of a dataset's images: its `image_size`, else the
    native shape its loader declares (None: unknown, or no images)."""
    d = config["datasets"][dataset]
    if "image" not in d["modality"]:
        return None
    args = d.get("args", {})
    if "image_size" in args:
        return (int(args["image_size"]), int(args["image_size"]), 3)
    return native_image_shape(describe()["loaders"][d["loader"]], args)


class TextLengths:
    """Mean tokens per example of a dataset's texts, capped at a model's max_length: from the split
    where it exists (whitespace words × 1.3), else max_length itself (an upper bound)."""

    def __init__(self, root: Path):
        self.root, self._words = root, {}

    def words(self, dataset: str) -> np.ndarray | None:
        if dataset not in self._words:
            p = self.root / split_path(dataset)
            words = None
            if p.is_file():
                with np.load(p) as z:
                    texts = [
                        t for part in ("train", "val", "test") if f"{part}_texts" in z.files for t in z[f"{part}_texts"]
                    ]
                if texts:
                    words = np.array([len(str(t).split()) for t in texts], float)
            self._words[dataset] = words
        return self._words[dataset]

    def tokens(self, dataset: str, max_length: int) -> int:
        w = self.words(dataset)
        if w is None:
            return max_length
        return max(1, int(round(np.minimum(w * WORDS_TO_TOKENS + 2, max_length).mean())))  # + [CLS]/[SEP]


def _token_limit(spec: dict) -> tuple[str, int] | None:
    """The argument capping a text teacher's tokens and its value (the backend declares which),
    or None where its cost does not depend on a text's length."""
    cls = BACKENDS.entry(spec["backend"])
    if cls.token_limit is None:
        return None
    return cls.token_limit, spec.get("args", {}).get(cls.token_limit, cls.arg_default(cls.token_limit))


class Pricer:
    """FLOPs and seconds of each job; every model is counted once per shape."""

    def __init__(self, config: dict, device: str | None, root: Path):
        self.config, self.root = config, root
        self.device, self.entry = device_entry(config, device)
        c = cost_settings(config)
        self.overhead = {**c["overhead_s"], **self.entry.get("overhead_s", {})}
        self.lengths = TextLengths(root)
        self._teachers, self._students, self._classes = {}, {}, {}

    def teacher(self, dataset: str, teacher: str):
        spec = self.config["teachers"][teacher]
        limit = _token_limit(spec)
        tokens = self.lengths.tokens(dataset, limit[1]) if limit else 0
        key = (teacher, tokens)
        if key not in self._teachers:
            at = {**spec, "args": {**spec.get("args", {}), limit[0]: tokens}} if limit else spec
            self._teachers[key] = teacher_flops(at)
        return self._teachers[key]

    def student(self, dataset: str, student: str, batch_size: int):
        d = self.config["datasets"][dataset]
        if dataset not in self._classes:  # one sidecar read per dataset, not per training job
            self._classes[dataset] = _n_classes(dataset, self.root)
        n_classes = self._classes[dataset]
        shape = image_shape(self.config, dataset) or (32, 32, 3)
        key = (student, batch_size, d["modality"], shape[0], n_classes)
        if key not in self._students:
            self._students[key] = student_flops(
                self.config["students"][student], n_classes, batch_size, d["modality"], shape[0]
            )
        return self._students[key]

    def flops(self, job: Job) -> float:
        if job.kind == "extract":
            return self.teacher(job.dataset, job.teacher).per_example * n_examples(self.config, job.dataset)
        if job.kind in TRAINING_KINDS:
            spec = train_spec(self.config, job.run)
            t = spec["train"]
            f = self.student(job.dataset, job.run.student, int(t["batch_size"]))
            d = self.config["datasets"][job.dataset]
            return f.per_step * int(t["steps"]) + f.per_eval_example * (int(d["n_val"]) + int(d["n_test"]))
        return 0.0

    def price(self, job: Job) -> Priced:
        flops = self.flops(job)
        kind = "train" if job.kind in TRAINING_KINDS else job.kind
        seconds = float(self.overhead.get(kind, 0.0))
        if job.kind in FLOP_KINDS:
            seconds += flops / (float(self.entry[f"{kind}_tflops"]) * 1e12)
        on_gpu = job.kind in FLOP_KINDS and bool(self.entry.get("gpu", False))
        return Priced(job, flops, seconds, on_gpu, done(job, self.root))


def cache_bytes(config: dict, pricer: Pricer, dataset: str, teacher: str) -> int:
    store = STORE_BYTES[setting(config, "extract", "store")]
    return n_examples(config, dataset) * pricer.teacher(dataset, teacher).dim * store


def split_bytes(config: dict, dataset: str, root: Path) -> int | None:
    """On disk where the split exists; else its images (N × H × W × C uint8; texts not counted)."""
    npz = root / split_path(dataset)
    if npz.is_file():
        images = Path(split_images_dir(npz))
        return npz.stat().st_size + sum(p.stat().st_size for p in images.glob("*.npy"))
    shape = image_shape(config, dataset)
    return n_examples(config, dataset) * int(np.prod(shape)) if shape else None


def wall_time(priced: list[Priced], slots: int, every_job: bool = False) -> float:
    """Seconds until every left job is done with `slots` GPUs (jobs on CPUs never wait for one), or
    with `slots` cores that every job takes one of (`every_job`): list scheduling in dependency
    order, the longest ready job first."""
    left = {p.job.output: p for p in priced if not p.done}
    if every_job:
        left = {o: Priced(p.job, p.flops, p.seconds, True, False) for o, p in left.items()}
    gpus = slots
    waiting = {o: {n for n in p.job.needs if n in left} for o, p in left.items()}
    users = defaultdict(list)
    for o, needs in waiting.items():
        for n in needs:
            users[n].append(o)
    ready_at = {o: 0.0 for o, n in waiting.items() if not n}
    queue = [(-left[o].seconds, o) for o in ready_at if left[o].on_gpu]
    heapq.heapify(queue)
    events, finished, free, clock = [], {}, gpus, 0.0
    for o in ready_at:
        if not left[o].on_gpu:
            heapq.heappush(events, (left[o].seconds, o))

    def release(o, t):
        finished[o] = t
        for u in users[o]:
            waiting[u].discard(o)
            if not waiting[u]:
                if left[u].on_gpu:
                    heapq.heappush(queue, (-left[u].seconds, u))
                else:
                    heapq.heappush(events, (t + left[u].seconds, u))

    while queue or events:
        while queue and free > 0:
            _, o = heapq.heappop(queue)
            free -= 1
            heapq.heappush(events, (clock + left[o].seconds, o))
        if not events:
            break
        clock, o = heapq.heappop(events)
        if left[o].on_gpu:
            free += 1
        release(o, clock)
    if len(finished) != len(left):
        raise RuntimeError(f"cost: {len(left) - len(finished)} jobs wait on each other (a cycle in the plan)")
    return max(finished.values(), default=0.0)


@dataclass
class Estimate:
    sweep: str
    device: str
    on_gpu: bool
    priced: list[Priced]
    assumed: list[str]  # datasets whose adaptive selection is not made yet
    caches: pd.DataFrame  # dataset, teacher, examples, dim, bytes
    splits: pd.DataFrame  # dataset, examples, bytes

    def frame(self) -> pd.DataFrame:
        rows = []
        for p in self.priced:
            j, run = p.job, p.job.run
            rows.append(
                {
                    "kind": j.kind,
                    "output": j.output,
                    "dataset": j.dataset,
                    "teacher": j.teacher,
                    "teacher_set": j.teacher_set,
                    "student": run.student if run and run.kind == "train" else None,
                    "method": run.method if run else None,
                    "flops": p.flops,
                    "seconds": p.seconds,
                    "on_gpu": p.on_gpu,
                    "done": p.done,
                }
            )
        return pd.DataFrame(rows)


def estimate(config: dict, device: str | None = None, root: str | Path = ".", everything: bool = False) -> Estimate:
    """The sweep's jobs, priced; finished ones are marked done (free) unless `everything`."""
    root = Path(root)
    jobs, assumed = sweep_jobs(config)
    pricer = Pricer(config, device, root)
    priced = [pricer.price(j) for j in jobs.values()]
    if everything:
        for p in priced:
            p.done = False
    finished = {p.job.output: p.done for p in priced}
    caches = pd.DataFrame(
        [
            {
                "dataset": j.dataset,
                "teacher": j.teacher,
                "examples": n_examples(config, j.dataset),
                "dim": pricer.teacher(j.dataset, j.teacher).dim,
                "bytes": cache_bytes(config, pricer, j.dataset, j.teacher),
                "done": finished[j.output],
            }
            for j in jobs.values()
            if j.kind == "extract"
        ]
    )
    splits = pd.DataFrame(
        [
            {
                "dataset": j.dataset,
                "examples": n_examples(config, j.dataset),
                "bytes": split_bytes(config, j.dataset, root),
                "done": finished[j.output],
            }
            for j in jobs.values()
            if j.kind == "split"
        ]
    )
    return Estimate(
        config["sweep"], pricer.device, bool(pricer.entry.get("gpu", False)), priced, assumed, caches, splits
    )


# ----------------------------------------------------------------------------- the printed bill
def _h(seconds: float) -> float:
    return seconds / 3600.0


def markdown_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=",.4g") if len(df) else "(none)"


def _by(df: pd.DataFrame, key: str, hours: str) -> pd.DataFrame:
    g = df.groupby(key, dropna=True)
    out = pd.DataFrame({"jobs": g.size(), "PFLOP": g["flops"].sum() / 1e15, hours: g["seconds"].sum() / 3600})
    out["share"] = out[hours] / max(out[hours].sum(), 1e-12)
    return out.sort_values(hours, ascending=False).reset_index()


def render(est: Estimate, gpus: list[int]) -> str:
    df = est.frame()
    left = df[~df["done"]]
    unit = "GPU-hours" if est.on_gpu else "core-hours"
    lines = [
        f"# Cost of sweep `{est.sweep}` on `{est.device}`",
        "",
        f"{len(df):,} jobs planned, {int(df['done'].sum()):,} done (outputs exist, not counted), **{len(left):,} left**.",
    ]
    if est.assumed:
        lines.append(
            f"Adaptive selections not made yet on {', '.join(sorted(set(est.assumed)))}: their runs are priced on the "
            f"first top_k candidates (a student's cost does not depend on which teachers it learns from)."
        )
    gpu_s = left.loc[left["on_gpu"], "seconds"].sum()
    cpu_s = left.loc[~left["on_gpu"], "seconds"].sum()
    lines += [
        "",
        f"Left: **{left['flops'].sum() / 1e15:,.4g} PFLOP**, "
        + (
            f"**{_h(gpu_s):,.4g} GPU-hours** (extraction + training) and {_h(cpu_s):,.4g} CPU core-hours (the rest)"
            if est.on_gpu
            else f"**{_h(cpu_s):,.4g} core-hours**"
        )
        + ".",
        "",
        "## By kind",
        "",
    ]
    kinds = left.groupby("kind").agg(jobs=("kind", "size"), PFLOP=("flops", "sum"), hours=("seconds", "sum"))
    kinds["PFLOP"] /= 1e15
    kinds["hours"] /= 3600
    kinds["runs on"] = ["GPU" if est.on_gpu and k in FLOP_KINDS else "CPU" for k in kinds.index]
    lines += [markdown_table(kinds.reset_index().rename(columns={"hours": unit if est.on_gpu else "core-hours"})), ""]
    ext = left[left["kind"] == "extract"]
    lines += ["## Extraction by teacher", "", markdown_table(_by(ext, "teacher", unit)), ""]
    train = left[left["kind"].isin(TRAINING_KINDS)]
    lines += ["## Training by student", "", markdown_table(_by(train, "student", unit)), ""]
    lines += ["## Training by method", "", markdown_table(_by(train, "method", unit)), ""]
    lines += [
        "## Training by teacher set",
        "",
        markdown_table(_by(train[train["teacher_set"] != NO_TEACHERS], "teacher_set", unit)),
        "",
    ]
    caches = est.caches[~est.caches["done"]] if len(est.caches) else est.caches
    splits = est.splits[~est.splits["done"]] if len(est.splits) else est.splits
    known = splits["bytes"].dropna() if len(splits) else pd.Series(dtype=float)
    lines += [
        "## Disk",
        "",
        f"Feature caches left: **{caches['bytes'].sum() / 1e9:,.4g} GB** in {len(caches)} files "
        "(N × d × the stored dtype; `store: auto` is priced at float16: a teacher whose features need "
        "float32 doubles its file). "
        f"Splits left: **{known.sum() / 1e9:,.4g} GB** of images"
        + (
            f" ({len(splits) - len(known)} text-only or of unknown image size not counted)"
            if len(splits) - len(known)
            else ""
        )
        + ".",
        "",
    ]
    if len(caches):
        big = caches.groupby("teacher")["bytes"].sum().sort_values(ascending=False) / 1e9
        lines += [markdown_table(big.rename("GB").reset_index()), ""]
    lines += ["## Wall time", ""]
    what = "GPUs" if est.on_gpu else "cores"
    crit = wall_time(est.priced, 10**9)
    rows = [{what: "unlimited (critical path)", "hours": _h(crit)}] + [
        {what: str(n), "hours": _h(wall_time(est.priced, n, every_job=not est.on_gpu))} for n in gpus
    ]
    lines += [
        markdown_table(pd.DataFrame(rows)),
        "",
        "List scheduling of the left jobs in dependency order (split → extract → score → select → train → refit); "
        "extraction and training take one GPU each, the other jobs run on CPUs beside them. Queue waits are not "
        "modelled."
        if est.on_gpu
        else "Jobs on N cores, one core each, in dependency order (Snakemake's `--cores N`).",
    ]
    return "\n".join(lines) + "\n"
