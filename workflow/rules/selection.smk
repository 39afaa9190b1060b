rule score_teachers:
    """Transferability scores of one teacher set on one dataset, from its cached training features
    (aftbench.selection.transferability): seconds, and never the validation or test split."""
    input:
        split=rules.split.output.npz,
        features=feature_files,
    output:
        scores=scores_path("{dataset}", "{tset}"),
    log:
        f"{LOGS_DIR}/scores/{{dataset}}/{{tset}}.log",
    benchmark:
        f"{BENCHMARKS_DIR}/scores/dataset~{{dataset}}/teachers~{{tset}}.tsv"
    conda:
        "../../envs/aftbench.yaml"
    resources:
        launcher=LAUNCHER,
        job=job_arg("score"),
    params:
        teachers=lambda w: " ".join(teachers_of(CONFIG, w.tset)),
        options=shlex.quote(json.dumps(CONFIG.get("scores", {}), sort_keys=True)),
    shell:
        AFTBENCH + " --log {log} score --launcher {resources.launcher} --job {resources.job}"
        " --dataset {wildcards.dataset} --teacher-set {wildcards.tset} --teachers {params.teachers}"
        " --split {input.split} --features {input.features} --options {params.options} --out {output.scores}"


checkpoint select_teachers:
    """An adaptive block's choice on one dataset: rank its candidates by the score it names and keep
    the top k. A checkpoint: the runs on the chosen sets are planned once it has run."""
    input:
        scores=lambda w: [scores_path(w.dataset, c) for c in REQUESTS[w.sdigest].candidates],
    output:
        selection=selection_path("{dataset}", "{sdigest}"),
    log:
        f"{LOGS_DIR}/selections/{{dataset}}/{{sdigest}}.log",
    conda:
        "../../envs/aftbench.yaml"
    params:
        request=lambda w: shlex.quote(json.dumps(REQUESTS[w.sdigest].as_dict(), sort_keys=True)),
        teacher_sets=lambda w: shlex.quote(json.dumps(related_sets(CONFIG, REQUESTS[w.sdigest]), sort_keys=True)),
    shell:
        "python -m aftbench --log {log} select --request {params.request} --scores {input.scores}"
        " --teacher-sets {params.teacher_sets} --out {output.selection}"
