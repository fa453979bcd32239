"""Exception types. Each carries one readable message naming the culprit and what was expected."""


class SentscaleError(Exception):
    """Base class: anything the user can fix by changing input, config or environment."""


class DataError(SentscaleError):
    """A data folder/file is missing or malformed (message names file, line and expectation)."""


class ConfigError(SentscaleError):
    """A configuration value is invalid (message names the key and what was expected)."""


class ModelError(SentscaleError):
    """A model is unknown, missing, corrupt, or needs hardware that is not available."""


class EmbeddingError(ModelError, ValueError):
    """A model produced unusable embeddings (NaN/inf): names the model, batch and sentence."""
