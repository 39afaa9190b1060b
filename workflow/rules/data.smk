rule split:
    """Fixed, seeded, stratified train/val/test split of one dataset, written once."""
    output:
        npz=f"{R}/splits/{{dataset}}.npz",
        meta=f"{R}/splits/{{dataset}}.json",
        images=directory(f"{R}/splits/{{dataset}}.images"),  # <part>.npy, memory-mapped by readers (datasets.split_images_dir)
    params:
        spec=lambda w: shlex.quote(json.dumps(config["datasets"][w.dataset], sort_keys=True)),
    conda:
        "../../envs/aftbench.yaml"
    log:
        f"{R}/logs/split/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/split/{{dataset}}.tsv"
    shell:
        "python -m aftbench split --dataset {wildcards.dataset} --spec {params.spec}"
        " --out {output.npz} --out-json {output.meta} > {log} 2>&1"
