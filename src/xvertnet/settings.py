"""One way from a config section to a stage's settings object, and back to the record kept with its outputs.

Every stage's settings are a frozen dataclass that mixes in :class:`FromConfig`. The
workflow passes a stage its config section as JSON (``--settings``); the stage builds its
settings with :meth:`FromConfig.from_config`, and writes :meth:`FromConfig.record` with its
outputs. The defaults of the dataclasses equal the schema's (``workflow/schemas/
config.schema.yaml``; ``tests/test_settings.py`` checks every one), so a user calling a
stage without a config gets what the workflow would run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from xvertnet.errors import ConfigError


class FromConfig:
    """Mixin of a settings dataclass built from one config section.

    ``SECTION`` names the section; ``ALIASES`` maps config keys to field names where they
    differ (``lambda`` is a Python keyword); ``ELSEWHERE`` lists keys of the same section
    that another stage's settings read (so they are not "unknown" here).
    """

    SECTION: ClassVar[str] = ""
    ALIASES: ClassVar[dict[str, str]] = {}
    ELSEWHERE: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        """Config key -> field name, for every field this class reads from its section."""
        fields = {field.name for field in dataclasses.fields(cls)}
        renamed = {field: key for key, field in cls.ALIASES.items()}
        return {renamed.get(name, name): name for name in fields}

    @classmethod
    def from_config(cls, section: dict | None):
        """The settings of ``section`` (missing keys: the defaults); unknown keys are refused."""
        section = dict(section or {})
        keys = cls.config_keys()
        unknown = sorted(set(section) - set(keys) - set(cls.ELSEWHERE))
        if unknown:
            raise ConfigError(
                f"{cls.SECTION}.{unknown[0]}", f"unknown key for {cls.__name__} (known: {', '.join(sorted(keys))})"
            )
        defaults = {field.name: field for field in dataclasses.fields(cls)}
        values = {}
        for key, name in keys.items():
            if key in section:
                values[name] = _like_default(section[key], defaults[name])
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(cls.SECTION or cls.__name__, str(error)) from None

    def record(self) -> dict:
        """The settings as config keys and JSON values: what outputs record and rules compare."""
        keys = {name: key for key, name in self.config_keys().items()}
        return {keys[field.name]: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}


def _like_default(value: Any, field: dataclasses.Field) -> Any:
    """JSON lists become tuples where the field's default is a tuple (sizes, names)."""
    default = field.default if field.default is not dataclasses.MISSING else None
    if isinstance(value, list) and isinstance(default, tuple):
        return tuple(value)
    return value


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def load_settings(text: str | None) -> dict:
    """The ``--settings`` option of every subcommand: a JSON object, or ``@file`` (JSON or YAML)."""
    if not text:
        return {}
    if text.startswith("@"):
        import yaml

        path = Path(text[1:])
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as error:
            raise ConfigError("--settings", f"cannot read {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError("--settings", f"{path} is not valid JSON/YAML: {str(error).splitlines()[0]}") from None
    else:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError("--settings", f"not a JSON object: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("--settings", f"expected a JSON object, got {type(loaded).__name__}")
    return loaded


def add_settings_argument(parser, section: str) -> None:
    """The ``--settings`` option every stage takes: its config section as JSON, or @file."""
    parser.add_argument(
        "--settings",
        help=f"config section '{section}' as a JSON object, or @file.yaml (default: the schema's defaults)",
    )
