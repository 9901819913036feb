rule metrics_shard:
    input:
        enhanced=f"{RUN}/enhanced/{{method}}/{{dataset}}/{{shard}}.h5",
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        csv=f"{RUN}/metrics/{{dataset}}/{{method}}/{{shard}}.csv",
    params:
        code=code_fingerprint("metrics_shard"),
        settings=section("metrics"),
    log:
        f"{RUN_LOGS}/metrics_shard/{{dataset}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RUN}/benchmarks/metrics_shard/{{dataset}}/{{method}}/{{shard}}.tsv"
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
        csv=f"{RUN}/{{collection}}/per_roi.csv",
    params:
        code=code_fingerprint("aggregate_metrics"),
        manifests=as_json(PLAN.manifests()),
    log:
        f"{RUN_LOGS}/aggregate_metrics/{{collection}}.log",
    benchmark:
        f"{RUN}/benchmarks/aggregate_metrics/{{collection}}.tsv"
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
        per_roi=f"{RUN}/metrics/per_roi.csv",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.methods, shard_names),
    output:
        csv=f"{RUN}/tables/comparison.csv",
        md=report(f"{RUN}/tables/comparison.md", caption="../report/comparison.rst", category="Tables"),
        tex=f"{RUN}/tables/comparison.tex",
        boxplots=report(f"{RUN}/figures/boxplots.png", caption="../report/boxplots.rst", category="Figures"),
        panel=report(f"{RUN}/figures/panel.png", caption="../report/panel.rst", category="Figures"),
    params:
        code=code_fingerprint("tables"),
        settings=section("metrics"),
    log:
        f"{RUN_LOGS}/tables/tables.log",
    benchmark:
        f"{RUN}/benchmarks/tables/tables.tsv"
    conda:
        ENV
    threads: threads("tables")
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m xvertnet tables {input.per_roi:q} --csv {output.csv:q} --boxplots {output.boxplots:q} --panel {output.panel:q}"
        " --enhanced {input.enhanced:q} --settings {params.settings:q} > {log:q} 2>&1"
