"""From a stack's raw config to ``StackSettings``: Pulumi's text decoded, keys of namespaces nothing reads
refused, and every problem named by its full key path, the value given and what is allowed (``SettingsError``)."""

from __future__ import annotations

import json
from typing import Any, Optional

from pulumi.errors import RunError
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from settings.stack import StackSettings
from settings.values import PROJECT, Problems


class SettingsError(RunError):
    """Stack configuration is invalid. ``problems`` lists one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _decode(raw: str) -> Any:
    # Pulumi hands structured config to the program as JSON text; scalars stay strings and
    # pydantic converts them ("3" -> 3), so "123456789012" never turns into a number by accident.
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _allowed_keys(loc: tuple) -> list[str]:
    """The aliases allowed at the parent of ``loc`` (for 'unknown key' messages)."""
    model: Any = StackSettings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # a list index: the list's item model was reached in the step before
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = next(
            (f for name, f in model.model_fields.items() if f.alias == part or name == part),
            None,
        )
        if field is None:
            return []
        annotation = field.annotation
        # unwrap Optional[...] and list[...] to reach the model
        for _ in range(3):
            args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                break
            annotation = args[0] if args else annotation
        model = annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or n for n, f in model.model_fields.items())
    return []


def _describe(error: ErrorDetails) -> list[str]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    raised = (error.get("ctx") or {}).get("error")
    if isinstance(raised, Problems):  # a validator of several fields names each bad key itself
        return [f"{PROJECT}:" + ".".join(map(str, (*loc, key))) + f": {message} (given: {json.dumps(given, default=str)})"
                for key, message, given in raised.items]
    return [_describe_one(error, loc)]


def _describe_one(error: ErrorDetails, loc: tuple) -> str:
    key = f"{PROJECT}:" + ".".join(str(p) for p in loc) if loc else f"{PROJECT}:<stack>"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return f"{key}: unknown key; allowed keys here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (given: {json.dumps(error.get('input'), default=str)})"


# The config namespaces something reads besides the project's: the engine's own (`pulumi:`, e.g.
# disable-default-providers) and those of the provider packages in requirements.txt (a test holds the
# two together). A key in any other namespace - a misspelt project prefix - is read by nothing.
PROVIDER_NAMESPACES = ("aws", "kubernetes", "random")
ENGINE_NAMESPACE = "pulumi"


def _foreign_keys(raw_config: dict[str, str]) -> list[str]:
    from difflib import get_close_matches

    known = (PROJECT, ENGINE_NAMESPACE, *PROVIDER_NAMESPACES)
    problems = []
    for key in sorted(raw_config):
        namespace, colon, name = key.partition(":")
        if colon and namespace in known:
            continue
        guess = get_close_matches(namespace, known, n=1)
        problems.append(f"{key}: {'unknown config namespace ' + repr(namespace) if colon else 'no namespace'}, so "
                        f"nothing reads it; allowed: {PROJECT} (this project), {ENGINE_NAMESPACE} (the engine), "
                        f"{', '.join(PROVIDER_NAMESPACES)} (providers)"
                        + (f"; did you mean {guess[0]}:{name or key}?" if guess else ""))
    return problems


def validate(raw_config: dict[str, str], stack: Optional[str] = None) -> StackSettings:
    """Validate the project namespace of a stack's config (``{"project:key": "text"}``) and refuse keys
    of namespaces nothing reads; with the ``stack``'s name, also what depends on it (bucket names)."""
    prefix = f"{PROJECT}:"
    foreign = _foreign_keys(raw_config)
    document = {
        key[len(prefix):]: _decode(value)
        for key, value in raw_config.items()
        if key.startswith(prefix)
    }
    if stack is not None:
        from components.backup_bucket import NAME_PART

        if not NAME_PART.fullmatch(stack):
            # not a config key, but config cannot fix it: the stack's name goes into bucket names
            raise SettingsError([f"stack name {stack!r}: S3 bucket names hold it; use lowercase letters, "
                                 "digits and '-' (a letter or digit first and last), e.g. 'prod-eu'"])
    try:
        validated = StackSettings.model_validate(document, context={"stack": stack})
    except ValidationError as exc:
        raise SettingsError(foreign + [line for e in exc.errors() for line in _describe(e)]) from None
    if foreign:
        raise SettingsError(foreign)
    return validated


def load() -> StackSettings:
    """Read and validate this stack's configuration from the Pulumi runtime."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # pulumi.Config can only look keys up one at a time; to reject unknown keys we need them
    # all: the engine passes them in PULUMI_CONFIG, the mock engine through set_all_config.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return validate(everything, stack=pulumi.get_stack())
