"""python -m synth.pin_images --stack <s> [--write]: pin every image of a stack file by digest.

Each image setting (a settings field of type Image) that has a tag and no digest is resolved at its
registry with the OCI distribution API: ``HEAD /v2/<repository>/manifests/<tag>``, accepting image
indexes first (the multi-platform digest, what ``docker buildx imagetools inspect`` prints), with
the anonymous bearer-token exchange a registry asks for in ``WWW-Authenticate`` (distribution spec,
"Pulling manifests"; Docker registry token authentication). The digest is the registry's
``Docker-Content-Digest``, or the sha256 of the manifest bytes when a registry sends none.

Every image is resolved before anything is written: one that cannot be resolved stops the run with
its error, and the stack file is left as it was (exit 1). ``--write`` then puts
``name:tag@sha256:<digest>`` in place of each value (the tag stays for people; a runtime pulls by
the digest) and checks that the file still validates. Needs the registries: run it where they are
reachable, review the diff, and set ``k8s-image-digest`` mandatory in policy/config/<stack>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})


class _Redirect(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect as GET and keeps every header: keep the method (a Docker Hub GET
    counts as a pull, a HEAD does not) and never carry a registry's token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.method = req.get_method()
            if urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
                new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_Redirect)


class PinError(Exception):
    pass


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, image: str) -> "Reference":
        """Docker's reference rules: the first component is a registry only when it has a '.' or
        ':' or is 'localhost'; Docker Hub's official images live under 'library/'."""
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag or "@" in image:
            raise PinError(f"{image!r}: expected name:tag without a digest")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, name
        if registry in DOCKER_HUB_NAMES:  # distribution/reference normalize.go: one registry, three spellings
            registry = DOCKER_HUB
            if "/" not in repository:
                repository = f"library/{repository}"
        return cls(registry, repository, tag)


Opener = Callable[[urllib.request.Request], Any]


def resolve(image: str, base_url: Callable[[str], str] = lambda r: f"https://{r}",
            opener: Optional[Opener] = None) -> str:
    """The digest ``image`` (name:tag) names now, at its registry."""
    open_ = opener or (lambda request: _OPENER.open(request, timeout=30))
    ref = Reference.parse(image)
    url = f"{base_url(ref.registry)}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": ACCEPT}
    for attempt in ("anonymous", "token"):
        try:
            with open_(urllib.request.Request(url, headers=headers, method="HEAD")) as response:
                digest = response.headers.get("Docker-Content-Digest")
            if not digest:  # the content digest is the sha256 of the exact manifest bytes
                with open_(urllib.request.Request(url, headers=headers)) as response:
                    digest = "sha256:" + hashlib.sha256(response.read()).hexdigest()
            if not DIGEST.match(digest):
                raise PinError(f"{image}: the registry answered digest {digest!r}, not sha256:<64 hex>")
            return digest
        except urllib.error.HTTPError as error:
            challenge = error.headers.get("WWW-Authenticate", "") if error.headers else ""
            if error.code != 401 or attempt == "token" or not challenge.lower().startswith("bearer "):
                raise PinError(f"{image}: {url} answered HTTP {error.code}") from None
            url = error.url or url  # the host that asked (after any redirect) is the one to answer
            headers = {**headers, "Authorization": f"Bearer {_token(image, challenge, open_)}"}
        except urllib.error.URLError as error:
            raise PinError(f"{image}: {url} unreachable ({error.reason})") from None
    raise AssertionError("unreachable")


def _token(image: str, challenge: str, open_: Opener) -> str:
    params = {k: quoted or bare for k, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', challenge)}
    realm = params.pop("realm", None)
    if not realm:
        raise PinError(f"{image}: the registry's bearer challenge names no realm: {challenge!r}")
    parts = urllib.parse.urlsplit(realm)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), *params.items()])
    try:
        with open_(urllib.request.Request(urllib.parse.urlunsplit(parts._replace(query=query)))) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, ValueError) as error:
        raise PinError(f"{image}: no token from {realm} ({error})") from None
    token = body.get("token") or body.get("access_token")
    if not token:
        raise PinError(f"{image}: {realm} answered no token")
    return token


def image_settings(stack: str, stack_file: Path) -> dict[str, str]:
    """Every image setting of the stack file: dotted camelCase key -> value."""
    import settings
    from settings.values import _image
    from synth import engine

    validated = settings.validate(engine.stack_config(stack, stack_file))
    found: dict[str, str] = {}

    def walk(model: Any, prefix: str) -> None:
        for field, info in type(model).model_fields.items():
            value = getattr(model, field)
            key = f"{prefix}{info.alias or field}"
            if any(getattr(m, "func", None) is _image for m in info.metadata):
                found[key] = value
            elif isinstance(value, settings.Model):
                walk(value, f"{key}.")

    walk(validated, "")
    return found


def pin(stack: str, stack_file: Path, write: bool, resolver: Optional[Callable[[str], str]] = None) -> dict[str, str]:
    """key -> pinned image for every image without a digest; writes only when all resolved, and
    puts the file back if the written one does not hold them."""
    resolver = resolver or resolve
    pinned = {key: f"{image}@{resolver(image)}" for key, image in image_settings(stack, stack_file).items()
              if "@" not in image}
    if write and pinned:
        original = stack_file.read_text()
        _write(stack_file, _splice(original, stack_file, pinned))
        try:
            after = image_settings(stack, stack_file)
        except Exception:
            _write(stack_file, original)
            raise
        wrong = [k for k, v in pinned.items() if after.get(k) != v]
        if wrong:
            _write(stack_file, original)
            raise PinError(f"after writing, these settings would not hold their pins: {wrong}")
    return pinned


def _splice(text: str, stack_file: Path, values: dict[str, str]) -> str:
    """``text`` with the scalar of each dotted key replaced where YAML has it (by position, in the
    value's own quoting): comments, layout, other keys holding the same string stay as they are."""
    import yaml

    from settings import PROJECT

    root = yaml.compose(text)
    spans = []
    for key, value in values.items():
        first, *rest = key.split(".")
        node = _child(_child(root, "config"), f"{PROJECT}:{first}")
        for part in rest:
            node = _child(node, part)
        if not isinstance(node, yaml.ScalarNode) or node.start_mark is None or node.end_mark is None:
            raise PinError(f"{key}: not a plain value in {stack_file}")
        quote = node.style if node.style in ("'", '"') else ""
        spans.append((node.start_mark.index, node.end_mark.index, f"{quote}{value}{quote}"))
    for start, end, replacement in sorted(spans, reverse=True):  # from the end: earlier offsets hold
        text = text[:start] + replacement + text[end:]
    return text


def _child(node: Any, key: str) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    raise PinError(f"no key {key!r} where the stack file should have it")


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a reader never sees half a stack file."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(text)
    os.replace(part, path)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.pin_images", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--stack-file", type=Path)
    parser.add_argument("--write", action="store_true", help="write the pins into the stack file")
    args = parser.parse_args(argv)
    stack_file = args.stack_file or Path(__file__).resolve().parent.parent / f"Pulumi.{args.stack}.yaml"
    try:
        pinned = pin(args.stack, stack_file, args.write)
    except PinError as error:
        print(f"pin_images: {error}; {stack_file} is unchanged", file=sys.stderr)
        return 1
    for key, image in pinned.items():
        print(f"{key}: {image}")
    print(f"{len(pinned)} images {'pinned in' if args.write else 'to pin in'} {stack_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
