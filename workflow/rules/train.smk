rule train:
    """One student, one method, one teacher set, one seed: the one training loop."""
    input:
        unpack(train_inputs),
        split=rules.split.output.npz,
    output:
        metrics=metrics_path(RUN_TEMPLATE),
    log:
        f"{LOGS_DIR}/runs/{RUN_TEMPLATE}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{RUN_TEMPLATE}.tsv"
    wildcard_constraints:
        student=_alt(CONFIG["students"]),
    conda:
        "../../envs/aftbench.yaml"
    threads: setting(CONFIG, "train", "threads")
    resources:
        launcher=LAUNCHER,
        job=job_arg("train"),
    params:
        spec=run_spec,
    shell:
        "python -m aftbench train --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split}"
        " --features {input.features} --targets {input.targets} --out {output.metrics} > {log} 2>&1"


# A run of a block with its own `train:` settings: the same rule one folder deeper (aftbench.layout
# TRAIN_VARIANT), so it never overwrites the run trained with the shared settings.
use rule train as train_variant with:
    output:
        metrics=metrics_path(f"{RUN_TEMPLATE}/{TRAIN_VARIANT}"),
    log:
        f"{LOGS_DIR}/runs/{RUN_TEMPLATE}/{TRAIN_VARIANT}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{RUN_TEMPLATE}/{TRAIN_VARIANT}.tsv"


rule probe:
    """Linear probe on a teacher set's cached features (the teacher set's own quality)."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        metrics=metrics_path(RUN_TEMPLATE),
        logits=probe_logits_path(RUN_TEMPLATE),
    log:
        f"{LOGS_DIR}/runs/{RUN_TEMPLATE}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{RUN_TEMPLATE}.tsv"
    wildcard_constraints:
        student="probe",
    conda:
        "../../envs/aftbench.yaml"
    resources:
        launcher=LAUNCHER,
        job=job_arg("probe"),
    params:
        spec=run_spec,
    shell:
        "python -m aftbench probe --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split}"
        " --features {input.features} --out {output.metrics} --logits-out {output.logits} > {log} 2>&1"


rule train_paraphraser:
    """Factor transfer's autoencoder on one teacher set's training features (train split only);
    caches its factors for every split."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        factors=factors_path("{dataset}", "{tset}", "{method}"),
        meta=sidecar(factors_path("{dataset}", "{tset}", "{method}")),
    log:
        f"{LOGS_DIR}/factors/{FACTORS_TEMPLATE}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/factors/{FACTORS_TEMPLATE}.tsv"
    conda:
        "../../envs/aftbench.yaml"
    resources:
        launcher=LAUNCHER,
        job=job_arg("paraphraser"),
    params:
        teachers=lambda w: " ".join(teachers_of(CONFIG, w.tset)),
        args=lambda w: shlex.quote(json.dumps(CONFIG["methods"][w.method].get("args", {}), sort_keys=True)),
    shell:
        "python -m aftbench paraphraser --launcher {resources.launcher} --job {resources.job}"
        " --teachers {params.teachers} --features {input.features}"
        " --split {input.split} --args {params.args} --out {output.factors} --out-json {output.meta} > {log} 2>&1"
