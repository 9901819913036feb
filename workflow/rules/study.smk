# The design study (`snakemake study`): every variant of config `study.variants` trained,
# enhanced and measured through the same rules as the comparison's methods, then judged.


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


rule study:
    input:
        f"{RUN}/study/summary.md",
        f"{RUN}/study/conclusion.md",
