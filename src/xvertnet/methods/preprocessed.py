"""XVertNet's preprocessing alone (Eqs. 1-5: inversion, WLS smoothing, combination, Xp), no network.

The design study's ablation: what the U-Net adds beyond the image it starts from. An
anchored head initialised to zero outputs exactly this image before training.
"""

from __future__ import annotations

import numpy as np

from xvertnet.methods import Method, register
from xvertnet.preprocessing.preprocess import PrepParams

_DEFAULT = PrepParams().record()


@register
class Preprocessed(Method):
    name = "preprocessed"
    #: The `prep` section of the config (the workflow passes it), defaults as PrepParams.
    defaults = dict(_DEFAULT)

    def enhance(self, image: np.ndarray) -> np.ndarray:
        from xvertnet.preprocessing.preprocess import preprocess

        return preprocess(image, PrepParams.from_config(self.params))["Xp"]
