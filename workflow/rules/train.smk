rule train:
    """One student, one method, one teacher set, one seed: the one training loop. `{run}` is the run
    id (aftbench.core.layout: RUN_TEMPLATE, and a TRAIN_VARIANT folder for a block with its own `train:`
    settings, so such a run never overwrites the one trained with the shared settings)."""
    input:
        unpack(train_inputs),
    output:
        metrics=metrics_path("{run}"),
    log:
        f"{LOGS_DIR}/runs/{{run}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{{run}}.tsv"
    wildcard_constraints:
        run=run_wildcard_regex("train"),
    conda:
        "../../envs/aftbench.yaml"
    threads: setting(CONFIG, "train", "threads")
    resources:
        launcher=LAUNCHER,
        job=job_arg("train"),
    params:
        spec=run_spec,
    shell:
        AFTBENCH + " --log {log} train --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split}"
        " --features {input.features} --targets {input.targets} --out {output.metrics}"


rule refit:
    """Tune-then-refit (a block fitted on train + val with a grid): the β (a baseline's label
    smoothing) that its tune stage, the same run fitted on train at each value, chose on
    validation (aftbench.core.tuning), refitted on train + val. The choice is in its record."""
    input:
        unpack(refit_inputs),
    output:
        metrics=metrics_path("{run}"),
    log:
        f"{LOGS_DIR}/runs/{{run}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{{run}}.tsv"
    wildcard_constraints:
        run=run_wildcard_regex("refit"),
    conda:
        "../../envs/aftbench.yaml"
    threads: setting(CONFIG, "train", "threads")
    resources:
        launcher=LAUNCHER,
        job=job_arg("train"),
    params:
        spec=run_spec,
    shell:
        AFTBENCH + " --log {log} train --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split} --tuned {input.tuned}"
        " --features {input.features} --targets {input.targets} --out {output.metrics}"


rule probe:
    """Linear probe on a teacher set's cached features (the teacher set's own quality)."""
    input:
        unpack(probe_inputs),
    output:
        metrics=metrics_path("{run}"),
        logits=probe_logits_path("{run}"),
    log:
        f"{LOGS_DIR}/runs/{{run}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/runs/{{run}}.tsv"
    wildcard_constraints:
        run=run_wildcard_regex("probe"),
    conda:
        "../../envs/aftbench.yaml"
    resources:
        launcher=LAUNCHER,
        job=job_arg("probe"),
    params:
        spec=run_spec,
    shell:
        AFTBENCH + " --log {log} probe --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split}"
        " --features {input.features} --out {output.metrics} --logits-out {output.logits}"


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
        AFTBENCH + " --log {log} paraphraser --launcher {resources.launcher} --job {resources.job}"
        " --teachers {params.teachers} --features {input.features}"
        " --split {input.split} --args {params.args} --out {output.factors} --out-json {output.meta}"
