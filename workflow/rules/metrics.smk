rule metrics_shard:
    input:
        enhanced=f"{RUN}/enhanced/{{method}}/{{dataset}}/{{shard}}.h5",
        roi="results/{dataset}/roi/{shard}.h5",
    output:
        csv=f"{RUN}/metrics/{{dataset}}/{{method}}/{{shard}}.csv",
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
    params:
        code=code_fingerprint("metrics_shard"),
        settings=section("metrics"),
        splits=lambda w: " ".join(PLAN.measure_splits(w.dataset)),
    shell:
        "python -m xvertnet metrics-shard {input.enhanced:q} --roi {input.roi:q} --out {output.csv:q} --splits {params.splits}"
        " --settings {params.settings:q} > {log:q} 2>&1"


# The segmentation task (docs/task-measures.md ("Segmentation task")): one segmenter per method, same budget for all.
rule segmentation_task:
    input:
        # Two named functions, not unpack(): before a download checkpoint has run, Snakemake stands the
        # checkpoint's target in for an input function's result, and under unpack() the names are lost.
        enhanced=lambda w: PLAN.segmentation_inputs(w.method, shard_names)["enhanced"],
        roi=lambda w: PLAN.segmentation_inputs(w.method, shard_names)["roi"],
    output:
        csv=f"{RUN}/segmentation/{{method}}.csv",
    log:
        f"{RUN_LOGS}/segmentation_task/{{method}}.log",
    benchmark:
        f"{RUN}/benchmarks/segmentation_task/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(dict.fromkeys([*PLAN.methods, *PLAN.study_methods])),
    conda:
        ENV
    threads: threads("segmentation_task")
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        code=code_fingerprint("segmentation_task"),
        settings=section("segmentation_task"),
    shell:
        "python -m xvertnet segmentation-task {input.enhanced:q} --roi {input.roi:q} --method {wildcards.method}"
        " --out {output.csv:q} --settings {params.settings:q} > {log:q} 2>&1"


# The classifier check (docs/task-measures.md ("Classifier check")): data sets with `labels` only, one ResNet-18 per method.
rule classifier_check:
    input:
        enhanced=lambda w: [PLAN.enhanced(w.dataset, w.method, shard) for shard in shard_names(w.dataset)],
        labels=lambda w: PLAN.datasets[w.dataset]["labels"]["path"],
    output:
        csv=f"{RUN}/classifier/{{dataset}}/{{method}}.csv",
        per_image=f"{RUN}/classifier/{{dataset}}/{{method}}.per_image.csv",
    log:
        f"{RUN_LOGS}/classifier_check/{{dataset}}/{{method}}.log",
    benchmark:
        f"{RUN}/benchmarks/classifier_check/{{dataset}}/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(PLAN.classified_methods),
    conda:
        ENV
    threads: threads("classifier_check")
    resources:
        mem_mb=8000,
        runtime=12 * 60,
    params:
        code=code_fingerprint("classifier_check"),
        settings=section("classifier_check"),
        labels=lambda w: as_json(PLAN.datasets[w.dataset]["labels"]),
    shell:
        "python -m xvertnet classifier-check {input.enhanced:q} --method {wildcards.method} --dataset {wildcards.dataset}"
        " --labels {params.labels:q} --out {output.csv:q} --settings {params.settings:q} > {log:q} 2>&1"


rule classifier_table:
    input:
        csvs=PLAN.classifier_csvs(),
    output:
        csv=f"{RUN}/tables/classifier.csv",
        md=report(f"{RUN}/tables/classifier.md", caption="../report/classifier.rst", category="Tables"),
    log:
        f"{RUN_LOGS}/classifier_table/classifier_table.log",
    benchmark:
        f"{RUN}/benchmarks/classifier_table/classifier_table.tsv"
    conda:
        ENV
    threads: threads("classifier_table")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_fingerprint("classifier_table"),
    shell:
        "python -m xvertnet classifier-table {input.csvs:q} --csv {output.csv:q} > {log:q} 2>&1"


# One per-ROI table per collection of methods: `metrics` (the comparison) and `study`.
rule aggregate_metrics:
    input:
        csvs=collection_csvs,
        segmentation=lambda w: PLAN.segmentation_csvs(w.collection),
        enhanced=collection_enhanced,
        manifests=manifest_files,
    output:
        csv=f"{RUN}/{{collection}}/per_roi.csv",
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
    params:
        code=code_fingerprint("aggregate_metrics"),
        manifests=as_json(PLAN.manifests()),
    shell:
        "python -m xvertnet aggregate-metrics {input.csvs:q} --out {output.csv:q} --enhanced {input.enhanced:q}"
        " --segmentation {input.segmentation:q}"
        " --manifests {params.manifests:q} > {log:q} 2>&1"


rule tables:
    input:
        per_roi=f"{RUN}/metrics/per_roi.csv",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.methods, shard_names),
        manifests=manifest_files,
        detectability=[config["metrics"]["detectability_table"]] if config["metrics"]["detectability_table"] else [],
    output:
        csv=f"{RUN}/tables/comparison.csv",
        md=f"{RUN}/tables/comparison.md",
        html=report(f"{RUN}/tables/comparison.html", caption="../report/comparison.rst", category="Tables"),
        tex=f"{RUN}/tables/comparison.tex",
        boxplots=report(f"{RUN}/figures/boxplots.png", caption="../report/boxplots.rst", category="Figures"),
        panel=report(f"{RUN}/figures/panel.png", caption="../report/panel.rst", category="Figures"),
        whole_panel=report(f"{RUN}/figures/whole_panel.png", caption="../report/whole_panel.rst", category="Figures"),
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
    params:
        code=code_fingerprint("tables"),
        settings=section("metrics"),
        manifests=as_json(PLAN.manifests()),
    shell:
        "python -m xvertnet tables {input.per_roi:q} --csv {output.csv:q} --boxplots {output.boxplots:q} --panel {output.panel:q}"
        " --whole-panel {output.whole_panel:q} --enhanced {input.enhanced:q} --manifests {params.manifests:q} --settings {params.settings:q} > {log:q} 2>&1"


# The static results gallery (docs/results.md ("Results gallery")): open results/gallery/index.html from disk.
rule gallery:
    input:
        per_roi=f"{RUN}/metrics/per_roi.csv",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.methods, shard_names),
        manifests=manifest_files,
    output:
        directory(f"{RUN}/gallery"),
    log:
        f"{RUN_LOGS}/gallery/gallery.log",
    benchmark:
        f"{RUN}/benchmarks/gallery/gallery.tsv"
    conda:
        ENV
    threads: threads("gallery")
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        code=code_fingerprint("gallery"),
        settings=section("metrics"),
        manifests=as_json(PLAN.manifests()),
    shell:
        "python -m xvertnet gallery {input.enhanced:q} --per-roi {input.per_roi:q} --out-dir {output:q}"
        " --manifests {params.manifests:q} --settings {params.settings:q} > {log:q} 2>&1"
