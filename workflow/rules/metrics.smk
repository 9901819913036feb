rule metrics_shard:
    input:
        enhanced="results/enhanced/{method}/{dataset}/{shard}.h5",
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        csv="results/metrics/{dataset}/{method}/{shard}.csv",
    params:
        code=code_fingerprint("metrics_shard"),
        settings=section("metrics"),
    log:
        "logs/metrics_shard/{dataset}/{method}/{shard}.log",
    benchmark:
        "results/benchmarks/metrics_shard/{dataset}/{method}/{shard}.tsv"
    conda:
        ENV
    threads: threads("metrics_shard")
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "python -m xvertnet metrics-shard {input.enhanced:q} --roi {input.roi:q} --out {output.csv:q} --settings {params.settings:q} > {log:q} 2>&1"


# One per-ROI table per collection of methods: `metrics` (the comparison) and `study`.
rule aggregate_metrics:
    input:
        csvs=collection_csvs,
        enhanced=collection_enhanced,
        manifests=lambda w: list(PLAN.manifests().values()),
    output:
        csv="results/{collection}/per_roi.csv",
    params:
        code=code_fingerprint("aggregate_metrics"),
        manifests=as_json(PLAN.manifests()),
    log:
        "logs/aggregate_metrics/{collection}.log",
    benchmark:
        "results/benchmarks/aggregate_metrics/{collection}.tsv"
    conda:
        ENV
    threads: threads("aggregate_metrics")
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m xvertnet aggregate-metrics {input.csvs:q} --out {output.csv:q} --enhanced {input.enhanced:q}"
        " --manifests {params.manifests:q} > {log:q} 2>&1"


rule tables:
    input:
        per_roi="results/metrics/per_roi.csv",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.methods, shard_names),
    output:
        csv="results/tables/comparison.csv",
        md=report("results/tables/comparison.md", caption="../report/comparison.rst", category="Tables"),
        tex="results/tables/comparison.tex",
        boxplots=report("results/figures/boxplots.png", caption="../report/boxplots.rst", category="Figures"),
        panel=report("results/figures/panel.png", caption="../report/panel.rst", category="Figures"),
    params:
        code=code_fingerprint("tables"),
        settings=section("metrics"),
    log:
        "logs/tables/tables.log",
    benchmark:
        "results/benchmarks/tables/tables.tsv"
    conda:
        ENV
    threads: threads("tables")
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m xvertnet tables {input.per_roi:q} --csv {output.csv:q} --boxplots {output.boxplots:q} --panel {output.panel:q}"
        " --enhanced {input.enhanced:q} --settings {params.settings:q} > {log:q} 2>&1"
