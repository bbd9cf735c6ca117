"""Basin and stream configurations: S2's defaults, validation, and inheritance.

Configs are kept as the JSON objects S2's API takes (`BasinConfig`, `StreamConfig` in
openapi.json). A stream created in a basin inherits the fields it leaves unset from the basin's
`default_stream_config` (S2: lite/src/backend/read.rs `open_for_read`, "Unset fields inherit the
basin's default stream configuration").
"""

from __future__ import annotations

from typing import Any

from sidecar.errors import S2Error

DEFAULT_STREAM_CONFIG: dict[str, Any] = {
    "storage_class": "express",
    "retention_policy": {"age": 604800},  # S2: "If unspecified, the default is to retain records for 7 days"
    "timestamping": {"mode": "client-prefer", "uncapped": False},
    "delete_on_empty": {"min_age_secs": 0},
}
# S2's BasinConfig defaults: streams exist only once created (openapi.json `BasinConfig`).
DEFAULT_BASIN_CONFIG: dict[str, Any] = {
    "default_stream_config": None,
    "stream_cipher": None,  # no encryption unless the basin names a cipher (see encryption.py)
    "create_stream_on_append": False,
    "create_stream_on_read": False,
}
# A basin whose streams are created by the first append or read (`emulator --basin`).
AUTO_CREATE: dict[str, Any] = {"create_stream_on_append": True, "create_stream_on_read": True}
# A basin whose streams are created by the first append only: reading a stream nobody wrote is still
# 404 stream_not_found (the embedded emulator and the test harness, whose users and tests rely on it).
CREATE_ON_APPEND: dict[str, Any] = {"create_stream_on_append": True, "create_stream_on_read": False}

TIMESTAMPING_MODES = ("client-prefer", "client-require", "arrival")
STREAM_CIPHERS = ("aegis-256", "aes-256-gcm")  # S2: common/src/encryption.rs `EncryptionAlgorithm`
# The fields of S2's `StreamConfig`: serde ignores any other (a stream's `cipher` given on creation
# among them: it comes from the basin only), and so does the emulator.
STREAM_CONFIG_FIELDS = ("storage_class", "retention_policy", "timestamping", "delete_on_empty")
STORAGE_CLASSES = ("standard", "express")


def _bad_json(message: str) -> S2Error:
    # S2 deserializes configs with serde: a wrong type or an unknown enum value fails the JSON
    # extraction, which S2 answers `400 bad_json` (lite/src/handlers/v1/error.rs `JsonRejection`).
    return S2Error(400, "bad_json", message)


def _invalid(message: str) -> S2Error:
    # A value that parses but S2's config validation refuses (`ValidationError`): 422 invalid.
    return S2Error(422, "invalid", message)


