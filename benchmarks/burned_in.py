"""Glow beside burned-in labels: the XVertNet chain alone vs with labels hidden (xvertnet.preprocessing.burned_in).

RG1_UNCR at the models' canonical height with a synthetic white side marker "R" burned in near
the top right: the mean |enhanced(with marker) - enhanced(without)| in rings at 1-3, 3-6, 6-12 and
12-25 pixels from the marker (what the marker adds to the anatomy beside it), for the chain alone
and with the marker hidden and put back. Optionally a figure of the marker's surroundings, and of
a real radiograph's own markers (e.g. SIIM's, a path given with --real).

    python benchmarks/burned_in.py src/xvertnet/models/xvertnet --figure docs/figures/burned_in.png \\
        --real ../shared/data/real_cxr/siim_pa_1024_8bit.dcm
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    from scipy import ndimage

    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image
    from xvertnet.model.inference import Chain
    from xvertnet.model.whole_image import model_dirs
    from xvertnet.preprocessing.burned_in import burned_in_mask, draw_side_marker, enhance_around_burned_in
    from xvertnet.preprocessing.spine_location import to_canonical

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="?", default=None, help="model set (default: the shipped one)")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--real", type=Path, help="a radiograph with burned-in markers of its own")
    args = parser.parse_args()

    chain = Chain(model_dirs(args.models), device="cpu")

    def alone(x):
        return chain.run(x, tile=512, overlap=64)

    def protected(x):
        return enhance_around_burned_in(x, alone)

    image = to_canonical(read_image(real_radiograph_path()).pixels, chain.canonical_height)[0]
    labelled, label = draw_side_marker(image, 40, image.shape[1] - 90)
    distance = ndimage.distance_transform_edt(~label)
    start = time.perf_counter()
    outputs = {
        name: (enhance(image), enhance(labelled)) for name, enhance in (("alone", alone), ("protected", protected))
    }
    print(
        f"RG1 {image.shape[1]}x{image.shape[0]}, marker {int(label.sum())} px, found {int(burned_in_mask(labelled).sum())} px "
        f"(mask, fill, chain, put back: {time.perf_counter() - start:.2f} s for 4 runs)"
    )
    print(f"{'pixels from marker':>20} {'chain alone':>12} {'hidden':>10}")
    for low, high in ((1, 3), (3, 6), (6, 12), (12, 25)):
        ring = (distance > low) & (distance <= high)
        glow = {name: float(np.mean(np.abs(out[1][ring] - out[0][ring]))) for name, out in outputs.items()}
        print(f"{f'{low}-{high}':>20} {glow['alone']:12.4f} {glow['protected']:10.4f}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows, cols = slice(0, 140), slice(image.shape[1] - 170, image.shape[1])
        panels = [
            ("with marker", labelled),
            ("chain alone", outputs["alone"][1]),
            ("marker hidden, put back", outputs["protected"][1]),
        ]
        if args.real:
            real = to_canonical(read_image(args.real).pixels, chain.canonical_height)[0]
            found = burned_in_mask(real)
            where = np.argwhere(found)
            centre = where.mean(axis=0).astype(int) if len(where) else np.array([60, real.shape[1] - 60])
            box = (slice(max(centre[0] - 70, 0), centre[0] + 70), slice(max(centre[1] - 85, 0), centre[1] + 85))
            panels += [
                (f"{args.real.name}", real[box]),
                ("chain alone", alone(real)[box]),
                ("marker hidden, put back", protected(real)[box]),
            ]
        fig, axes = plt.subplots(len(panels) // 3, 3, figsize=(10, 3.3 * (len(panels) // 3)), squeeze=False)
        for axis, (title, picture) in zip(axes.ravel(), panels):
            crop = picture if picture.shape != image.shape else picture[rows, cols]
            axis.imshow(crop, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axis.set_title(title, fontsize=9)
            axis.axis("off")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
        print(f"figure -> {args.figure}")


if __name__ == "__main__":
    main()
