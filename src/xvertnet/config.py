"""Workflow configuration: validation against the JSON schema, with defaults filled in.

The Snakefile calls :func:`validate_config` while it is parsed, so an invalid
configuration fails before any job runs, with a one-line message naming the key.
The package itself never reads Snakemake globals: stages get their settings as
arguments (see the ``*_settings`` helpers below, used by the rules).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from xvertnet.errors import ConfigError


def _extend_with_defaults(validator_class):
    """A validator that fills in ``default`` values of object properties while validating."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error) -> str:
    parts = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        else:
            parts.append(str(part))
    key = ".".join(parts)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        key = ".".join(filter(None, [key, extra[0] if extra else ""]))
        return key or "<top level>"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return ".".join(filter(None, [key, missing])) or "<top level>"
    return key or "<top level>"


def validate_config(config: dict, schema_path) -> dict:
    """Validate ``config`` in place against the YAML schema, filling in defaults; return it.

    Raises
    ------
    ConfigError
        Naming the first invalid key (dotted path), what was expected and what was found.
    """
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _extend_with_defaults(Draft202012Validator)(schema)
    _drop_null_entries(config)
    # Defaults of nested objects are filled when their parent default is applied, so run twice.
    for _ in range(2):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            if error.validator == "additionalProperties":
                raise ConfigError(_key_path(error), "unknown key (not in the schema)")
            raise ConfigError(_key_path(error), f"{error.message}")
    _check_consistency(config)
    _check_variants(config, schema, validator)
    return config


def _drop_null_entries(config: dict) -> None:
    """An XVertNet configuration or study variant set to null is left out: ``--configfile`` merges into
    config.yaml, so this is how a second config file drops config.yaml's entries."""
    sections = [config.get("xvertnet"), (config.get("study") or {}).get("variants")]
    for entries in sections:
        if isinstance(entries, dict):
            for name in [name for name, value in entries.items() if value is None]:
                del entries[name]


#: Keys of a variant that are not `train` settings: ``internal`` (train on each image it enhances),
#: ``models`` (a folder of trained iterations iter1, iter2, ... to use instead of training), and
#: ``before``/``then`` (untrained methods applied before / after it: :mod:`xvertnet.methods.composite`).
VARIANT_KEYS = ("internal", "models", "before", "then")
#: The model set shipped in the package (its MODEL_CARD.md beside it); config ``models: shipped``.
SHIPPED_MODELS = Path(__file__).resolve().parent / "models" / "xvertnet"


def _check_variants(config: dict, schema: dict, validator) -> None:
    """Every XVertNet configuration (`xvertnet`, `study.variants`) merged onto `train` must be a valid `train` section."""
    train_schema = schema["properties"]["train"]
    allowed = set(train_schema["properties"]) | set(VARIANT_KEYS)
    sections = [
        ("xvertnet", config.get("xvertnet", {})),
        ("study.variants", config.get("study", {}).get("variants", {})),
    ]
    for section, variants in sections:
        for name, overrides in variants.items():
            unknown = sorted(set(overrides) - allowed)
            if unknown:
                raise ConfigError(
                    f"{section}.{name}.{unknown[0]}",
                    "unknown key (a `train` key, `internal`, `models`, `before` or `then`)",
                )
            for key in ("before", "then"):
                _check_steps(f"{section}.{name}.{key}", overrides.get(key, []))
            if overrides.get("before") and overrides.get("internal", False):
                raise ConfigError(
                    f"{section}.{name}.before",
                    "internal learning trains on the image itself; `before` cannot change it",
                )
            internal = overrides.get("internal", False)
            if not isinstance(internal, bool):
                raise ConfigError(f"{section}.{name}.internal", f"must be true or false, got {internal!r}")
            models = overrides.get("models")
            if models is not None and (not isinstance(models, str) or internal):
                raise ConfigError(
                    f"{section}.{name}.models", "must be the path of a folder of trained iterations (and not internal)"
                )
            merged = {k: v for k, v in variant_settings(config, overrides).items() if k not in VARIANT_KEYS}
            errors = sorted(
                validator.evolve(schema=train_schema).iter_errors(merged), key=lambda e: list(e.absolute_path)
            )
            if errors:
                raise ConfigError(f"{section}.{name}.{_key_path(errors[0])}", errors[0].message)


def _check_steps(key: str, steps) -> None:
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        raise ConfigError(key, f"must be a list of method names, got {steps!r}")
    from xvertnet.method_catalogue import composable  # not the registry: planning does not import torch

    refused = [step for step in steps if not composable(step)]
    if refused:
        raise ConfigError(
            key,
            f"{refused} cannot be composed: only registered methods that need no training (e.g. clahe, farbman, preprocessed)",
        )


def variant_settings(config: dict, overrides: dict) -> dict:
    """A variant's full `train` settings (and `internal`): the `train` section with its overrides."""
    merged = {**config["train"], **overrides}
    merged.setdefault("internal", False)
    merged.setdefault("models", None)
    merged.setdefault("before", [])
    merged.setdefault("then", [])
    return merged


#: Folders of results/ that are not data sets (a run's outputs, benchmarks): no data set may take these names.
RESERVED_RESULT_FOLDERS = ("runs", "models", "enhanced", "metrics", "tables", "figures", "study", "benchmarks")


def _check_consistency(config: dict) -> None:
    """Rules between keys that a schema cannot express."""
    names = [entry["name"] for entry in config.get("datasets", [])]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ConfigError("datasets", f"duplicate data set names {duplicated}")
    taken = sorted(set(names) & set(RESERVED_RESULT_FOLDERS))
    if taken:
        raise ConfigError(
            "datasets", f"{taken} name folders of results/ that runs write; name the data set differently"
        )
    if "baselines" in (config.get("xvertnet") or {}):
        raise ConfigError(
            "xvertnet.baselines",
            "'baselines' is the folder of the trained baselines' models; name the entry differently",
        )
    roi = config.get("roi", {})
    if roi:
        if roi["upper_fraction"] >= roi["lower_fraction"]:
            raise ConfigError(
                "roi.upper_fraction",
                f"must be below roi.lower_fraction ({roi['lower_fraction']}), got {roi['upper_fraction']}",
            )
        for key in ("train_size", "eval_size"):
            if roi[key][0] > roi["canonical_height"]:
                raise ConfigError(
                    f"roi.{key}", f"height {roi[key][0]} exceeds roi.canonical_height {roi['canonical_height']}"
                )
    views = [view["name"] for view in config.get("demo", {}).get("views", [])]
    if len(set(views)) != len(views):
        raise ConfigError("demo.views", f"view names must be unique, got {views}")


def load_config(path, schema_path) -> dict:
    """Read a YAML config file and validate it."""
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError("<file>", f"{path} is not valid YAML: {error}") from None
    return validate_config(config, schema_path)
