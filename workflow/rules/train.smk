# A training job writes to <model>/training/; publish_model copies the model up to <model>/ once the
# job has succeeded. Snakemake deletes a job's outputs before it runs and after it fails, so a
# failed retraining then loses only training/, never the published model the enhance jobs use.


rule train:
    input:
        data=lambda w: PLAN.train_inputs(w.model_set, int(w.iteration), shard_names),
    output:
        model=f"{RUN}/models/{{model_set}}/iter{{iteration}}/training/model.pt",
        metadata=f"{RUN}/models/{{model_set}}/iter{{iteration}}/training/model.json",
        log_csv=f"{RUN}/models/{{model_set}}/iter{{iteration}}/training/train_log.csv",
        curve=f"{RUN}/models/{{model_set}}/iter{{iteration}}/training/loss_curve.png",
    log:
        f"{RUN_LOGS}/train/{{model_set}}/iter{{iteration}}.log",
    benchmark:
        f"{RUN}/benchmarks/train/{{model_set}}/iter{{iteration}}.tsv"
    conda:
        ENV
    threads: threads("train")
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    params:
        code=code_fingerprint("train"),
        settings=lambda w: as_json(PLAN.model_set_settings(w.model_set)),
        out_dir=lambda w, output: str(Path(output.model).parent),
    shell:
        "python -m xvertnet train {input.data:q} --out-dir {params.out_dir:q} --iteration {wildcards.iteration}"
        " --settings {params.settings:q} --no-progress > {log:q} 2>&1"


rule refine:
    input:
        model=f"{RUN}/models/{{model_set}}/iter{{iteration}}/model.pt",
        metadata=f"{RUN}/models/{{model_set}}/iter{{iteration}}/model.json",
        data=lambda w: PLAN.data_shard(w.dataset, w.shard, int(w.iteration) - 1, w.model_set),
    output:
        h5=f"{RUN}/{{dataset}}/refine/{{model_set}}/iter{{iteration}}/{{shard}}.h5",
    log:
        f"{RUN_LOGS}/refine/{{dataset}}/{{model_set}}/iter{{iteration}}/{{shard}}.log",
    benchmark:
        f"{RUN}/benchmarks/refine/{{dataset}}/{{model_set}}/iter{{iteration}}/{{shard}}.tsv"
    conda:
        ENV
    threads: threads("refine")
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code_fingerprint("refine"),
        settings=section("enhance"),
        model_dir=lambda w, input: str(Path(input.model).parent),
    shell:
        "python -m xvertnet refine {input.data:q} --model {params.model_dir:q} --out {output.h5:q} --settings {params.settings:q} > {log:q} 2>&1"


rule publish_model:
    input:
        model=f"{RUN}/models/{{model}}/training/model.pt",
        metadata=f"{RUN}/models/{{model}}/training/model.json",
    output:
        model=f"{RUN}/models/{{model}}/model.pt",
        metadata=f"{RUN}/models/{{model}}/model.json",
    log:
        f"{RUN_LOGS}/publish_model/{{model}}.log",
    benchmark:
        f"{RUN}/benchmarks/publish_model/{{model}}.tsv"
    wildcard_constraints:
        model=r"[^/]+/iter[1-9][0-9]*|baselines/[^/]+",
    localrule: True
    conda:
        ENV
    threads: threads("publish_model")
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code=code_fingerprint("publish_model"),
        out_dir=lambda w, output: str(Path(output.model).parent),
    shell:
        "python -m xvertnet publish-model {input.model:q} {input.metadata:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
