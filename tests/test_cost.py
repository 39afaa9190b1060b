"""`python -m aftbench cost`: FLOPs counted on the meta device against hand-computed values, the
sweep's jobs as Snakemake plans them, finished outputs free, wall time by list scheduling, and
the comparison with measured benchmark files."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from test_pipeline import smk, tiny_config
from tiny_specs import TEACHER_SPECS

from aftbench.config.check import validate_config
from aftbench.core.weights import FlopCountError, hf_config
from aftbench.cost.bill import Priced, estimate, render, wall_time
from aftbench.cost.flops import student_flops, teacher_flops
from aftbench.cost.measured import compare
from aftbench.sweep.plan import Job, sweep_jobs
from aftbench.teachers.registry import BACKENDS


def test_tiny_vit_forward_flops_by_hand():
    """timm ViT, 2 blocks of width 64 at 224 px / 16 px patches: 196 patches + the class token."""
    D, depth, P, C = 64, 2, 16, 3
    spec = {
        "backend": "timm",
        "args": {"model": "vit_tiny_patch16_224", "model_args": {"embed_dim": D, "depth": depth, "num_heads": 2}},
    }
    n_patch = (224 // P) ** 2
    N = n_patch + 1
    patch_embed = 2 * n_patch * (P * P * C) * D
    block = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * (2 * N * D * 4 * D)
    f = teacher_flops(spec)
    assert f.dim == D
    assert f.per_example == patch_embed + depth * block


def test_tiny_transformer_forward_flops_by_hand(tiny_bert):
    """The local tiny BERT (width 12, 1 layer, FFN 16) at max_length 8: per layer QKV, scores,
    attention × V, output projection and FFN, plus the pooler's one dense layer on [CLS]."""
    H, ffn, L, layers = 12, 16, 8, 1
    layer = 3 * 2 * L * H * H + 2 * 2 * L * L * H + 2 * L * H * H + 2 * 2 * L * H * ffn
    f = teacher_flops({"backend": "hf", "args": {"model": tiny_bert, "max_length": L}})
    assert f.dim == H
    assert f.per_example == layers * layer + 2 * H * H
    # the count grows with the configured length (attention quadratically)
    assert (
        teacher_flops({"backend": "hf", "args": {"model": tiny_bert, "max_length": 2 * L}}).per_example
        > 2 * f.per_example
    )


def test_student_step_is_forward_and_backward(tiny_bert):
    """A training step costs 2–3× its forward per example (backward: grads of inputs and weights;
    the embedding table's look-up costs nothing)."""
    f = student_flops({"arch": "hf_classifier", "args": {"model": tiny_bert, "max_length": 8}}, 3, 16, "text")
    assert 2.0 <= f.per_step / (16 * f.per_eval_example) <= 3.0
    cnn = student_flops({"arch": "cnn", "args": {"width": 4, "depth": 2, "image_size": 8}}, 10, 32, "image", 8)
    # conv 3→4 at 8×8 and 4→8 at 4×4 (3×3 kernels), then the head 8→10: forward per example
    assert cnn.per_eval_example == 2 * (8 * 8 * 4 * 3 * 9 + 4 * 4 * 8 * 4 * 9 + 8 * 10)


@pytest.mark.parametrize("name", TEACHER_SPECS)
def test_every_teacher_backend_is_priced(name, tiny_models):
    """Every backend (one tiny spec each, tests/tiny_specs.py) is counted from what its class
    declares: look-ups and noise at 0 FLOPs, networks above 0 at the width the built teacher has.
    Text networks are priced as the bill prices them, at a length below their token limit (the
    tiny models have 64 positions)."""
    from aftbench.teachers.registry import build_teacher

    spec = TEACHER_SPECS[name](tiny_models)
    cls = BACKENDS.entry(spec["backend"])
    f = teacher_flops({**spec, "args": {**spec.get("args", {}), cls.token_limit: 16}} if cls.token_limit else spec)
    assert f.dim == build_teacher(spec).dim
    assert (f.per_example > 0) == cls.counts_flops


