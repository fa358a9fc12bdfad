"""Settings: defaults < user config file < CURATOR_* environment < CLI flags, as one frozen
dataclass."""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from indexing.embedders.defaults import DEFAULT_MODELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """User-level defaults; every field can be overridden per command by a flag.

    Attributes:
        workers: worker processes for probing and decoding (0 = in-process; None = per core).
        annotator: the name recorded on labels (default: the OS user).
        model: the default image/video model string.
        audio_model: the default audio model string.
        device: auto, cpu, cuda or mps.
        batch_size: inference batch size.
        offline: never try the network for model weights.
    """

    workers: Optional[int] = None
    annotator: str = ""
    model: str = DEFAULT_MODELS["image"]
    audio_model: str = DEFAULT_MODELS["audio"]
    device: str = "auto"
    batch_size: int = 64
    offline: bool = False

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given non-None values replaced (CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})

    @property
    def annotator_name(self) -> str:
        if self.annotator:
            return self.annotator
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


def config_path() -> Path:
    """The user config file (TOML): $CURATOR_CONFIG, else the platform's config folder."""
    env = os.environ.get("CURATOR_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("curator")) / "config.toml"


def _coerce(field_type: Any, raw: Any, name: str) -> Any:
    text = str(raw).strip()
    kind = str(field_type)
    if "bool" in kind:
        if text.lower() in {"1", "true", "yes", "on"}:
            return True
        if text.lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"{name}: expected true or false, got {raw!r}")
    if "int" in kind:
        if text.lower() in {"", "none", "auto"} and "Optional" in kind:
            return None
        try:
            return int(text)
        except ValueError as exc:
            raise ValueError(f"{name}: expected a whole number, got {raw!r}") from exc
    return text


def load_settings(environ: Optional[dict[str, str]] = None) -> Settings:
    """Defaults, then the config file, then CURATOR_* variables; bad values are logged, skipped."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(Settings)}
    path = config_path()
    if path.exists():
        try:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
            for key, raw in data.items():
                if key in types:
                    values[key] = _coerce(types[key], raw, f"{path}: {key}")
                else:
                    log.warning("%s: unknown setting %r ignored", path, key)
        except (OSError, ValueError) as exc:
            log.warning("config file %s ignored: %s", path, exc)
    for name, kind in types.items():
        env_name = f"CURATOR_{name.upper()}"
        if env_name in environ:
            try:
                values[name] = _coerce(kind, environ[env_name], env_name)
            except ValueError as exc:
                log.warning("%s ignored", exc)
    return Settings(**validated(values))


# Bounds the flags enforce (click.IntRange), applied alike to the config file and environment.
_MINIMUM = {"workers": 0, "batch_size": 1}


def validated(values: dict[str, Any]) -> dict[str, Any]:
    """Settings values with the out-of-range ones dropped, each with a warning (hostile).

    `workers` must be 0 or more (the pool caps it near the number of cores, with a warning);
    `batch_size` 1 or more.
    """
    out = dict(values)
    for name, low in _MINIMUM.items():
        value = out.get(name)
        if value is not None and value < low:
            log.warning("setting %s = %r ignored: it must be %d or more", name, value, low)
            del out[name]
    return out
