"""The static results gallery: one HTML page per run, opened from disk (docs/results.md ("Results gallery")).

For every chosen image and every method it shows the whole canonical image and the two evaluation
ROIs as 8-bit previews, a before/after slider against the original, a difference view, the ROI's
vertebral CNR and edge ratios, and a link to the method's 16-bit PNG. Filters by data set, patient,
split, condition and method run in the page itself (no server, no external script).

Every preview of one image part shares the window [0, 1] (the stored range), so methods are compared
on one grey scale; the difference view maps method - original onto a blue-white-red scale whose range
(+- d, shown on the page) is shared by all methods of that image part.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from xvertnet.errors import XvertnetError
from xvertnet.evaluation.stats import ordered_methods
from xvertnet.io.atomic import atomic_path
from xvertnet.io.datasets import is_real_radiograph
from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

log = logging.getLogger(__name__)

#: The image parts of an enhanced shard the gallery shows, and their labels.
PARTS = {"whole": "whole image", "eval_upper": "upper ROI", "eval_lower": "lower ROI"}
#: Previews of whole images are at most this wide (the 16-bit link has the full image).
WHOLE_PREVIEW_WIDTH = 384
#: Images per page of the gallery.
PAGE_SIZE = 6
#: Manifest columns carried into the page's filters and captions.
FACETS = ("dataset", "patient", "split", "condition", "view", "source")
#: The difference view's range never drops below this (a method that changes nothing shows white).
MIN_DIFFERENCE_RANGE = 0.02


def gallery_image_ids(available: list[str], info: pd.DataFrame, count: int) -> list[str]:
    """At most ``count`` images: real radiographs first, then test, val and train images, each by id."""
    split_rank = {"test": 0, "val": 1, "train": 2}

    def rank(image_id: str):
        row = info.loc[image_id] if image_id in info.index else {}
        real = is_real_radiograph(row.get("condition", ""), row.get("source", ""))
        return (0 if real else 1, split_rank.get(str(row.get("split", "")), 3), image_id)

    return sorted(dict.fromkeys(available), key=rank)[:count]


def _shrink(values: np.ndarray, part: str) -> np.ndarray:
    """Whole images (grey or RGB) downsized to WHOLE_PREVIEW_WIDTH with anti-aliasing; ROIs as they are."""
    if part != "whole" or values.shape[1] <= WHOLE_PREVIEW_WIDTH:
        return values
    from skimage.transform import resize

    height = max(1, round(values.shape[0] * WHOLE_PREVIEW_WIDTH / values.shape[1]))
    return resize(values, (height, WHOLE_PREVIEW_WIDTH, *values.shape[2:]), anti_aliasing=True, preserve_range=True)


def _preview(image: np.ndarray, part: str) -> np.ndarray:
    """The 8-bit preview of a [0, 1] image (whole images shrunk, :func:`_shrink`)."""
    return np.rint(_shrink(np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0), part) * 255).astype(np.uint8)


def _preview_difference(image: np.ndarray, original: np.ndarray, scale: float, part: str) -> np.ndarray:
    """RGB 8-bit map of ``image - original`` on a blue (darker) - white - red (brighter) scale of +- ``scale``, at the
    preview's size."""
    from matplotlib import colormaps

    delta = np.clip((image - original) / scale, -1.0, 1.0)
    return np.rint(_shrink(colormaps["RdBu_r"]((delta + 1.0) / 2.0)[..., :3], part) * 255).astype(np.uint8)


def _save(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix == ".jpg":  # the colour difference maps: a tenth of a PNG's size, and only a preview
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=88)
        else:
            Image.fromarray(pixels).save(tmp, format="PNG")


