"""What planning needs to know about each registered method, without importing the methods (nor torch with them).

The registry (:mod:`xvertnet.methods`) imports every method's module, and most import torch: two to
three seconds before Snakemake can even build its DAG. Planning needs only each method's name and
three traits, listed here; ``tests/test_config.py`` checks that they equal the registry's classes.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MethodTraits:
    """:class:`xvertnet.methods.Method`'s class attributes the planner reads."""

    trainable: bool = False
    uses_training_crops: bool = True
    whole_images: bool = True


CATALOGUE: dict[str, MethodTraits] = {
    "clahe": MethodTraits(),
    "farbman": MethodTraits(),
    "led": MethodTraits(trainable=True),
    "lut-mapping": MethodTraits(trainable=True),
    "lut-mapping-bone": MethodTraits(trainable=True),
    "madmad": MethodTraits(trainable=True, uses_training_crops=False),
    "original": MethodTraits(),
    "preprocessed": MethodTraits(),
    "srcnn": MethodTraits(trainable=True),
    "vdsr": MethodTraits(trainable=True),
    "vdsr-dehaze": MethodTraits(trainable=True),
    "xvertnet-chain": MethodTraits(),
    "xvertnet-internal": MethodTraits(),
    "zerodce": MethodTraits(trainable=True),
    "zssr": MethodTraits(),
}


def composable(name: str) -> bool:
    """Whether ``name`` can be a composite's step: a registered method that needs no training and no per-image state."""
    known = CATALOGUE.get(name)
    return known is not None and not known.trainable and not name.startswith("xvertnet")
