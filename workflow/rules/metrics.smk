rule metrics:
    input:
        enhanced="results/enhanced/{method}/{dataset}/{shard}.h5",
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        "results/metrics/{dataset}/{method}/{shard}.csv",
    params:
        code=code_fingerprint("metrics", "evaluate"),
        options=metric_cli_options(),
    log:
        "logs/metrics/{dataset}/{method}/{shard}.log",
    benchmark:
        "results/benchmarks/metrics/{dataset}/{method}/{shard}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "xvertnet metrics-shard --method {wildcards.method} --dataset {wildcards.dataset} --enhanced {input.enhanced}"
        " --roi {input.roi} --out {output} {params.options} > {log} 2>&1"


rule per_roi:
    input:
        csvs=get_metric_csvs,
        enhanced=get_all_enhanced,
        manifests=get_manifests,
    output:
        report("results/metrics/per_roi.csv", caption="../report/per_roi.rst", category="Metrics"),
    params:
        code=code_fingerprint("evaluate", "metrics"),
        enhanced=enhanced_specs,
        manifests=manifest_specs(),
    log:
        "logs/per_roi/per_roi.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "xvertnet aggregate-metrics {input.csvs} --out {output} --enhanced {params.enhanced}"
        " --manifest {params.manifests} > {log} 2>&1"


rule tables:
    input:
        per_roi="results/metrics/per_roi.csv",
        enhanced=get_all_enhanced,
    output:
        csv="results/tables/comparison.csv",
        md=report("results/tables/comparison.md", caption="../report/comparison.rst", category="Tables"),
        tex="results/tables/comparison.tex",
        boxplots=report("results/figures/boxplots.png", caption="../report/boxplots.rst", category="Figures"),
        panel=report("results/figures/panel.png", caption="../report/panel.rst", category="Figures"),
    params:
        code=code_fingerprint("stats", "report"),
        enhanced=panel_specs,
        splits=" ".join(config["metrics"]["table_splits"]),
        panel_images=config["metrics"]["panel_images"],
    log:
        "logs/tables/tables.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "xvertnet tables {input.per_roi} --out-stem results/tables/comparison --boxplots {output.boxplots}"
        " --panel {output.panel} --enhanced {params.enhanced} --splits {params.splits}"
        " --panel-images {params.panel_images} > {log} 2>&1"
