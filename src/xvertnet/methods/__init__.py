"""Every enhancement method behind one interface (a registry keyed by name).

Every method maps a float image in [0, 1] (bone bright) to an enhanced image of the same
shape in [0, 1]. Learned baselines are trained once (:meth:`Method.fit`) into a model
folder and loaded from it; the others need no training. Adding a method is one module that
defines a :class:`Method` subclass decorated with :func:`register` (and its name in
``MODULE_OF``); its parameters are its config section ``baselines.<name>``.

Registered: ``xvertnet-chain`` (the trained chain of iterations, :mod:`.xvertnet`),
``xvertnet-internal`` (internal learning on each image), ``original`` (the identity, so the
metrics stage treats the unprocessed ROI like any method), ``clahe``, ``farbman``,
``zerodce``, ``zssr``, ``madmad``, ``preprocessed`` (XVertNet's Eqs. 1-5 without the
network, an ablation for the design study), ``lut-mapping`` (the GE seed's interpretable
pixel-wise LUT mapping, :mod:`xvertnet.methods.lut_mapping.model`) and ``lut-mapping-bone`` (the same model trained
toward the bone-emphasised CT targets) and ``led`` (the LED seed's CycleGAN degradation model and
conditional diffusion enhancer), ``srcnn``, ``vdsr`` and ``vdsr-dehaze`` (the super-resolution seed's
networks, and its VDSR-then-iterative-dehazing pipeline).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from xvertnet.errors import InvalidValueError, XvertnetError

#: Each method's module in this package. A job imports only the module of the method it runs (most import torch,
#: about 1.5 s a process); ``REGISTRY`` imports them all. ``tests/methods/test_methods.py`` checks this map.
MODULE_OF = {
    "xvertnet-chain": "xvertnet",
    "xvertnet-internal": "xvertnet",
    "original": "identity",
    "clahe": "clahe",
    "farbman": "farbman",
    "zerodce": "zerodce",
    "zssr": "zssr",
    "madmad": "madmad",
    "preprocessed": "preprocessed",
    "lut-mapping": "lut_mapping.method",
    "lut-mapping-bone": "lut_mapping.method",
    "led": "led.method",
    "srcnn": "super_resolution.method",
    "vdsr": "super_resolution.method",
    "vdsr-dehaze": "super_resolution.method",
}
_REGISTERED: dict[str, type[Method]] = {}


class Method:
    """A comparison method. Subclasses set ``name``, ``defaults`` and implement :meth:`enhance`."""

    name: str = ""
    #: Needs :meth:`fit` before :meth:`enhance` (a model folder in the workflow).
    trainable: bool = False
    #: Trained on the project's training crops (False: on data of its own, e.g. synthetic).
    uses_training_crops: bool = True
    #: Trained on (crop, target) pairs: the name of the target array in the data shards (None: crops alone).
    training_target: str | None = None
    #: Splits whose images :meth:`training_data` reads (what the model's record names as seen in training).
    training_splits: tuple[str, ...] = ("train",)
    #: Worth running on whole canonical images (False where it costs too much, e.g. per-image training).
    whole_images: bool = True
    #: Parameters and their defaults; a method's config section overrides them.
    defaults: dict = {}

    def __init__(self, params: dict | None = None):
        unknown = sorted(set(params or {}) - set(self.defaults))
        if unknown:
            raise XvertnetError(f"{self.name}: unknown parameters {unknown}, expected some of {sorted(self.defaults)}")
        self.params = {**self.defaults, **(params or {})}

    def training_data(self, shards, manifests: dict | None = None):
        """What :meth:`fit` trains on, from the data shards (and the data sets' manifests, ``{dataset: path}``, for
        methods that need the images' conditions): the training crops, or (crop, target) pairs."""
        return training_crops(shards, target=self.training_target)

    def fit(self, crops: list[np.ndarray], out_dir: Path) -> dict:  # pragma: no cover - overridden by learned methods
        raise NotImplementedError(f"{self.name} is not trained")

    def load(self, model_dir: Path) -> None:  # pragma: no cover - overridden by learned methods
        raise NotImplementedError(f"{self.name} has no model to load")

    def enhance(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the enhanced shard records about the method (its parameters; models' hashes for learned ones)."""
        return self.params

    def enhance_whole(self, image: np.ndarray) -> np.ndarray:
        """A whole canonical image (methods that tile large images override this)."""
        return self(image)

    def for_image(self, image_id: str) -> tuple[Method, dict]:
        """The method to apply to ``image_id`` and attributes to store with it (internal learning trains here)."""
        return self, {}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise InvalidValueError(f"{self.name}: expected a 2-D image, got shape {image.shape}")
        result = np.asarray(self.enhance(image), dtype=np.float32)
        if result.shape != image.shape:
            raise ValueError(f"{self.name}: output shape {result.shape} differs from input {image.shape}")
        return np.clip(result, 0.0, 1.0)


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in _REGISTERED:
        raise ValueError(f"method name '{cls.name}' is empty or taken")
    _REGISTERED[cls.name] = cls
    return cls


def all_methods() -> dict[str, type[Method]]:
    """Every registered method by name (every method module imported)."""
    for module in dict.fromkeys(MODULE_OF.values()):
        importlib.import_module(f"{__name__}.{module}")
    return _REGISTERED


def __getattr__(name: str):
    if name == "REGISTRY":  # every method; its modules are imported on first use
        return all_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_method(name: str, params: dict | None = None) -> Method:
    """An instance of the registered method ``name`` with ``params`` over its defaults (only its module imported)."""
    if name not in _REGISTERED and name in MODULE_OF:
        importlib.import_module(f"{__name__}.{MODULE_OF[name]}")
    if name not in _REGISTERED:
        raise XvertnetError(f"unknown method '{name}', expected one of {sorted(all_methods())}")
    return _REGISTERED[name](params)


def training_crops(shards, *, rois=None, split: str = "train", target: str | None = None) -> list:
    """The original training crops (``X``) of ``split`` in data shards: what XVertNet trains on. With ``target``
    (an array name such as ``B``, the bone-emphasised target), ``(X, target)`` pairs of the crops that have one."""
    from xvertnet.io.shard_store import TRAIN_ROIS, iter_items

    rois = rois or TRAIN_ROIS
    crops = []
    for shard in shards:
        for _, arrays, attrs in iter_items(shard, names=None):
            if attrs.get("split") != split:
                continue
            for roi in rois:
                if f"{roi}/X" not in arrays:
                    continue
                if target is None:
                    crops.append(arrays[f"{roi}/X"])
                elif f"{roi}/{target}" in arrays:
                    crops.append((arrays[f"{roi}/X"], arrays[f"{roi}/{target}"]))
    return crops
