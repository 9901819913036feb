"""The unprocessed ROI, as a method ("original" in the tables)."""

from __future__ import annotations

import numpy as np

from xvertnet.methods import Method, register


@register
class Original(Method):
    name = "original"

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return image.copy()