def test_a_network_backend_without_meta_forward_is_named(monkeypatch):
    """A new backend that runs a network but declares no weightless forward: cost names it and the fix."""
    from aftbench.teachers.controls import RandomProjection

    class NewNet(RandomProjection):
        counts_flops = True

    monkeypatch.setitem(BACKENDS, "new_net", NewNet)
    with pytest.raises(FlopCountError, match=r"'new_net'.*NewNet.*declares no meta_forward"):
        teacher_flops({"backend": "new_net", "args": {"dim": 3}})


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="checks the offline fallback (HF_HUB_OFFLINE=1)")
def test_hub_architecture_offline():
    """A hub model of config.yaml is counted from the shipped architecture table; an unknown one
    says where to add it."""
    assert hf_config("google/flan-t5-small").d_model == 512
    with pytest.raises(FlopCountError, match="hub_architectures.yaml"):
        hf_config("nobody/no-such-model-aftbench")


@pytest.fixture
def tiny(text_tsv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return validate_config(tiny_config(text_tsv))


RULE_KIND = {
    "split": "split",
    "extract_features": "extract",
    "score_teachers": "score",
    "select_teachers": "select",
    "train": "train",
    "refit": "refit",
    "probe": "probe",
    "train_paraphraser": "paraphraser",
    "aggregate": "aggregate",
    "leaderboard": "leaderboard",
    "track": "track",
}


def dry_run_jobs(output: str) -> list[dict]:
    """Every job a `snakemake -n` prints: its rule, outputs, inputs and benchmark file."""
    jobs = []
    for block in re.split(r"^rule ", output, flags=re.M)[1:]:
        rule, _, body = block.partition(":\n")
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        jobs.append(
            {
                "rule": rule,
                "output": fields.get("output", "").split(", "),
                "input": [f for f in fields.get("input", "").split(", ") if f],
                "benchmark": fields.get("benchmark"),
            }
        )
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    ["plain", "noise nulls", "tune-then-refit", "tracked"],
    ids=["tiny", "tiny with noise nulls", "tiny refitted", "tiny tracked"],
)
def test_the_plan_is_the_dag_snakemake_builds(text_tsv, tmp_path, variant):
    """The jobs `cost` prices are exactly the jobs `snakemake -n` plans, one to one: the same
    outputs, kinds and benchmark files, and each job waits for exactly the jobs whose outputs
    Snakemake gives it as inputs."""
    cfg = tiny_config(text_tsv)
    for block in cfg["sweeps"]["tiny"]:
        block["noise_null"] = variant == "noise nulls"
        if variant == "tune-then-refit":  # aft's grid [0.5, 2] and STL's label smoothing: tune runs and refits
            block.update(train={"fit_on": "train+val"}, beta={"stl": [0.0, 0.1]})
    if variant == "tracked":
        cfg["track"] = "tensorboard"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dag = [j for j in dry_run_jobs(smk(tmp_path, "-n").stdout) if j["rule"] != "all"]
    jobs, assumed = sweep_jobs(validate_config(cfg))
    assert not assumed and len(jobs) == len(dag) > 20
    main = {}  # every file a job makes -> the output the plan names that job by
    for j in dag:
        [main[j["output"][0]]] = [out for out in j["output"] if out in jobs]
        main.update({out: main[j["output"][0]] for out in j["output"]})
    for j in dag:
        job = jobs[main[j["output"][0]]]
        assert job.kind == RULE_KIND[j["rule"]], job.output
        assert job.benchmark == j["benchmark"], job.output
        assert sorted(set(job.needs)) == sorted({main[f] for f in j["input"] if f in main}), job.output


def test_finished_outputs_drop_out(tiny, tmp_path):
    before = estimate(tiny, "cpu", tmp_path)
    left = [p for p in before.priced if not p.done]
    assert len(left) == len(before.priced)
    extract = next(p for p in left if p.job.kind == "extract")
    train = next(p for p in left if p.job.kind == "train")
    for p in (extract, train):
        Path(tmp_path / p.job.output).parent.mkdir(parents=True, exist_ok=True)
        Path(tmp_path / p.job.output).write_text("{}")
    after = estimate(tiny, "cpu", tmp_path)
    done = {p.job.output for p in after.priced if p.done}
    assert done == {extract.job.output, train.job.output}
    df = after.frame()
    assert df.loc[~df["done"], "seconds"].sum() == pytest.approx(
        before.frame()["seconds"].sum() - extract.seconds - train.seconds
    )
    assert "2 done" in render(after, [2])
    assert not any(p.done for p in estimate(tiny, "cpu", tmp_path, everything=True).priced)


