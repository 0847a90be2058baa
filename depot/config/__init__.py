"""Stack settings: domain types, one model per concern, and the loader that validates them."""

from depot.config.loader import ConfigError, RawConfig, load_settings
from depot.config.settings import DepotSettings

__all__ = ["ConfigError", "DepotSettings", "RawConfig", "load_settings"]
