"""The project's error family: every message names the file or key, what was
expected and what was found, on one line."""


class XvertnetError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidValueError(XvertnetError, ValueError):
    """A setting, argument or input value outside its domain (the message says which and why).

    Also a ``ValueError``: code that catches ``ValueError`` around such a check keeps working,
    and the command line reports it as one line like every :class:`XvertnetError`.
    """


class InputFileError(XvertnetError):
    """An input file cannot be used (missing, unreadable, not the expected kind); the message names it."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, always
        super().__init__(f"{self.path}: {self.reason}")


class InputImageError(InputFileError):
    """An input image cannot be used; the message names the file and the reason."""


class ConfigError(XvertnetError):
    """The workflow configuration is invalid; the message names the key."""

    def __init__(self, key, reason):
        self.key = key
        self.reason = " ".join(str(reason).split())
        super().__init__(f"config key '{key}': {self.reason}")


class MissingDependencyError(XvertnetError):
    """An optional package or data file is not installed; the message says how to get it."""


class DiskFullError(XvertnetError):
    """An output did not fit on its file system (no space left, or over quota); nothing partial is left."""

    def __init__(self, path, reason="no space left on device", detail=""):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" + (f" {detail}" if detail else ""))
