# Every method (XVertNet entries and baselines) enhances through the one rule enhance_shard.


rule train_baseline:
    input:
        data=lambda w: PLAN.baseline_train_inputs(w.method, shard_names),
        manifests=training_manifest_files,
    output:
        model=f"{RUN}/models/baselines/{{method}}/training/model.pt",
        metadata=f"{RUN}/models/baselines/{{method}}/training/model.json",
    log:
        f"{RUN_LOGS}/train_baseline/{{method}}.log",
    benchmark:
        f"{RUN}/benchmarks/train_baseline/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(PLAN.trained_baselines) or "no-trained-baseline",
    conda:
        ENV
    threads: threads("train_baseline")
    resources:
        mem_mb=4000,
        runtime=6 * 60,
    params:
        code=code_fingerprint("train_baseline"),
        settings=lambda w: as_json(PLAN.baseline_settings(w.method)),
        manifests=as_json(PLAN.manifests(training_only=True)),
        out_dir=lambda w, output: str(Path(output.model).parent),
    shell:
        "python -m xvertnet train-baseline {input.data:q} --method {wildcards.method} --out-dir {params.out_dir:q}"
        " --settings {params.settings:q} --manifests {params.manifests:q} > {log:q} 2>&1"


rule enhance_shard:
    input:
        unpack(lambda w: PLAN.enhance_inputs(w.method, w.dataset, w.shard)),
    output:
        h5=f"{RUN}/enhanced/{{method}}/{{dataset}}/{{shard}}.h5",
        png=directory(f"{RUN}/enhanced/{{method}}/{{dataset}}/{{shard}}"),
    log:
        f"{RUN_LOGS}/enhance_shard/{{method}}/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RUN}/benchmarks/enhance_shard/{{method}}/{{dataset}}/{{shard}}.tsv"
    wildcard_constraints:
        method="|".join([*PLAN.entries, *PLAN.enhancing_baselines]),
    conda:
        ENV
    threads: threads("enhance_shard")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_fingerprint("enhance_shard"),
        kind=enhance_method,
        settings=enhance_settings,
        model=lambda w: PLAN.enhance_model_option(w.method),
        splits=lambda w: " ".join(PLAN.enhance_splits(w.dataset)),
    shell:
        "python -m xvertnet enhance-shard --method {params.kind} --name {wildcards.method} --dataset {wildcards.dataset}"
        " --roi {input.roi:q} --out {output.h5:q} --png-dir {output.png:q} --splits {params.splits}"
        " --settings {params.settings:q} {params.model} > {log:q} 2>&1"


rule enhanced_index:
    input:
        shards=enhanced_of_method,
    output:
        csv=f"{RUN}/enhanced/{{method}}/{{dataset}}/index.csv",
    log:
        f"{RUN_LOGS}/enhanced_index/{{method}}/{{dataset}}.log",
    benchmark:
        f"{RUN}/benchmarks/enhanced_index/{{method}}/{{dataset}}.tsv"
    conda:
        ENV
    threads: threads("enhanced_index")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_fingerprint("enhanced_index"),
    shell:
        "python -m xvertnet enhanced-index {input.shards:q} --out {output.csv:q} > {log:q} 2>&1"


# The LUT mapping's four interpretable maps beside input and output (docs/baselines.md ("LUT mapping")), when it is a baseline.
rule lut_maps:
    input:
        model=f"{PLAN.baseline_model_dir('lut-mapping')}/model.json",
        roi=lambda w: [PLAN.stage_shard(w.dataset, "roi", shard) for shard in shard_names(w.dataset)],
    output:
        figures=report(
            directory(f"{RUN}/figures/lut_maps/{{dataset}}"),
            patterns=["{image_id}.png"],
            caption="../report/lut_maps.rst",
            category="Figures",
            subcategory="LUT mapping maps",
        ),
    log:
        f"{RUN_LOGS}/lut_maps/{{dataset}}.log",
    benchmark:
        f"{RUN}/benchmarks/lut_maps/{{dataset}}.tsv"
    conda:
        ENV
    threads: threads("lut_maps")
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        code=code_fingerprint("lut_maps"),
        settings=lambda w: as_json(PLAN.baseline_settings("lut-mapping")),
        model_dir=lambda w, input: str(Path(input.model).parent),
        splits=" ".join(PLAN.config["metrics"].get("table_splits", ["test"])),
    shell:
        "python -m xvertnet lut-maps {input.roi:q} --model-dir {params.model_dir:q} --out-dir {output.figures:q}"
        " --settings {params.settings:q} --splits {params.splits} > {log:q} 2>&1"


