# The design study: every variant of config `study.variants` trained (once per seed of `study.seeds`), then judged
# by the fracture observer on simulated fractures in held-out patients (study_observer), and, when asked for, enhanced
# and measured through the same rules as the comparison's methods (study_report).


rule study_report:
    input:
        per_roi=f"{RUN}/study/per_roi.csv",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.study_methods, shard_names),
        models=sorted({path for paths in PLAN.study_model_records().values() for path in paths}),
        manifests=manifest_files,
    output:
        summary=report(f"{RUN}/study/summary.csv", caption="../report/study_summary.rst", category="Design study"),
        summary_md=f"{RUN}/study/summary.md",
        conclusion=f"{RUN}/study/conclusion.md",
        conclusion_html=report(
            f"{RUN}/study/conclusion.html", caption="../report/study_conclusion.rst", category="Design study"
        ),
        variants=directory(f"{RUN}/study/variants"),
        panels=report(
            directory(f"{RUN}/study/panels"),
            patterns=["{entry}.png"],
            caption="../report/study_panel.rst",
            category="Design study",
            subcategory="Panels",
        ),
    log:
        f"{RUN_LOGS}/study_report/study_report.log",
    benchmark:
        f"{RUN}/benchmarks/study_report/study_report.tsv"
    conda:
        ENV
    threads: threads("study_report")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code_fingerprint("study_report"),
        settings=section("study"),
        entries=as_json(PLAN.study_entry_settings()),
        models=as_json(PLAN.study_model_records()),
        manifests=as_json(PLAN.manifests()),
        paper=" ".join(["--paper-entry", entry] if (entry := PLAN.study_paper_entry()) else []),
        out_dir=lambda w, output: str(Path(output.summary).parent),
    shell:
        "python -m xvertnet study-report {input.per_roi:q} --out-dir {params.out_dir:q} --entries {params.entries:q}"
        " --manifests {params.manifests:q} --enhanced {input.enhanced:q} --settings {params.settings:q} --models {params.models:q}"
        " {params.paper} > {log:q} 2>&1"


rule study_observer:
    input:
        models=sorted({path for paths in PLAN.study_model_records().values() for path in paths}),
        manifests=training_manifest_files,
    output:
        summary=report(
            f"{RUN}/study/observer/summary.md", caption="../report/study_observer.rst", category="Design study"
        ),
        variants=f"{RUN}/study/observer/variant_aucs.csv",
        folds=f"{RUN}/study/observer/folds.csv",
        tests=f"{RUN}/study/observer/tests.csv",
        false_positives=f"{RUN}/study/observer/false_positives.csv",
        fracture=report(
            f"{RUN}/study/observer/fracture.png", caption="../report/study_observer.rst", category="Design study"
        ),
        real=report(f"{RUN}/study/observer/real.png", caption="../report/study_observer.rst", category="Design study"),
    log:
        f"{RUN_LOGS}/study_observer/study_observer.log",
    benchmark:
        f"{RUN}/benchmarks/study_observer/study_observer.tsv"
    conda:
        ENV
    threads: threads("study_observer")
    resources:
        mem_mb=8000,
        runtime=180,
    params:
        code=code_fingerprint("study_observer"),
        settings=as_json(config["study"]["observer"]),
        entries=as_json(PLAN.study_observer_entries()),
        manifests=as_json(PLAN.manifests(training_only=True)),
        out_dir=lambda w, output: str(Path(output.summary).parent),
    shell:
        "python -m xvertnet study-observer --out-dir {params.out_dir:q} --entries {params.entries:q}"
        " --manifests {params.manifests:q} --settings {params.settings:q} > {log:q} 2>&1"


# `snakemake study`: the grid judged by the fracture observer (the design study's choice).
rule study:
    input:
        f"{RUN}/study/observer/summary.md",


# `snakemake study_images`: the same grid's image measures (ROI ratios, displayed contrast and CNR, segmentation Dice).
rule study_images:
    input:
        f"{RUN}/study/summary.md",
        f"{RUN}/study/conclusion.md",
