"""The error every plan-time check raises: a config value to fix, named by its key."""


class ConfigError(Exception):
    pass
