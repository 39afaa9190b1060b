"""The config Snakemake would see for `--configfile F... --config K=V...`, read without
Snakemake (`python -m aftbench validate` and `cost` take the same flags). Checking it is
aftbench.config.check's work."""

from __future__ import annotations

from aftbench.core.schema import ConfigError


def _merge(base: dict, update: dict) -> dict:
    """Snakemake's merge of config files and --config values: mappings merge key by key."""
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(configfiles: list[str], overrides: list[str]) -> dict:
    """The config Snakemake would see for `--configfile F... --config K=V...`: the files merged in
    order, then each K=V (V read as YAML, as Snakemake does). Raises ConfigError naming the culprit."""
    import yaml

    cfg: dict = {}
    for path in configfiles:
        try:
            text = open(path).read()
        except OSError as err:
            raise ConfigError(
                f"{path}: cannot read it ({err.strerror}); run from the project folder or pass --configfile FILE"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]} ...)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
        cfg = _merge(cfg, data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--config {item!r}: expected KEY=VALUE, as Snakemake takes it (a config file goes "
                f"with --configfile FILE)"
            )
        cfg = _merge(cfg, {key: yaml.safe_load(value) if value else value})
    return cfg