def _object(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad_json(f"`{what}` must be an object or null")
    return value


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_stream_config(value: Any, what: str = "config") -> dict[str, Any] | None:
    """A `StreamConfig`'s fields as given (None fields kept), or S2's 400 / 422 for a value it would reject."""
    config = _object(value, what)
    if config is None:
        return None
    config = {k: v for k, v in config.items() if k in STREAM_CONFIG_FIELDS}
    # Any string: s2-lite keeps a storage class as given (api/src/v1/config.rs `storage_class:
    # Option<CompactString>`; 0.43.4 answers a PATCH to "glacier" with it); hosted S2 has two.
    if (sc := config.get("storage_class")) is not None and not isinstance(sc, str):
        raise _bad_json(f"`{what}.storage_class` must be a string, one of {', '.join(STORAGE_CLASSES)} in S2")
    if (rp := _object(config.get("retention_policy"), f"{what}.retention_policy")) is not None:
        if "age" in rp:
            if not _is_uint(rp["age"]):
                raise _bad_json(f"`{what}.retention_policy.age` must be an integer number of seconds")
            if rp["age"] == 0:
                raise _invalid(f"`{what}.retention_policy.age` must be greater than 0 seconds")
        elif "infinite" not in rp:
            raise _bad_json(f"`{what}.retention_policy` must have `age` or `infinite`")
    if (ts := _object(config.get("timestamping"), f"{what}.timestamping")) is not None:
        if (mode := ts.get("mode")) is not None and mode not in TIMESTAMPING_MODES:
            raise _bad_json(f"`{what}.timestamping.mode` must be one of {', '.join(TIMESTAMPING_MODES)}")
        if (uncapped := ts.get("uncapped")) is not None and not isinstance(uncapped, bool):
            raise _bad_json(f"`{what}.timestamping.uncapped` must be a boolean or null")
    doe = _object(config.get("delete_on_empty"), f"{what}.delete_on_empty") or {}
    if (age := doe.get("min_age_secs")) is not None and not _is_uint(age):
        raise _bad_json(f"`{what}.delete_on_empty.min_age_secs` must be a non-negative integer")
    return config


def check_basin_config(value: Any) -> dict[str, Any] | None:
    """A `BasinConfig` as given, or S2's 400 / 422 for a value it would reject."""
    config = _object(value, "config")
    if config is None:
        return None
    for flag in ("create_stream_on_append", "create_stream_on_read"):
        if (v := config.get(flag)) is not None and not isinstance(v, bool):
            raise _bad_json(f"`config.{flag}` must be a boolean")
    if (cipher := config.get("stream_cipher")) is not None and cipher not in STREAM_CIPHERS:
        # serde's words for an unknown enum value (s2-lite 0.43.4 answers them), case included.
        raise _bad_json(f"unknown variant `{cipher}`, expected `aegis-256` or `aes-256-gcm`")
    default = check_stream_config(config.get("default_stream_config"), "config.default_stream_config")
    return {**config, "default_stream_config": default} if "default_stream_config" in config else config


def canonical(value: Any) -> Any:
    """A config with unset fields (None, empty objects) left out, for comparing two configs as S2
    compares its resolved ones (lite/src/backend/streams.rs and basins.rs `provision_*`)."""
    if isinstance(value, dict):
        out = {k: canonical(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {}}
    return value


def _patch_object(current: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """Each field the patch names replaced, null clearing it (S2's `Maybe<Option<T>>`)."""
    out = dict(current or {})
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def reconfigure_stream_config(current: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """A stream config with a checked `StreamReconfiguration` applied: a field left out is kept,
    null resets it (to the basin's default, then S2's), `timestamping` and `delete_on_empty` are
    patched field by field, the rest replaced (S2: common/src/config.rs
    `OptionalStreamConfig::reconfigure`)."""
    out = dict(current or {})
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key in ("timestamping", "delete_on_empty"):
            out[key] = _patch_object(out.get(key), value)
        else:
            out[key] = value
    return out


def reconfigure_basin_config(current: dict[str, Any] | None, patch: Any) -> dict[str, Any]:
    """A basin config with a `BasinReconfiguration` applied, checked as S2 checks it (S2:
    common/src/config.rs `BasinConfig::reconfigure`): `default_stream_config` is patched as a
    stream's (null clears it), `stream_cipher` set or cleared, the two flags set (null is 400)."""
    body = _object(patch, "reconfiguration")
    if body is None:
        raise _bad_json("expected a JSON object")
    for flag in ("create_stream_on_append", "create_stream_on_read"):
        if flag in body and not isinstance(body[flag], bool):
            raise _bad_json(f"`{flag}` must be a boolean")
    checked = check_basin_config({k: v for k, v in body.items() if k != "default_stream_config"}) or {}
    out = dict(current or {})
    if "default_stream_config" in body:
        value = check_stream_config(body["default_stream_config"], "default_stream_config")
        out["default_stream_config"] = (
            None if value is None else reconfigure_stream_config(out.get("default_stream_config"), value)
        )
    for key in ("stream_cipher", "create_stream_on_append", "create_stream_on_read"):
        if key in body:
            out[key] = checked.get(key)
    return out


def inherit(config: dict[str, Any] | None, defaults: dict[str, Any] | None) -> dict[str, Any] | None:
    """`config` with the fields it leaves unset (None or missing) taken from `defaults`, one level deep."""
    if not defaults:
        return config
    out: dict[str, Any] = {k: v for k, v in defaults.items() if v is not None}
    for key, value in (config or {}).items():
        if value is None:
            continue
        base = out.get(key)
        if isinstance(value, dict) and isinstance(base, dict) and key != "retention_policy":
            out[key] = {**base, **{k: v for k, v in value.items() if v is not None}}
        else:
            out[key] = value
    return out


def stream_config_json(config: dict[str, Any] | None) -> dict[str, Any]:
    """A stream's full config as `GET /v1/streams/{stream}` shows it: S2's defaults filled in."""
    return inherit(config, DEFAULT_STREAM_CONFIG) or dict(DEFAULT_STREAM_CONFIG)


def basin_config_json(config: dict[str, Any] | None) -> dict[str, Any]:
    """A basin's full config as `GET /v1/basins/{basin}` shows it."""
    return {**DEFAULT_BASIN_CONFIG, **{k: v for k, v in (config or {}).items() if v is not None}}


def timestamping(config: dict[str, Any] | None) -> tuple[str, bool]:
    """(mode, uncapped) of a stream config, with S2's defaults (client-prefer, capped)."""
    ts = (config or {}).get("timestamping") or {}
    return ts.get("mode") or "client-prefer", bool(ts.get("uncapped"))


def retention_age(config: dict[str, Any] | None) -> int | None:
    """Retention age in seconds (S2's default 7 days), or None for infinite retention."""
    rp = (config or {}).get("retention_policy") or DEFAULT_STREAM_CONFIG["retention_policy"]
    age = rp.get("age")
    return age if _is_uint(age) else None
