# The design study (`snakemake study`): every variant of config `study.variants` trained,
# enhanced and measured through the same rules as the comparison's methods, then judged.


rule study_per_roi:
    input:
        csvs=lambda wildcards: metric_csvs(STUDY_METHODS),
        enhanced=lambda wildcards: enhanced_files(STUDY_METHODS),
        manifests=get_manifests,
    output:
        "results/study/per_roi.csv",
    params:
        code=code_fingerprint("evaluate", "metrics"),
        enhanced=lambda wildcards: enhanced_method_specs(STUDY_METHODS),
        manifests=manifest_specs(),
    log:
        "logs/study/per_roi.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "xvertnet aggregate-metrics {input.csvs} --out {output} --enhanced {params.enhanced}"
        " --manifest {params.manifests} > {log} 2>&1"


rule study_report:
    input:
        per_roi="results/study/per_roi.csv",
        enhanced=lambda wildcards: enhanced_files(STUDY_METHODS),
    output:
        summary=report("results/study/summary.csv", caption="../report/study_summary.rst", category="Design study"),
        summary_md="results/study/summary.md",
        conclusion="results/study/conclusion.md",
        conclusion_html=report("results/study/conclusion.html", caption="../report/study_conclusion.rst",
                               category="Design study"),
        variants=directory("results/study/variants"),
        panels=report(directory("results/study/panels"), patterns=["{entry}.png"], caption="../report/study_panel.rst",
                      category="Design study", subcategory="Panels"),
    params:
        code=code_fingerprint("study", "report"),
        entries=" ".join(STUDY_ENTRIES),
        references=" ".join(config["study"]["references"]),
        enhanced=lambda wildcards: method_path_specs(STUDY_METHODS),
        manifests=manifest_specs(),
        settings=json.dumps({entry: XVERTNET_ENTRIES[entry]["settings"] for entry in STUDY_ENTRIES}, sort_keys=True),
        select_conditions=" ".join(config["study"]["select_conditions"]),
        paper=study_paper_entry(),
    log:
        "logs/study/report.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "xvertnet study-report {input.per_roi} --out-dir results/study --entries {params.entries}"
        " --references {params.references} --manifest {params.manifests} --enhanced {params.enhanced}"
        " --settings {params.settings:q} --select-split {config[study][select_split]}"
        " --select-conditions {params.select_conditions} --report-split {config[study][report_split]}"
        " {params.paper} > {log} 2>&1"


rule study:
    input:
        "results/study/summary.md",
        "results/study/conclusion.md",
