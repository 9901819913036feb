rule prep:
    input:
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        h5="results/{dataset}/prep/{shard}.h5",
        figures=directory("results/{dataset}/figures/prep/{shard}"),
    log:
        "logs/prep/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/prep/{dataset}/{shard}.tsv"
    conda:
        ENV
    threads: threads("prep")
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_fingerprint("prep"),
        settings=section("prep"),
    shell:
        "python -m xvertnet prep {input.roi:q} --out {output.h5:q} --figure-dir {output.figures:q} --settings {params.settings:q} > {log:q} 2>&1"


rule prep_summary:
    input:
        prep=stage_shards("prep"),
    output:
        csv="results/{dataset}/prep/summary.csv",
    log:
        "logs/prep_summary/{dataset}.log",
    benchmark:
        "results/benchmarks/prep_summary/{dataset}.tsv"
    conda:
        ENV
    threads: threads("prep_summary")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_fingerprint("prep_summary"),
    shell:
        "python -m xvertnet prep-summary {input.prep:q} --out {output.csv:q} > {log:q} 2>&1"
