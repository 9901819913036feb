rule baseline_train:
    input:
        get_baseline_train_data,
    output:
        model="results/models/baselines/{method}/model.pt",
        metadata="results/models/baselines/{method}/model.json",
    wildcard_constraints:
        method="|".join(TRAINED_BASELINES),
    params:
        code=code_fingerprint("baselines", "wls"),
        settings=lambda wildcards: baseline_params(wildcards.method),
        out_dir="results/models/baselines/{method}",
    log:
        "logs/baseline_train/{method}.log",
    benchmark:
        "results/benchmarks/baseline_train/{method}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=6 * 60,
    shell:
        "xvertnet train-baseline {input} --method {wildcards.method} --out-dir {params.out_dir}"
        " --params {params.settings:q} > {log} 2>&1"


rule baseline_enhance:
    input:
        roi="results/{dataset}/roi/{shard}.h5",
        model=get_baseline_model,
    output:
        h5="results/enhanced/{method}/{dataset}/{shard}.h5",
        png=directory("results/enhanced/{method}/{dataset}/{shard}"),
    wildcard_constraints:
        method="|".join(ENHANCING_BASELINES),
    params:
        code=code_fingerprint("baselines", "enhance", "wls"),
        settings=lambda wildcards: baseline_params(wildcards.method),
        model=baseline_model_option,
        splits=" ".join(config["enhance"]["splits"]),
    log:
        "logs/enhance/{method}/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/enhance/{method}/{dataset}/{shard}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "xvertnet enhance-shard --method {wildcards.method} --roi {input.roi} --out {output.h5}"
        " --png-dir {output.png} --splits {params.splits} --params {params.settings:q} {params.model} > {log} 2>&1"
