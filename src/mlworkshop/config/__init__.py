"""Config: the typed model and its YAML file."""

from .loader import CONFIG_FILE, ConfigError, get_key, load_config, set_key, set_keys, to_yaml
from .model import MLWorkshopConfig

__all__ = [
    "CONFIG_FILE",
    "ConfigError",
    "MLWorkshopConfig",
    "get_key",
    "load_config",
    "set_key",
    "set_keys",
    "to_yaml",
]
