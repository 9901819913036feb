"""XVertNet as methods beside the baselines: the trained chain, and internal learning per image.

* ``xvertnet-chain``: trained iterations 1..T (:class:`xvertnet.model.inference.Chain`) applied to
  every crop; whole images are enhanced in overlapping tiles, burned-in labels and border strips
  hidden from the network and put back unchanged (:mod:`xvertnet.preprocessing.burned_in`).
* ``xvertnet-internal``: for each image it enhances, trains the chain on that image's own
  training crops (:mod:`xvertnet.model.internal_learning`), then applies it.

The workflow names its XVertNet configurations (``xvertnet``, ``xvertnet-paper``, study
entries); each enhances through one of these two methods with the settings the plan gives
(:mod:`xvertnet.plan`).
"""

from __future__ import annotations

import tempfile

import numpy as np

from xvertnet.errors import XvertnetError
from xvertnet.methods import Method, register
from xvertnet.preprocessing.burned_in import enhance_around_burned_in


@register
class XVertNetChain(Method):
    name = "xvertnet-chain"
    defaults = {"models": [], "iterations": None, "device": "auto", "tile": 512, "overlap": 64}

    def __init__(self, params: dict | None = None):
        super().__init__(params)
        from xvertnet.model.inference import Chain

        models = list(self.params["models"])[: self.params["iterations"]]
        if not models:
            raise XvertnetError("xvertnet: no model directories given (settings 'models')")
        self.chain = Chain(models, device=self.params["device"])

    def describe(self) -> dict:
        return self.chain.describe()

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return self.chain.run(image)

    def enhance_whole(self, image: np.ndarray) -> np.ndarray:
        return enhance_around_burned_in(
            image, lambda x: self.chain.run(x, tile=self.params["tile"], overlap=self.params["overlap"])
        )


class _TrainedChain(Method):
    """The chain trained on one image by :class:`XVertNetInternal` (not registered)."""

    name = "xvertnet-internal"

    def __init__(self, chain, tile: int, overlap: int):
        super().__init__({})
        self.chain, self.tile, self.overlap = chain, tile, overlap

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return self.chain.run(image)

    def enhance_whole(self, image: np.ndarray) -> np.ndarray:
        return enhance_around_burned_in(image, lambda x: self.chain.run(x, tile=self.tile, overlap=self.overlap))


@register
class XVertNetInternal(Method):
    name = "xvertnet-internal"
    #: ``train``: the flat `train` settings; ``prep``: the prep shard holding each image's own crops.
    defaults = {"train": {}, "iterations": 1, "prep": None, "device": "auto", "tile": 512, "overlap": 64}

    def __init__(self, params: dict | None = None):
        super().__init__(params)
        from xvertnet.model.training import TrainConfig

        if not self.params["prep"]:
            raise XvertnetError("xvertnet-internal: needs 'prep', the prep shard of the images it enhances")
        self.config = TrainConfig.from_config(self.params["train"])

    def describe(self) -> dict:
        return {"internal": self.config.to_dict(), "iterations": self.params["iterations"]}

    def enhance(self, image: np.ndarray) -> np.ndarray:
        raise XvertnetError("xvertnet-internal trains on each image: enhance through for_image(image_id)")

    def for_image(self, image_id: str) -> tuple[Method, dict]:
        from xvertnet.model.internal_learning import train_internal_chain

        with tempfile.TemporaryDirectory(prefix=f"xvertnet-internal-{image_id}-") as work_dir:
            chain, record = train_internal_chain(
                self.params["prep"],
                image_id,
                self.config,
                self.params["iterations"],
                work_dir,
                device=self.params["device"],
            )
        return _TrainedChain(chain, self.params["tile"], self.params["overlap"]), {"internal_training": record}