def _shards_holding(enhanced: dict[str, list], image_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """image -> every (method, shard) holding it (keys only: no pixels are read here)."""
    wanted, holding = set(image_ids), {}
    for method, shards in enhanced.items():
        for shard in shards:
            with read_shard(shard) as handle:
                for image_id in wanted & set(handle.get(ITEMS, {}).keys()):
                    holding.setdefault(image_id, []).append((method, shard))
    return holding


def _load(holding: list[tuple[str, str]], image_id: str) -> tuple[dict, dict, dict]:
    """One image's arrays per (method, part), the 16-bit PNG of each, and its ROI boxes: one image in memory at a time."""
    arrays, files, boxes = {}, {}, {}
    for method, shard in holding:
        with read_shard(shard) as handle:
            group = handle[ITEMS][image_id]
            for part in PARTS:
                if part in group:
                    arrays[(method, part)] = group[part][()].astype(np.float32)
                    files[(method, part)] = Path(shard).with_suffix("") / f"{image_id}_{part}.png"
            boxes = boxes or decode_attr(group.attrs.get("boxes", "{}")) or {}
    return arrays, files, boxes


def _ratios(per_roi: pd.DataFrame | None) -> dict:
    """(method, image, part) -> {measure: value} of the ratios the page prints under each tile."""
    if per_roi is None or per_roi.empty:
        return {}
    columns = [c for c in ("cnr_ratio", "edge_ratio") if c in per_roi.columns]
    out = {}
    for row in per_roi.itertuples(index=False):
        values = {c: float(getattr(row, c)) for c in columns if np.isfinite(getattr(row, c))}
        if values:
            out[(row.method, row.image_id, f"eval_{row.roi}")] = values
    return out


def write_gallery(
    enhanced: dict[str, list],
    out_dir,
    *,
    manifests: dict[str, pd.DataFrame] | None = None,
    per_roi: pd.DataFrame | None = None,
    count: int = 48,
    title: str = "xvertnet results gallery",
) -> int:
    """Write ``out_dir/index.html`` and its previews for the enhanced shards of every method; return the image count.

    ``enhanced`` maps a method to its enhanced shards (the ``original`` method is the slider's "before"),
    ``manifests`` a data set to its manifest (patient, split, condition, view), ``per_roi`` the per-ROI table
    whose CNR and edge ratios label the ROI tiles."""
    out_dir = Path(out_dir)
    methods = ordered_methods(enhanced)
    if "original" not in methods:
        raise XvertnetError("the gallery needs the 'original' method's enhanced shards (the slider's before image)")
    frames = []
    for dataset, manifest in (manifests or {}).items():
        frame = manifest.copy()
        frame["dataset"] = dataset
        frames.append(frame)
    info = (
        pd.concat(frames, ignore_index=True).drop_duplicates("image_id").set_index("image_id")
        if frames
        else pd.DataFrame(index=pd.Index([], name="image_id"))
    )
    available = []
    for shard in enhanced["original"]:
        with read_shard(shard) as handle:
            available += list(handle.get(ITEMS, {}).keys())
    image_ids = gallery_image_ids(available, info, count)
    holding = _shards_holding(enhanced, image_ids)
    ratios = _ratios(per_roi)
    records = []
    for image_id in image_ids:
        arrays, files, boxes = _load(holding.get(image_id, []), image_id)
        row = info.loc[image_id] if image_id in info.index else pd.Series(dtype=object)
        record = {"id": image_id, **{facet: str(row.get(facet, "")) for facet in FACETS}, "parts": {}}
        for part, label in PARTS.items():
            original = arrays.get(("original", part))
            if original is None:
                continue
            shown = [m for m in methods if (m, part) in arrays]
            changes = [np.abs(arrays[(m, part)] - original) for m in shown if m != "original"]
            scale = max(MIN_DIFFERENCE_RANGE, max((float(np.percentile(c, 99.5)) for c in changes), default=0.0))
            entry = {"label": label, "difference_range": round(scale, 3), "methods": {}}
            if part == "whole":
                height, width = original.shape
                entry["boxes"] = {
                    roi.removeprefix("eval_"): [b[0] / height, b[1] / width, b[2] / height, b[3] / width]
                    for roi, b in boxes.items()
                    if roi in PARTS
                }
            for method in shown:
                image = arrays[(method, part)]
                stem = Path("previews") / method / f"{image_id}_{part}"
                _save(_preview(image, part), out_dir / f"{stem}.png")
                item = {
                    "preview": _url(f"{stem}.png"),
                    "file": _url(os.path.relpath(files[(method, part)], out_dir)),
                    "ratios": ratios.get((method, image_id, part), {}),
                }
                if method != "original":
                    _save(_preview_difference(image, original, scale, part), out_dir / f"{stem}_difference.jpg")
                    item["difference"] = _url(f"{stem}_difference.jpg")
                entry["methods"][method] = item
            record["parts"][part] = entry
        records.append(record)
    data = {
        "title": title,
        "methods": methods,
        "facets": list(FACETS),
        "page_size": PAGE_SIZE,
        "total_images": len(dict.fromkeys(available)),
        "images": records,
    }
    with atomic_path(out_dir / "index.html") as tmp:
        Path(tmp).write_text(_page(data), encoding="utf-8")
    log.info(
        "gallery: %d of %d images, %d methods -> %s",
        len(records),
        data["total_images"],
        len(methods),
        out_dir / "index.html",
    )
    return len(records)


def _url(path) -> str:
    """A relative path as a URL (image ids may hold '#', '%' or spaces)."""
    from urllib.parse import quote

    return quote(Path(path).as_posix())


def _page(data: dict) -> str:
    """The gallery page: the data as JSON in the page, rendered by the script below it. '<', '>' and '&' are
    escaped in the JSON, so no string from a manifest can end or comment out the script element."""
    payload = (
        json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    return _TEMPLATE.replace("__TITLE__", html.escape(data["title"])).replace("__DATA__", payload)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ccc; padding: 8px 16px; z-index: 2; }
h1 { font-size: 1.2em; margin: 0 0 6px 0; }
.filters { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: center; font-size: 0.9em; }
.filters label { white-space: nowrap; }
.methods label { margin-right: 8px; }
main { padding: 8px 16px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 10px 0; padding: 8px 12px; }
.card h2 { font-size: 1em; margin: 0 0 4px 0; font-family: monospace; }
.meta { font-size: 0.85em; color: #555; margin-bottom: 6px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 0.8em; max-width: 260px; }
.compare { position: relative; display: inline-block; line-height: 0; }
.compare img { display: block; max-height: 300px; image-rendering: auto; }
.compare img.after { position: absolute; top: 0; left: 0; width: 100%; height: 100%; clip-path: inset(0 0 0 var(--split, 50%)); }
.compare .line { position: absolute; top: 0; bottom: 0; left: var(--split, 50%); width: 2px; background: #ff0; pointer-events: none; }
.compare .box { position: absolute; border: 1px solid #f33; pointer-events: none; }
.compare input[type=range] { position: absolute; left: 0; bottom: 2px; width: 100%; margin: 0; }
.legend { display: inline-flex; align-items: center; gap: 4px; font-size: 0.8em; }
.ramp { width: 120px; height: 10px; background: linear-gradient(to right, #053061, #f7f7f7, #67001f); border: 1px solid #999; }
.pager { margin: 8px 0; font-size: 0.9em; }
.pager button { margin: 0 4px; }
.empty { color: #900; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<div class="filters" id="filters"></div>
<div class="filters">
<span class="methods" id="methods"></span>
<label>view <select id="view"><option value="slider">before/after slider</option><option value="difference">difference (method - original)</option></select></label>
<span class="legend" id="legend" hidden>darker <span class="ramp"></span> brighter (range below each image)</span>
</div>
<div class="pager" id="pager"></div>
</header>
<main id="cards"></main>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const state = { page: 0, filters: {}, methods: new Set(DATA.methods.filter(m => m !== "original")), view: "slider" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (key === "style") node.style.cssText = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function buildFilters() {
  const box = document.getElementById("filters");
  for (const facet of DATA.facets) {
    const values = [...new Set(DATA.images.map(image => image[facet]))].filter(v => v !== "").sort();
    if (values.length < 2) continue;
    const select = el("select", { id: "filter-" + facet, "data-facet": facet }, el("option", { value: "" }, "all"));
    for (const value of values) select.append(el("option", { value: value }, value));
    select.addEventListener("change", () => { state.filters[facet] = select.value; state.page = 0; render(); });
    box.append(el("label", {}, facet + " ", select));
  }
  const partSelect = el("select", { id: "filter-part" });
  for (const [part, label] of [["whole", "whole image"], ["eval_upper", "upper ROI"], ["eval_lower", "lower ROI"], ["", "all parts"]])
    partSelect.append(el("option", { value: part }, label));
  partSelect.addEventListener("change", () => { state.part = partSelect.value; render(); });
  state.part = "whole";
  box.append(el("label", {}, "part ", partSelect));
  const methods = document.getElementById("methods");
  methods.append("methods: ");
  for (const method of DATA.methods.filter(m => m !== "original")) {
    const box = el("input", { type: "checkbox", id: "method-" + method, value: method });
    box.checked = true;
    box.addEventListener("change", () => { if (box.checked) state.methods.add(method); else state.methods.delete(method); render(); });
    methods.append(el("label", {}, box, " " + method));
  }
  const view = document.getElementById("view");
  view.addEventListener("change", () => { state.view = view.value; document.getElementById("legend").hidden = view.value !== "difference"; render(); });
}

function selected() {
  return DATA.images.filter(image => Object.entries(state.filters).every(([facet, value]) => !value || image[facet] === value));
}

function tile(image, part, entry, method) {
  const item = entry.methods[method];
  const original = entry.methods.original;
  const figure = el("figure", { class: "tile", "data-method": method, "data-part": part });
  const frame = el("div", { class: "compare" });
  if (method === "original" || state.view === "slider") {
    frame.append(el("img", { class: "before", src: original.preview, alt: image.id + " original " + entry.label }));
    if (method !== "original") {
      frame.append(el("img", { class: "after", src: item.preview, alt: image.id + " " + method + " " + entry.label }));
      frame.append(el("div", { class: "line" }));
      const slider = el("input", { type: "range", min: "0", max: "100", value: "50", "aria-label": "before/after split" });
      slider.addEventListener("input", () => frame.style.setProperty("--split", slider.value + "%"));
      frame.append(slider);
    }
  } else {
    frame.append(el("img", { class: "difference", src: item.difference, alt: image.id + " " + method + " minus original" }));
  }
  if (part === "whole" && entry.boxes) {
    for (const [roi, box] of Object.entries(entry.boxes)) {
      frame.append(el("div", { class: "box", title: roi + " ROI",
        style: `top:${100 * box[0]}%;left:${100 * box[1]}%;height:${100 * box[2]}%;width:${100 * box[3]}%` }));
    }
  }
  const values = Object.entries(item.ratios || {}).map(([k, v]) => (k === "cnr_ratio" ? "CNR " : "edge ") + v.toFixed(2) + "x").join(", ");
  const caption = el("figcaption", {}, el("b", {}, method === "original" ? "original" : state.view === "slider" ? "left original, right " + method : method + " - original"), " ", entry.label);
  if (method !== "original" && state.view === "difference") caption.append(" (range \\u00b1" + entry.difference_range + ")");
  if (values) caption.append(el("br"), values + " of the original");
  caption.append(el("br"), el("a", { href: item.file, class: "file" }, "16-bit PNG"));
  figure.append(frame, caption);
  return figure;
}

function render() {
  const images = selected();
  const pages = Math.max(1, Math.ceil(images.length / DATA.page_size));
  state.page = Math.min(state.page, pages - 1);
  const pager = document.getElementById("pager");
  pager.replaceChildren();
  const previous = el("button", { id: "previous" }, "previous");
  const next = el("button", { id: "next" }, "next");
  previous.disabled = state.page === 0;
  next.disabled = state.page >= pages - 1;
  previous.addEventListener("click", () => { state.page -= 1; render(); });
  next.addEventListener("click", () => { state.page += 1; render(); });
  pager.append(`${images.length} images match (the gallery holds ${DATA.images.length} of the run's ${DATA.total_images}); page ${state.page + 1} of ${pages} `, previous, next);
  const cards = document.getElementById("cards");
  cards.replaceChildren();
  if (!images.length) cards.append(el("p", { class: "empty" }, "No image matches these filters."));
  for (const image of images.slice(state.page * DATA.page_size, (state.page + 1) * DATA.page_size)) {
    const card = el("section", { class: "card", "data-image": image.id });
    card.append(el("h2", {}, image.id));
    card.append(el("div", { class: "meta" }, DATA.facets.filter(f => image[f]).map(f => f + ": " + image[f]).join(" \\u00b7 ")));
    for (const [part, entry] of Object.entries(image.parts)) {
      if (state.part && part !== state.part) continue;
      const row = el("div", { class: "row" });
      row.append(tile(image, part, entry, "original"));
      for (const method of DATA.methods) if (method !== "original" && state.methods.has(method) && entry.methods[method]) row.append(tile(image, part, entry, method));
      card.append(row);
    }
    cards.append(card);
  }
}

buildFilters();
render();
</script>
</body>
</html>
"""
