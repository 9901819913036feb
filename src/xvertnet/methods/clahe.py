"""CLAHE (contrast-limited adaptive histogram equalisation), scikit-image's ``equalize_adapthist``.

References: K. Zuiderveld, Contrast limited adaptive histogram equalization, Graphics Gems IV, 1994.
"""

from __future__ import annotations

import numpy as np

from xvertnet.methods import Method, register


@register
class Clahe(Method):
    name = "clahe"
    #: kernel_size None = 1/8 of each image dimension (scikit-image's default).
    defaults = {"clip_limit": 0.01, "kernel_size": None, "nbins": 256}

    def enhance(self, image: np.ndarray) -> np.ndarray:
        from skimage.exposure import equalize_adapthist

        return equalize_adapthist(
            image,
            kernel_size=self.params["kernel_size"],
            clip_limit=self.params["clip_limit"],
            nbins=self.params["nbins"],
        )