# The GE seed's Table 1 on our data (docs/baselines.md ("LUT mapping")): `make lut-table`, not part of `all` (about 5 min on 2 cores).
rule lut_table:
    input:
        roi=lambda w: [
            PLAN.stage_shard(dataset, "roi", shard) for dataset in PLAN.datasets for shard in shard_names(dataset)
        ],
    output:
        csv=f"{RUN}/tables/lut_mapping_table.csv",
        md=report(f"{RUN}/tables/lut_mapping_table.md", caption="../report/lut_table.rst", category="Tables"),
    log:
        f"{RUN_LOGS}/lut_table/lut_table.log",
    benchmark:
        f"{RUN}/benchmarks/lut_table/lut_table.tsv"
    conda:
        ENV
    threads: threads("lut_table")
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_fingerprint("lut_table"),
        settings=lambda w: as_json(PLAN.baseline_settings("lut-mapping")),
        splits=" ".join(PLAN.config["metrics"].get("table_splits", ["test"])),
    shell:
        "python -m xvertnet lut-table {input.roi:q} --splits {params.splits} --csv {output.csv:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


# LED (docs/baselines.md ("LED")), when it is a baseline (`make led`): restoration against the clean DRRs for every method,
# hallucination checks of LED and of its learned degradation, and the worst cases.
rule led_report:
    input:
        model=f"{PLAN.baseline_model_dir('led')}/model.json",
        enhanced=lambda w: PLAN.enhanced_shards(PLAN.methods, shard_names),
        manifests=manifest_files,
    output:
        md=report(f"{RUN}/led/led.md", caption="../report/led.rst", category="Tables"),
        restoration=f"{RUN}/led/restoration.csv",
        hallucination=f"{RUN}/led/hallucination.csv",
        worst=report(f"{RUN}/led/worst_cases.png", caption="../report/led_worst_cases.rst", category="Figures"),
    log:
        f"{RUN_LOGS}/led_report/led_report.log",
    benchmark:
        f"{RUN}/benchmarks/led_report/led_report.tsv"
    conda:
        ENV
    threads: threads("led_report")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_fingerprint("led_report"),
        settings=lambda w: as_json(PLAN.baseline_settings("led")),
        manifests=as_json(PLAN.manifests()),
        specs=lambda w: " ".join(shlex.quote(spec) for spec in PLAN.enhanced_specs(PLAN.methods, shard_names)),
        model_dir=lambda w, input: str(Path(input.model).parent),
        splits=" ".join(PLAN.config["metrics"].get("table_splits", ["test"])),
        out_dir=lambda w, output: str(Path(output.md).parent),
    shell:
        "python -m xvertnet led-report --enhanced {params.specs} --manifests {params.manifests:q} --model-dir {params.model_dir:q}"
        " --settings {params.settings:q} --splits {params.splits} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# The super-resolution seed's tables on our data (docs/baselines.md ("Super-resolution")): `make sr-table`, not part of `all`.
rule sr_table:
    input:
        prep=lambda w: [
            PLAN.stage_shard(dataset, "prep", shard) for dataset in PLAN.datasets for shard in shard_names(dataset)
        ],
        train=lambda w: [
            PLAN.stage_shard(dataset, "prep", shard)
            for dataset in PLAN.training_datasets
            for shard in shard_names(dataset)
        ],
        manifests=manifest_files,
    output:
        sr=report(f"{RUN}/tables/super_resolution.md", caption="../report/sr_table.rst", category="Tables"),
        sr_csv=f"{RUN}/tables/super_resolution.csv",
        dehazing=report(f"{RUN}/tables/dehazing.md", caption="../report/dehazing_table.rst", category="Tables"),
        dehazing_csv=f"{RUN}/tables/dehazing.csv",
    log:
        f"{RUN_LOGS}/sr_table/sr_table.log",
    benchmark:
        f"{RUN}/benchmarks/sr_table/sr_table.tsv"
    conda:
        ENV
    threads: threads("sr_table")
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code_fingerprint("sr_table"),
        settings=lambda w: as_json(
            {name: PLAN.baseline_settings(name) for name in ("srcnn", "vdsr", "vdsr-dehaze", "zssr")}
        ),
        manifests=as_json(PLAN.manifests()),
        splits=" ".join(PLAN.config["metrics"].get("table_splits", ["test"])),
        out_dir=lambda w, output: str(Path(output.sr).parent),
    shell:
        "python -m xvertnet sr-table {input.prep:q} --train-shards {input.train:q} --manifests {params.manifests:q} --settings {params.settings:q}"
        " --splits {params.splits} --out-dir {params.out_dir:q} > {log:q} 2>&1"