def test_unknown_device_is_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="cost.devices"):
        estimate(tiny, "tpu_v9", tmp_path)


def test_overridden_throughput_scales_flop_jobs(tiny, tmp_path):
    fast = copy.deepcopy(tiny)
    fast["cost"] = {"devices": {"cpu": {"extract_tflops": 1e9, "train_tflops": 1e9}}, "overhead_s": {}}
    est = estimate(fast, "cpu", tmp_path)
    assert all(p.seconds == pytest.approx(0, abs=1e-6) for p in est.priced)
    assert any(p.flops > 0 for p in est.priced if p.job.kind == "train")


def _p(name, seconds, gpu, needs=()):
    return Priced(Job("train" if gpu else "split", name, None, list(needs)), 0.0, seconds, gpu, False)


def test_wall_time_list_scheduling_by_hand():
    """split (1 s, CPU) → two extractions (10 s each, GPU) → four trainings (5 s each, GPU)."""
    jobs = [_p("s", 1, False), _p("e1", 10, True, ["s"]), _p("e2", 10, True, ["s"])]
    jobs += [_p(f"t{i}", 5, True, ["e1", "e2"]) for i in range(4)]
    assert wall_time(jobs, 1) == pytest.approx(1 + 20 + 20)
    assert wall_time(jobs, 2) == pytest.approx(1 + 10 + 10)
    assert wall_time(jobs, 10**9) == pytest.approx(1 + 10 + 5)
    assert wall_time(jobs, 1, every_job=True) == pytest.approx(41)


def test_compare_reads_benchmark_files(tiny, tmp_path):
    est = estimate(tiny, "cpu", tmp_path)
    job = next(p for p in est.priced if p.job.kind == "train")
    bench = tmp_path / "bench" / Path(job.job.benchmark).relative_to("results/benchmarks")
    bench.parent.mkdir(parents=True)
    bench.write_text(f"s\th:m:s\n{2 * job.seconds}\t0:00:01\n")
    text = compare(est, tmp_path / "bench")
    assert re.search(r"\| train\s*\|\s*1\s*\|[^\n]*\|\s*0\.5\s*\|", text), text  # estimate / measured of the one job
    assert "0 of them measured where they ran" in text
    # on SLURM (or in a pack) the job's own accounting beside the benchmark wins over the waiting process's time
    bench.with_name(bench.stem + ".slurm.tsv").write_text(
        f"s\tcpu_time\tmax_rss\tjob_id\tstate\tsource\n{4 * job.seconds}\t1\t\t7\tCOMPLETED\tsacct\n"
    )
    text = compare(est, tmp_path / "bench")
    assert (
        re.search(r"\| train\s*\|\s*1\s*\|[^\n]*\|\s*0\.25\s*\|", text) and "1 of them measured where they ran" in text
    ), text
    with pytest.raises(FileNotFoundError, match="no benchmark file"):
        compare(est, tmp_path / "nowhere")


def test_a_bill_carries_no_random_init_notices(caplog):
    """open_clip logs "No pretrained weights loaded ... initialized randomly" for every model built
    without weights; the FLOP count builds them so on purpose, and says nothing about it."""
    import logging

    import open_clip

    from aftbench.cost.flops import teacher_flops

    with caplog.at_level(logging.WARNING):
        open_clip.create_model("RN50", pretrained=None, device="meta")  # a config open_clip ships
    assert "No pretrained weights loaded" in caplog.text  # what the library says outside the count
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert teacher_flops("open_clip:RN50/openai").per_example > 0  # counted on the meta device: nothing downloaded
    assert "No pretrained weights loaded" not in caplog.text
