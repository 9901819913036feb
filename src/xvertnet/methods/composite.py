"""Composites a user could assemble anyway: methods applied before and after another method.

An XVertNet configuration (``xvertnet`` entry or study variant) with ``before: [clahe]`` sees
CLAHE's output instead of the image; one with ``then: [clahe]`` has CLAHE applied to its
output (the design study's "the network after CLAHE, CLAHE after the network"). Only methods that need
no training can be composed (CLAHE, Farbman, the preprocessing alone, ...), each with its own
config section's settings. The trained models do not change, so such a configuration shares
the model set of the one without ``before``/``then``.
"""

from __future__ import annotations

import numpy as np

from xvertnet.errors import XvertnetError
from xvertnet.method_catalogue import composable
from xvertnet.methods import Method, all_methods, get_method

#: The keys of a composite's steps in a method's settings (``xvertnet.plan.Plan.enhance_method``).
STEP_KEYS = ("before", "then")


class Composite(Method):
    """``before`` steps, then ``inner``, then ``then`` steps, on ROIs and whole images alike."""

    name = "composite"  # not registered: built around another method by :func:`compose`

    def __init__(self, inner: Method, before: list[Method], then: list[Method]):
        self.inner, self.before, self.then = inner, before, then
        self.name = inner.name  # what the enhanced shard records as the method kind; describe() adds the steps
        self.params = {}
        self.whole_images = inner.whole_images

    def enhance(self, image: np.ndarray) -> np.ndarray:
        for step in self.before:
            image = step(image)
        image = self.inner(image)
        for step in self.then:
            image = step(image)
        return image

    def enhance_whole(self, image: np.ndarray) -> np.ndarray:
        for step in self.before:
            image = np.clip(step.enhance_whole(image), 0.0, 1.0)
        image = np.clip(self.inner.enhance_whole(image), 0.0, 1.0)
        for step in self.then:
            image = np.clip(step.enhance_whole(image), 0.0, 1.0)
        return image

    def for_image(self, image_id: str):
        fitted, extra = self.inner.for_image(image_id)
        return (self if fitted is self.inner else Composite(fitted, self.before, self.then)), extra

    def describe(self) -> dict:
        return {
            "before": [{step.name: step.describe()} for step in self.before],
            "method": self.inner.describe(),
            "then": [{step.name: step.describe()} for step in self.then],
        }


def _steps(specs: list[dict]) -> list[Method]:
    steps = []
    for spec in specs:
        if not composable(spec["method"]):
            raise XvertnetError(
                f"'{spec['method']}' cannot be composed: only methods that need no training "
                f"({', '.join(sorted(name for name in all_methods() if composable(name)))})"
            )
        steps.append(get_method(spec["method"], spec.get("settings", {})))
    return steps


def compose(inner: Method, settings: dict) -> Method:
    """``inner`` wrapped in the steps of ``settings`` (``before``/``then``: lists of {method, settings}); as is without them."""
    before, then = _steps(settings.get("before", [])), _steps(settings.get("then", []))
    return Composite(inner, before, then) if before or then else inner


def split_steps(settings: dict) -> tuple[dict, dict]:
    """(the method's own settings, the composite's steps) of an ``enhance-shard --settings`` object."""
    own = {key: value for key, value in settings.items() if key not in STEP_KEYS}
    return own, {key: settings[key] for key in STEP_KEYS if key in settings}
