"""Native resolution of `xvertnet enhance`: the enhancement carried to full resolution vs the output resized back.

On RG1_UNCR (1955 x 1841), with a trained model set at its canonical height (512 in the demo):
high-frequency energy (mean squared Laplacian, on [0, 1]) and LPC-SI of a 1:1 crop over the
spine, for the original, the chain's output resized back (what `xvertnet enhance` did before),
and the native-resolution map (what it does now); optionally a 1:1 figure.

    python benchmarks/native_resolution.py results/models/xvertnet --figure docs/figures/native_resolution.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    from scipy import ndimage
    from skimage.transform import resize

    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image
    from xvertnet.metrics import lpc_si
    from xvertnet.model.inference import Chain, native_resolution
    from xvertnet.model.whole_image import model_dirs
    from xvertnet.preprocessing.spine_location import to_canonical

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="a model set (folder of iter1, iter2, ...)")
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    image = read_image(real_radiograph_path()).pixels
    chain = Chain(model_dirs(args.models))
    canonical, _ = to_canonical(image, chain.canonical_height)
    start = time.perf_counter()
    low = chain.run(canonical, tile=512, overlap=64)
    chain_seconds = time.perf_counter() - start
    resized = resize(low, image.shape, order=1, mode="edge", anti_aliasing=False).astype(np.float32)
    start = time.perf_counter()
    native = native_resolution(image, canonical, low)
    native_seconds = time.perf_counter() - start
    top, left = 700, 775  # 512 x 290 over the thoracic spine at 1:1
    crops = {
        name: values[top : top + 512, left : left + 290]
        for name, values in (("original", image), ("resized back", resized), ("native resolution", native))
    }
    print(
        f"RG1_UNCR {image.shape[0]} x {image.shape[1]}, model set {args.models} at height {chain.canonical_height}: "
        f"chain {chain_seconds:.2f} s, native map {native_seconds:.2f} s"
    )
    print("| 1:1 crop 512 x 290 over the spine | HF energy (mean squared Laplacian) | LPC-SI (sigma_onf 0.75) |")
    print("|---|---|---|")
    for name, crop in crops.items():
        energy = float(np.mean(ndimage.laplace(crop.astype(np.float64)) ** 2))
        print(f"| {name} | {energy:.3e} | {lpc_si(crop.astype(np.float64) * 255.0):.3f} |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 3, figsize=(9, 5.6), dpi=100)
        for axis, (name, crop) in zip(axes, crops.items()):
            low_value, high_value = np.percentile(crop, [1, 99])
            axis.imshow(crop, cmap="gray", vmin=low_value, vmax=high_value, interpolation="nearest")
            axis.set_title(name)
            axis.axis("off")
        figure.suptitle("RG1_UNCR at 1:1 (each panel its own 1-99 % window)")
        figure.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.figure)


if __name__ == "__main__":
    main()
