rule prep:
    input:
        "results/{dataset}/roi/{shard}.h5",
    output:
        h5="results/{dataset}/prep/{shard}.h5",
        figures=directory("results/{dataset}/figures/prep/{shard}"),
    params:
        code=code_fingerprint("prep", "preprocess", "wls"),
        options=prep_cli_options(),
        figures=config["prep"]["figures_per_shard"],
    log:
        "logs/prep/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/prep/{dataset}/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "xvertnet prep {input} --out {output.h5} --figure-dir {output.figures} --figure-max {params.figures}"
        " {params.options} > {log} 2>&1"


rule prep_summary:
    input:
        get_prep_shards,
    output:
        "results/{dataset}/prep/summary.csv",
    log:
        "logs/prep_summary/{dataset}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "xvertnet prep-summary {input} --out {output} > {log} 2>&1"
