RUN = RUN_TEMPLATE
FACTORS = FACTORS_TEMPLATE


rule train:
    """One student, one method, one teacher set, one seed: the one training loop."""
    input:
        unpack(train_inputs),
        split=rules.split.output.npz,
    output:
        metrics=f"{R}/runs/{RUN}/metrics.json",
    wildcard_constraints:
        student=_alt(config["students"]),
    params:
        spec=run_spec,
    threads: config["train"].get("threads", 1)
    resources:
        launcher=LAUNCHER,
        job=job_arg("train"),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/runs/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/runs/{RUN}.tsv"
    shell:
        "python -m aftbench train --launcher {resources.launcher} --job {resources.job}"
        " --spec {params.spec} --split {input.split}"
        " --features {input.features} --targets {input.targets} --out {output.metrics} > {log} 2>&1"


rule probe:
    """Linear probe on a teacher set's cached features (the teacher set's own quality)."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        metrics=f"{R}/runs/{RUN}/metrics.json",
        logits=f"{R}/runs/{RUN}/logits.safetensors",
    wildcard_constraints:
        student="probe",
    params:
        spec=run_spec,
    resources:
        launcher=LAUNCHER,
        job=job_arg("probe"),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/runs/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/runs/{RUN}.tsv"
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
        factors=f"{R}/factors/{FACTORS}/factors.safetensors",
        meta=f"{R}/factors/{FACTORS}/factors.json",
    params:
        teachers=lambda w: " ".join(teachers_of(config, w.tset)),
        args=lambda w: shlex.quote(json.dumps(config["methods"][w.method].get("args", {}), sort_keys=True)),
    resources:
        launcher=LAUNCHER,
        job=job_arg("paraphraser"),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/factors/{FACTORS}.log",
    benchmark:
        f"{R}/benchmarks/factors/{FACTORS}.tsv"
    shell:
        "python -m aftbench paraphraser --launcher {resources.launcher} --job {resources.job}"
        " --teachers {params.teachers} --features {input.features}"
        " --split {input.split} --args {params.args} --out {output.factors} --out-json {output.meta} > {log} 2>&1"
