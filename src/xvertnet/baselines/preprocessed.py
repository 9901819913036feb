"""XVertNet's preprocessing alone (Eqs. 1-5: inversion, WLS smoothing, combination, Xp), no network.

The design study's ablation: what the U-Net adds beyond the image it starts from. An
anchored head initialised to zero outputs exactly this image before training.
"""

from __future__ import annotations

import numpy as np

from ..preprocess import PrepParams
from . import Baseline, register

_DEFAULT = PrepParams().record()


@register
class Preprocessed(Baseline):
    name = "preprocessed"
    #: The `prep` section of the config (the workflow passes it), defaults as PrepParams.
    defaults = dict(_DEFAULT)

    def enhance(self, image: np.ndarray) -> np.ndarray:
        from ..enhance import prep_params_from_record
        from ..preprocess import preprocess

        return preprocess(image, prep_params_from_record(self.params))["Xp"]
