"""The ``xvertnet`` command: one subcommand per workflow stage.

Rules call these subcommands; the same commands serve a user outside Snakemake.
Diagnostics go to the log (stderr); a failure prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import XvertnetError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _add_roi_options(parser: argparse.ArgumentParser) -> None:
    from .roi import RoiSettings

    defaults = RoiSettings()
    parser.add_argument("--canonical-height", type=_positive_int, default=defaults.canonical_height, help="resample every image to this height (px)")
    parser.add_argument("--train-size", type=_positive_int, nargs=2, metavar=("H", "W"), default=list(defaults.train_size), help="training ROI size")
    parser.add_argument("--eval-size", type=_positive_int, nargs=2, metavar=("H", "W"), default=list(defaults.eval_size), help="evaluation ROI size")
    parser.add_argument("--spine-width-fraction", type=float, default=defaults.spine_width_fraction, help="spine column width / canonical height")
    parser.add_argument("--search-fraction", type=float, default=defaults.search_fraction, help="central band searched, fraction of the width")
    parser.add_argument("--max-step", type=_positive_int, default=defaults.max_step, help="largest sideways move of the spine line per row")
    parser.add_argument("--upper-fraction", type=float, default=defaults.upper_fraction, help="upper ROI centre, fraction of the lung extent")
    parser.add_argument("--lower-fraction", type=float, default=defaults.lower_fraction, help="lower ROI centre, fraction of the lung extent")
    parser.add_argument("--lung-contrast", type=float, default=defaults.lung_contrast, help="lung row threshold, fraction of the 95th percentile contrast")


def _add_prep_options(parser: argparse.ArgumentParser) -> None:
    from .preprocess import PrepParams
    from .wls import SOLVERS

    defaults = PrepParams()
    wls = defaults.wls
    parser.add_argument("--lambda", dest="lam", type=float, default=wls.lam, help="WLS smoothness lambda (Eq. 2)")
    parser.add_argument("--alpha", type=float, default=wls.alpha, help="WLS weight exponent (Eq. 3)")
    parser.add_argument("--eps", type=float, default=wls.eps, help="WLS weight stabiliser (Eq. 3)")
    parser.add_argument("--log-floor", type=float, default=wls.log_floor, help="floor inside the log-luminance")
    parser.add_argument("--solver", choices=sorted(SOLVERS), default=wls.solver, help="WLS solver")
    parser.add_argument("--rtol", type=float, default=wls.rtol, help="relative residual of the amg solver")
    parser.add_argument("--fgs-iterations", type=_positive_int, default=wls.fgs_iterations, help="fast solver iterations")
    parser.add_argument("--fgs-lambda-factor", type=float, default=wls.fgs_lambda_factor, help="fast solver lambda / lambda")
    parser.add_argument("--e-floor", type=float, default=defaults.e_floor, help="E >= e_floor * mean(X) (guard)")
    parser.add_argument("--rescale-xp", action=argparse.BooleanOptionalAction, default=defaults.rescale_xp, help="min-max rescale Xp")


def _roi_settings(args):
    from .roi import RoiSettings

    return RoiSettings(
        canonical_height=args.canonical_height,
        train_size=tuple(args.train_size),
        eval_size=tuple(args.eval_size),
        spine_width_fraction=args.spine_width_fraction,
        search_fraction=args.search_fraction,
        max_step=args.max_step,
        upper_fraction=args.upper_fraction,
        lower_fraction=args.lower_fraction,
        lung_contrast=args.lung_contrast,
    )


def cmd_demo_data(args) -> int:
    from .demo_data import DemoSettings, View, build_demo_data

    settings = json.loads(args.settings) if args.settings else {}
    views = tuple(View(**view) for view in settings.pop("views", [{"name": "ap"}]))
    demo = DemoSettings(views=views, conditions=tuple(settings.pop("conditions", ["clean"])), **settings)
    manifest = build_demo_data(args.out_dir, args.manifest, demo)
    logging.getLogger("xvertnet").info("demo data: %d images, manifest %s", len(manifest), args.manifest)
    return 0


def cmd_shard(args) -> int:
    from .datasets import split_into_shards

    written = split_into_shards(args.manifest, args.out_dir, shard_size=args.shard_size)
    logging.getLogger("xvertnet").info("%d shards of up to %d images in %s", len(written), args.shard_size, args.out_dir)
    return 0


def cmd_ingest(args) -> int:
    from .datasets import read_manifest
    from .ingest import entries_from_paths, ingest_entries
    from .io import ReadOptions

    if bool(args.images) == bool(args.manifest):
        raise XvertnetError("ingest: give either image paths or --manifest, not both or neither")
    entries = read_manifest(args.manifest).to_dict("records") if args.manifest else entries_from_paths(args.images)
    options = ReadOptions(max_pixels=args.max_pixels, min_side=args.min_side, jsrt_invert=args.jsrt_invert)
    summary = ingest_entries(entries, args.out, args.rejects, options=options)
    logging.getLogger("xvertnet").info("ingest: %d stored, %d rejected -> %s", summary.stored, summary.rejected, args.out)
    return 0


def cmd_roi(args) -> int:
    from .roi import roi_shard

    stored, rejected = roi_shard(args.ingest, args.out, args.qc_dir, _roi_settings(args), args.rejects, qc_limit=args.qc_max)
    logging.getLogger("xvertnet").info("roi: %d images, %d rejected -> %s", stored, rejected, args.out)
    return 0


def cmd_index(args) -> int:
    from .roi import write_roi_index

    count = write_roi_index(args.roi_shards, args.out, rejects_in=args.rejects_in, rejects_out=args.rejects_out)
    logging.getLogger("xvertnet").info("index: %d images -> %s", count, args.out)
    return 0


def _prep_params(args):
    from .preprocess import PrepParams
    from .wls import WlsParams

    wls = WlsParams(lam=args.lam, alpha=args.alpha, eps=args.eps, log_floor=args.log_floor, solver=args.solver,
                    rtol=args.rtol, fgs_iterations=args.fgs_iterations, fgs_lambda_factor=args.fgs_lambda_factor)
    return PrepParams(wls=wls, e_floor=args.e_floor, rescale_xp=args.rescale_xp)


def cmd_prep(args) -> int:
    from .prep import prep_shard

    count = prep_shard(args.roi, args.out, _prep_params(args), figure_dir=args.figure_dir, figure_limit=args.figure_max)
    logging.getLogger("xvertnet").info("prep: %d images -> %s", count, args.out)
    return 0


def cmd_prep_summary(args) -> int:
    from .prep import write_prep_summary

    count = write_prep_summary(args.prep_shards, args.out)
    logging.getLogger("xvertnet").info("prep summary: %d crops -> %s", count, args.out)
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, train_iteration

    config = TrainConfig.from_dict(json.loads(args.settings)) if args.settings else TrainConfig()
    summary = train_iteration(args.data, args.out_dir, config, iteration=args.iteration, progress=not args.no_progress)
    logging.getLogger("xvertnet").info("train: iteration %d, %d epochs, best epoch %d (val %.5f), %.0f s -> %s", args.iteration,
                                       summary["epochs"], summary["best_epoch"], summary["best_val_loss"], summary["training_seconds"], args.out_dir)
    return 0


def cmd_refine(args) -> int:
    from .enhance import refine_shard

    count = refine_shard(args.model, args.data, args.out, device=args.device)
    logging.getLogger("xvertnet").info("refine: %d images -> %s", count, args.out)
    return 0


def cmd_enhance_shard(args) -> int:
    from .enhance import Chain, enhance_rois_shard

    params = json.loads(args.params) if args.params else {}
    per_image = None
    if args.internal:
        from .internal import InternalEnhancer
        from .train import TrainConfig

        if not args.prep:
            raise XvertnetError("enhance-shard: --internal needs --prep (the image's preprocessed crops)")
        config = TrainConfig.from_dict(json.loads(args.internal))
        per_image = InternalEnhancer(args.prep, config, args.iterations or 1, device=args.device, tile=args.tile, overlap=args.overlap)
        crop, whole, recorded = None, None, {"internal": config.to_dict(), "iterations": args.iterations or 1}
    elif args.models:
        chain = Chain(args.models[: args.iterations], device=args.device)
        crop, whole, recorded = chain.run, (lambda image: chain.run(image, tile=args.tile, overlap=args.overlap)), chain.describe()
    else:
        from .baselines import REGISTRY, get_method

        if args.method not in REGISTRY:
            raise XvertnetError(f"enhance-shard: '{args.method}' is no baseline: an XVertNet method needs --models or --internal")

        method = get_method(args.method, params)
        if method.trainable:
            if not args.baseline_model:
                raise XvertnetError(f"enhance-shard: {args.method} is trained: give --baseline-model")
            method.load(args.baseline_model)
        crop, whole, recorded = method, (method if method.whole_images and args.whole else None), method.params
    whole = whole if args.whole else None
    count = enhance_rois_shard(args.method, crop, args.roi, args.out, args.png_dir, splits=tuple(args.splits), enhance_whole=whole,
                               params={"params": recorded}, per_image=per_image,
                               whole=args.whole if per_image is not None else None)
    logging.getLogger("xvertnet").info("enhance %s: %d images -> %s", args.method, count, args.out)
    return 0


def cmd_train_baseline(args) -> int:
    from .baselines import get_method, training_crops

    method = get_method(args.method, json.loads(args.params) if args.params else {})
    crops = training_crops(args.data) if method.uses_training_crops else []
    if method.uses_training_crops and not crops:
        raise XvertnetError(f"train-baseline {args.method}: no training crops in {len(args.data)} data shard(s)")
    metadata = method.fit(crops, args.out_dir)
    logging.getLogger("xvertnet").info("trained %s on %d crops in %.1f s: loss %.4f -> %.4f", args.method, len(crops),
                                       metadata["seconds"], metadata["first_loss"], metadata["last_loss"])
    return 0


def cmd_enhanced_index(args) -> int:
    from .enhance import write_enhanced_index

    count = write_enhanced_index(args.shards, args.out)
    logging.getLogger("xvertnet").info("enhanced index: %d images -> %s", count, args.out)
    return 0


def cmd_enhance(args) -> int:
    from .enhance import enhance_file

    model_dirs = _model_dirs(args.model)
    description = enhance_file(model_dirs, args.input, args.output, iterations=args.iterations, device=args.device, tile=args.tile, overlap=args.overlap)
    logging.getLogger("xvertnet").info("enhanced %s -> %s with %d iteration(s)", args.input, args.output, description["iterations_applied"])
    return 0


def _model_dirs(path: Path) -> list[Path]:
    """A model directory (model.json inside) or a folder of iter1, iter2, ... directories, in order."""
    if (path / "model.json").is_file():
        return [path]
    found = sorted((p for p in path.glob("iter*") if (p / "model.json").is_file()), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)
    if not found:
        raise XvertnetError(f"{path}: no model.json here and no iter*/model.json below")
    return found


def _metric_params(args):
    from .metrics import MetricParams

    return MetricParams(lpc_sigma_onf=args.lpc_sigma_onf, tc_intensity_scale=args.tc_intensity_scale, cnr_band=args.cnr_band)


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    from .metrics import MetricParams

    defaults = MetricParams()
    parser.add_argument("--lpc-sigma-onf", type=float, default=defaults.lpc_sigma_onf,
                        help="LPC-SI log-Gabor bandwidth sigma_onf (default: the authors' released 0.75; 0.33 in other copies)")
    parser.add_argument("--tc-intensity-scale", type=float, default=defaults.tc_intensity_scale, help="TC: image (0-255) times this")
    parser.add_argument("--cnr-band", type=_positive_int, default=defaults.cnr_band, help="paravertebral band width (px) of the CNR")


def cmd_metrics(args) -> int:
    from .io import read_image
    from .metrics import measure_all, to_255

    image = to_255(read_image(args.image).pixels)
    reference = to_255(read_image(args.reference).pixels) if args.reference else None
    if reference is not None and reference.shape != image.shape:
        raise XvertnetError(f"{args.reference}: shape {reference.shape} differs from {args.image} {image.shape}")
    params = _metric_params(args)
    values = measure_all(image, reference255=reference, clean255=reference, params=params)
    if args.json:
        print(json.dumps({"image": str(args.image), "reference": str(args.reference) if args.reference else None,
                          "measures": values, "params": params.record()}, indent=2))
    else:
        for name, value in values.items():
            print(f"{name:>10}  {value:.6g}")
    return 0


def cmd_metrics_shard(args) -> int:
    from .evaluate import metrics_shard

    count = metrics_shard(args.method, args.enhanced, args.roi, args.out, dataset=args.dataset, params=_metric_params(args))
    logging.getLogger("xvertnet").info("metrics %s: %d ROIs -> %s", args.method, count, args.out)
    return 0


def cmd_aggregate_metrics(args) -> int:
    from .evaluate import aggregate

    enhanced = {}
    for spec in args.enhanced:  # dataset:method:shard.h5
        dataset, method, path = spec.split(":", 2)
        enhanced.setdefault((dataset, method), []).append(path)
    manifests = dict(spec.split(":", 1) for spec in args.manifest)
    table = aggregate(args.metric_csvs, args.out, enhanced=enhanced, manifests=manifests)
    logging.getLogger("xvertnet").info("per-ROI table: %d rows -> %s", len(table), args.out)
    return 0


def _paths_by_method(specs) -> dict[str, list[str]]:
    """``method:shard.h5`` options grouped by method, in order."""
    grouped: dict[str, list[str]] = {}
    for spec in specs:
        method, path = spec.split(":", 1)
        grouped.setdefault(method, []).append(path)
    return grouped


def cmd_tables(args) -> int:
    import pandas as pd

    from .report import box_plots, visual_panel
    from .stats import compare, reference_method, write_comparison_tables

    per_roi = pd.read_csv(args.per_roi)
    reference = reference_method(per_roi["method"].unique())
    statistics = compare(per_roi, reference=reference, splits=tuple(args.splits))
    write_comparison_tables(statistics, args.out_stem, reference=reference)
    box_plots(per_roi, args.boxplots, splits=tuple(args.splits))
    enhanced = _paths_by_method(args.enhanced)
    test = per_roi[per_roi["split"].isin(args.splits)]["image_id"].drop_duplicates().tolist()
    visual_panel(enhanced, args.panel, image_ids=test[: args.panel_images])
    logging.getLogger("xvertnet").info("tables -> %s.{csv,md,tex}", args.out_stem)
    return 0


def cmd_study_report(args) -> int:
    import pandas as pd

    from .study import write_study

    per_roi = pd.read_csv(args.per_roi)
    manifests = {}
    for spec in args.manifest:  # dataset:manifest.csv
        dataset, path = spec.split(":", 1)
        manifests[dataset] = pd.read_csv(path, keep_default_na=False)
    enhanced = _paths_by_method(args.enhanced)
    settings = json.loads(args.settings) if args.settings else {}
    chosen = write_study(per_roi, manifests, args.out_dir, entries=args.entries, references=args.references, settings=settings,
                         enhanced=enhanced, select_split=args.select_split, select_conditions=args.select_conditions,
                         report_split=args.report_split, paper_entry=args.paper_entry)
    logging.getLogger("xvertnet").info("study of %d entries -> %s; recommended: %s", len(args.entries), args.out_dir, chosen)
    return 0


def cmd_download(args) -> int:
    from .download import DownloadOptions, fetch_dataset

    options = DownloadOptions(base_url=args.base_url, archive=args.archive, seed=args.seed, retries=args.retries,
                              progress=not args.no_progress)
    manifest = fetch_dataset(args.dataset, args.dest, options, registry_name=args.registry)
    logging.getLogger("xvertnet").info("%s: manifest of %d images in %s", args.dataset, len(manifest), args.dest)
    return 0


def cmd_check_config(args) -> int:
    from .config import load_config

    load_config(args.config, args.schema)
    print(f"{args.config}: valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .io import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE

    parser = argparse.ArgumentParser(prog="xvertnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xvertnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-data", help="build the embedded demo data set and its manifest")
    demo.add_argument("--out-dir", required=True, type=Path)
    demo.add_argument("--manifest", required=True, type=Path)
    demo.add_argument("--settings", help="JSON object of the config section 'demo'")
    demo.set_defaults(run=cmd_demo_data)

    shard = commands.add_parser("shard", help="split a manifest into shard manifests")
    shard.add_argument("manifest", type=Path)
    shard.add_argument("--out-dir", required=True, type=Path)
    shard.add_argument("--shard-size", required=True, type=_positive_int)
    shard.set_defaults(run=cmd_shard)

    ingest = commands.add_parser("ingest", help="read images, normalise bit depth, write one HDF5 shard")
    ingest.add_argument("images", nargs="*", type=Path, help="image files (or use --manifest)")
    ingest.add_argument("--manifest", type=Path, help="a (shard) manifest CSV")
    ingest.add_argument("--out", required=True, type=Path, help="HDF5 file to write")
    ingest.add_argument("--rejects", required=True, type=Path, help="CSV of rejected images and reasons")
    ingest.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS)
    ingest.add_argument("--min-side", type=_positive_int, default=DEFAULT_MIN_SIDE)
    ingest.add_argument("--jsrt-invert", action=argparse.BooleanOptionalAction, default=True)
    ingest.set_defaults(run=cmd_ingest)

    roi = commands.add_parser("roi", help="canonical scale, spine localisation, training and evaluation ROIs")
    roi.add_argument("ingest", type=Path, help="ingest shard (HDF5)")
    roi.add_argument("--out", required=True, type=Path)
    roi.add_argument("--qc-dir", required=True, type=Path)
    roi.add_argument("--rejects", required=True, type=Path)
    roi.add_argument("--qc-max", type=int, default=None, help="QC overlays per shard (default: all)")
    _add_roi_options(roi)
    roi.set_defaults(run=cmd_roi)

    index = commands.add_parser("index", help="one CSV row per image over all ROI shards, and merged rejects")
    index.add_argument("roi_shards", nargs="+", type=Path)
    index.add_argument("--out", required=True, type=Path)
    index.add_argument("--rejects-in", nargs="*", type=Path, default=[])
    index.add_argument("--rejects-out", required=True, type=Path)
    index.set_defaults(run=cmd_index)

    prep = commands.add_parser("prep", help="WLS, Xp and HFC (Eqs. 1-6) of every crop of a ROI shard")
    prep.add_argument("roi", type=Path, help="ROI shard (HDF5)")
    prep.add_argument("--out", required=True, type=Path)
    prep.add_argument("--figure-dir", type=Path, help="write a Fig. 1-style panel per image here")
    prep.add_argument("--figure-max", type=int, default=None, help="panels per shard (default: all)")
    _add_prep_options(prep)
    prep.set_defaults(run=cmd_prep)

    summary = commands.add_parser("prep-summary", help="one CSV row per image and ROI over all prep shards")
    summary.add_argument("prep_shards", nargs="+", type=Path)
    summary.add_argument("--out", required=True, type=Path)
    summary.set_defaults(run=cmd_prep_summary)

    train = commands.add_parser("train", help="train one XVertNet iteration on data shards")
    train.add_argument("data", nargs="+", type=Path, help="data shards (prep for iteration 1, refine of t-1 after)")
    train.add_argument("--out-dir", required=True, type=Path)
    train.add_argument("--iteration", type=_positive_int, default=1)
    train.add_argument("--settings", help="JSON object of the config section 'train' (without 'iterations')")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)

    refine = commands.add_parser("refine", help="apply model t to a data shard: the next iteration's inputs and HFC")
    refine.add_argument("data", type=Path)
    refine.add_argument("--model", required=True, type=Path)
    refine.add_argument("--out", required=True, type=Path)
    refine.add_argument("--device", default="auto")
    refine.set_defaults(run=cmd_refine)

    shard_enhance = commands.add_parser("enhance-shard", help="a method (xvertnet or a baseline) on the evaluation ROIs and whole images of a ROI shard")
    shard_enhance.add_argument("--method", required=True,
                               help="a name for XVertNet (with --models or --internal), or a baseline: original, clahe, farbman, zerodce, zssr, madmad")
    shard_enhance.add_argument("--roi", required=True, type=Path, help="ROI shard (HDF5)")
    shard_enhance.add_argument("--out", required=True, type=Path)
    shard_enhance.add_argument("--png-dir", required=True, type=Path)
    shard_enhance.add_argument("--models", nargs="*", type=Path, default=[], help="XVertNet: iteration directories, in order")
    shard_enhance.add_argument("--iterations", type=_positive_int, help="XVertNet: apply (or, internal, train) the first T iterations only")
    shard_enhance.add_argument("--internal", metavar="SETTINGS",
                               help="XVertNet internal learning: train settings JSON; trains on each image before enhancing it")
    shard_enhance.add_argument("--prep", type=Path, help="internal learning: the prep shard of --roi (the images' own crops)")
    shard_enhance.add_argument("--baseline-model", type=Path, help="a trained baseline's model directory")
    shard_enhance.add_argument("--params", help="JSON object of the method's parameters")
    shard_enhance.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    shard_enhance.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True, help="also enhance the canonical whole image")
    shard_enhance.add_argument("--device", default="auto")
    shard_enhance.add_argument("--tile", type=_positive_int, default=512)
    shard_enhance.add_argument("--overlap", type=int, default=64)
    shard_enhance.set_defaults(run=cmd_enhance_shard)

    train_baseline = commands.add_parser("train-baseline", help="train a learned baseline (zerodce on the training crops, madmad on synthetic data)")
    train_baseline.add_argument("data", nargs="*", type=Path, help="data shards with the training crops")
    train_baseline.add_argument("--method", required=True)
    train_baseline.add_argument("--out-dir", required=True, type=Path)
    train_baseline.add_argument("--params", help="JSON object of the method's parameters")
    train_baseline.set_defaults(run=cmd_train_baseline)

    enhanced_index = commands.add_parser("enhanced-index", help="one CSV row per enhanced image over enhanced shards")
    enhanced_index.add_argument("shards", nargs="+", type=Path)
    enhanced_index.add_argument("--out", required=True, type=Path)
    enhanced_index.set_defaults(run=cmd_enhanced_index)

    enhance = commands.add_parser("enhance", help="enhance one image file (PNG/JPEG/TIFF/JSRT/DICOM) -> 16-bit PNG or derived DICOM")
    enhance.add_argument("input", type=Path)
    enhance.add_argument("output", type=Path, help="*.png, or *.dcm for a DICOM input")
    enhance.add_argument("--model", required=True, type=Path, help="a model directory or a folder of iter1, iter2, ...")
    enhance.add_argument("--iterations", type=_positive_int, default=None, help="apply only the first N iterations")
    enhance.add_argument("--device", default="auto")
    enhance.add_argument("--tile", type=_positive_int, default=512)
    enhance.add_argument("--overlap", type=int, default=64)
    enhance.set_defaults(run=cmd_enhance)

    metrics = commands.add_parser("metrics", help="every quality measure of one image (0-255; see the docs for the mapping)")
    metrics.add_argument("image", type=Path)
    metrics.add_argument("--reference", type=Path, help="reference image: TMQI reference and PSNR/SSIM clean reference")
    metrics.add_argument("--json", action="store_true")
    _add_metric_options(metrics)
    metrics.set_defaults(run=cmd_metrics)

    metrics_shard = commands.add_parser("metrics-shard", help="measure a method's enhanced evaluation ROIs of one shard")
    metrics_shard.add_argument("--method", required=True)
    metrics_shard.add_argument("--dataset", required=True)
    metrics_shard.add_argument("--enhanced", required=True, type=Path)
    metrics_shard.add_argument("--roi", required=True, type=Path)
    metrics_shard.add_argument("--out", required=True, type=Path)
    _add_metric_options(metrics_shard)
    metrics_shard.set_defaults(run=cmd_metrics_shard)

    aggregate = commands.add_parser("aggregate-metrics", help="the long per-ROI table with ratios and consistency measures")
    aggregate.add_argument("metric_csvs", nargs="+", type=Path)
    aggregate.add_argument("--out", required=True, type=Path)
    aggregate.add_argument("--enhanced", nargs="*", default=[], help="dataset:method:shard.h5 entries")
    aggregate.add_argument("--manifest", nargs="*", default=[], help="dataset:manifest.csv entries")
    aggregate.set_defaults(run=cmd_aggregate_metrics)

    tables = commands.add_parser("tables", help="statistics, comparison tables (csv, md, tex), box plots and a visual panel")
    tables.add_argument("per_roi", type=Path)
    tables.add_argument("--out-stem", required=True, help="e.g. results/tables/comparison")
    tables.add_argument("--boxplots", required=True, type=Path)
    tables.add_argument("--panel", required=True, type=Path)
    tables.add_argument("--enhanced", nargs="*", default=[], help="method:shard.h5 entries for the panel")
    tables.add_argument("--splits", nargs="+", default=["test"])
    tables.add_argument("--panel-images", type=int, default=4)
    tables.set_defaults(run=cmd_tables)

    study = commands.add_parser("study-report", help="the design study's table, per-variant tables and panels, and its conclusion")
    study.add_argument("per_roi", type=Path, help="per_roi.csv with the study entries and the reference methods")
    study.add_argument("--out-dir", required=True, type=Path)
    study.add_argument("--entries", nargs="+", required=True, help="study entries (methods) to judge")
    study.add_argument("--references", nargs="+", default=["original", "clahe"])
    study.add_argument("--manifest", nargs="+", required=True, help="dataset:manifest.csv entries (view, condition)")
    study.add_argument("--enhanced", nargs="*", default=[], help="method:shard.h5 entries for the panels")
    study.add_argument("--settings", help="JSON object entry -> its settings (recorded in the tables)")
    study.add_argument("--select-split", default="val")
    study.add_argument("--select-conditions", nargs="+", default=["clean", "low_dose", "blur"])
    study.add_argument("--report-split", default="test")
    study.add_argument("--paper-entry", help="the entry with the paper's recipe (named in the conclusion)")
    study.set_defaults(run=cmd_study_report)

    download = commands.add_parser("download", help="fetch, verify and unpack a public data set; write its manifest")
    download.add_argument("dataset", help="a name of the registry (montgomery, shenzhen, nih_chestxray14, jsrt, chexpert, ...)")
    download.add_argument("--dest", required=True, type=Path)
    download.add_argument("--registry", help="registry entry when the data set is named otherwise")
    download.add_argument("--base-url", help="replaces everything before the file name (mirrors, tests)")
    download.add_argument("--archive", help="a downloaded archive or folder (data sets that need registration)")
    download.add_argument("--seed", type=int, default=0, help="seed of the patient-level split")
    download.add_argument("--retries", type=int, default=5)
    download.add_argument("--no-progress", action="store_true")
    download.set_defaults(run=cmd_download)

    check = commands.add_parser("check-config", help="validate a config file against the schema")
    check.add_argument("config", type=Path)
    check.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    check.set_defaults(run=cmd_check_config)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    try:
        return args.run(args)
    except XvertnetError as error:
        print(f"xvertnet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
