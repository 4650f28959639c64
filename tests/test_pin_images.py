"""synth.pin_images resolves every unpinned image of a stack file at its registry and writes
name:tag@sha256 in place, all or nothing.

The registry here is a fake that keeps the rules the real ones enforce (OCI distribution spec,
"Pulling manifests"; Docker registry token authentication): a manifest request without a bearer
token for that repository is refused with 401 and a WWW-Authenticate challenge naming the token
realm, service and scope; the token endpoint hands out a token for exactly the scope asked; the
index digest is served only to a client that accepts index media types (otherwise the registry
falls back to one platform's manifest); the digest is the sha256 of the manifest bytes."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synth import pin_images
from tests.conftest import ROOT

INDEX = "application/vnd.oci.image.index.v1+json"


def manifest(repository: str, tag: str, kind: str) -> bytes:
    return json.dumps({"mediaType": kind, "repository": repository, "tag": tag}).encode()


class Registry(BaseHTTPRequestHandler):
    tags: dict[tuple[str, str, str], bool] = {}  # (registry, repository, tag) -> sends Docker-Content-Digest
    seen: list[tuple[str, str]] = []
    authorizations: list[str | None] = []

    def log_message(self, *args):  # quiet
        pass

    redirect: str | None = None  # answer every manifest request with 307 to this base URL

    def _manifest(self, send_body: bool) -> None:
        if self.redirect:
            self.send_response(307)
            self.send_header("Location", f"{self.redirect}{self.path}")
            self.end_headers()
            return
        registry, _, rest = self.path.lstrip("/").partition("/")
        repository, _, tag = rest.removeprefix("v2/").rpartition("/manifests/")
        self.seen.append((self.command, f"{registry}/{repository}:{tag}"))
        self.authorizations.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer token-for-{repository}":
            self.send_response(401)
            host, port = self.server.server_address[:2]
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host!s}:{port}/token",'
                                                 f'service="{registry}",scope="repository:{repository}:pull"')
            self.end_headers()
            return
        if (registry, repository, tag) not in self.tags:
            self.send_response(404)
            self.end_headers()
            return
        kind = INDEX if INDEX in self.headers.get("Accept", "") else "application/vnd.oci.image.manifest.v1+json"
        body = manifest(repository, tag, kind)
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if self.tags[(registry, repository, tag)]:
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._manifest(send_body=False)

    def do_GET(self):
        if self.path.startswith("/token?"):
            from urllib.parse import parse_qs, urlparse

            query = parse_qs(urlparse(self.path).query)
            repository = query["scope"][0].removeprefix("repository:").removesuffix(":pull")
            body = json.dumps({"token": f"token-for-{repository}"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._manifest(send_body=True)


@pytest.fixture
def registry():
    Registry.tags, Registry.seen, Registry.authorizations, Registry.redirect = {}, [], [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    yield functools.partial(pin_images.resolve, base_url=lambda r: f"http://127.0.0.1:{port}/{r}")
    server.shutdown()


def index_digest(repository: str, tag: str) -> str:
    return "sha256:" + hashlib.sha256(manifest(repository, tag, INDEX)).hexdigest()


PROD_IMAGES = {  # what Pulumi.prod.yaml names unpinned, where each registry lives
    ("registry-1.docker.io", "alpine/k8s", "1.33.4"),
    ("registry-1.docker.io", "oliver006/redis_exporter", "v1.67.0"),
    ("public.ecr.aws", "lambda/python", "3.12.2025.11.20.14"),
    ("cr.fluentbit.io", "fluent/fluent-bit", "3.1.9"),
}


@pytest.mark.parametrize("image,expected", [
    ("redis:7.4.2-bookworm", ("registry-1.docker.io", "library/redis", "7.4.2-bookworm")),
    ("oliver006/redis_exporter:v1.67.0", ("registry-1.docker.io", "oliver006/redis_exporter", "v1.67.0")),
    ("cr.fluentbit.io/fluent/fluent-bit:3.1.9", ("cr.fluentbit.io", "fluent/fluent-bit", "3.1.9")),
    ("localhost:5000/team/app:1.0", ("localhost:5000", "team/app", "1.0")),
    # Docker Hub's other spellings (distribution/reference normalize.go)
    ("docker.io/redis:7", ("registry-1.docker.io", "library/redis", "7")),
    ("index.docker.io/oliver006/redis_exporter:v1", ("registry-1.docker.io", "oliver006/redis_exporter", "v1")),
])
def test_references_follow_dockers_rules(image, expected):
    assert pin_images.Reference.parse(image) == pin_images.Reference(*expected)


def test_the_prod_stack_file_is_pinned_in_place_with_index_digests(registry, tmp_path):
    Registry.tags = {key: True for key in PROD_IMAGES}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    shutil.copy(ROOT / "Pulumi.prod.yaml", stack_file)
    before = pin_images.image_settings("prod", stack_file)

    pinned = pin_images.pin("prod", stack_file, write=True, resolver=registry)

    after = pin_images.image_settings("prod", stack_file)
    assert set(pinned) == {k for k, v in before.items() if "@" not in v} and len(pinned) == 4
    for key, image in after.items():
        name, _, digest = image.partition("@")
        assert name == before[key].partition("@")[0]  # the tag stays beside the digest
        if key in pinned:
            ref = pin_images.Reference.parse(name)
            assert digest == index_digest(ref.repository, ref.tag)  # the multi-platform digest
        else:
            assert image == before[key]  # already pinned: untouched
    # every manifest request was retried with a token for its own repository after the 401
    assert len(Registry.seen) == 2 * len(pinned)
    # only the values changed: comments and layout stay for the reviewer
    original = (ROOT / "Pulumi.prod.yaml").read_text().splitlines()
    written = stack_file.read_text().splitlines()
    assert len(original) == len(written) and sum(a != b for a, b in zip(original, written, strict=True)) == len(pinned)


def test_a_registry_without_a_digest_header_is_hashed_from_the_manifest_bytes(registry):
    Registry.tags = {("registry-1.docker.io", "library/redis", "7.4.2-bookworm"): False}
    assert registry("redis:7.4.2-bookworm") == index_digest("library/redis", "7.4.2-bookworm")
    assert [m for m, _ in Registry.seen] == ["HEAD", "HEAD", "GET"]


def test_one_image_that_cannot_be_resolved_leaves_the_file_unchanged(registry, tmp_path, monkeypatch, capsys):
    Registry.tags = {key: True for key in PROD_IMAGES if key[1] != "fluent/fluent-bit"}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    shutil.copy(ROOT / "Pulumi.prod.yaml", stack_file)
    monkeypatch.setattr(pin_images, "resolve", registry)
    code = pin_images.main(["--stack", "prod", "--stack-file", str(stack_file), "--write"])
    err = capsys.readouterr().err
    assert code == 1 and "cr.fluentbit.io/fluent/fluent-bit:3.1.9" in err and "HTTP 404" in err, err
    assert stack_file.read_text() == (ROOT / "Pulumi.prod.yaml").read_text()


def test_a_redirect_keeps_head_and_never_carries_a_token_to_another_host(registry, monkeypatch):
    """urllib follows a 307 as GET with every header (HTTPRedirectHandler.redirect_request): a GET
    counts as a pull on Docker Hub, and a token for one host must not reach another."""
    class Front(Registry):
        redirect = None

    Registry.tags = {("registry-1.docker.io", "library/redis", "7.4.2-bookworm"): True}
    front = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    try:
        behind = registry.keywords["base_url"]("x").removesuffix("/x")
        Front.redirect = behind
        digest = pin_images.resolve("redis:7.4.2-bookworm", base_url=lambda r: f"http://127.0.0.1:{front.server_address[1]}/{r}")
    finally:
        front.shutdown()
    assert digest == index_digest("library/redis", "7.4.2-bookworm")
    assert [m for m, _ in Registry.seen] == ["HEAD", "HEAD"]  # still HEAD after the redirect
    assert Registry.authorizations == [None, "Bearer token-for-library/redis"]  # the token only where it was asked


@pytest.mark.parametrize("edit,words", [
    ("duplicate", "two settings with the same image"),
    ("quoted", "a quoted value"),
    ("comment", "a comment naming the image"),
])
def test_the_rewrite_touches_exactly_the_values_it_pins(registry, tmp_path, edit, words):
    Registry.tags = {key: True for key in {*PROD_IMAGES, ("registry-1.docker.io", "library/redis", "7.4.2-bookworm")}}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    # the real file with its Redis pin taken off again: an unpinned official image beside the others
    text = re.sub(r"image: redis:\S+", "image: redis:7.4.2-bookworm", (ROOT / "Pulumi.prod.yaml").read_text())
    redis = "image: redis:7.4.2-bookworm"
    assert text.count(redis) == 1
    text = {"duplicate": text.replace("kubectlImage: alpine/k8s:1.33.4", "kubectlImage: redis:7.4.2-bookworm"),
            "quoted": text.replace(redis, 'image: "redis:7.4.2-bookworm"'),
            "comment": text.replace(redis, f"{redis}  # was redis:7.4.2-bookworm before"),
            }[edit]
    stack_file.write_text(text)
    pinned = pin_images.pin("prod", stack_file, write=True, resolver=registry)
    after = pin_images.image_settings("prod", stack_file)
    assert all(after[k] == v for k, v in pinned.items()), words
    written = stack_file.read_text()
    if edit == "comment":
        assert "# was redis:7.4.2-bookworm before" in written  # the comment is not a value
    if edit == "quoted":
        assert f'image: "redis:7.4.2-bookworm@{index_digest("library/redis", "7.4.2-bookworm")}"' in written
    changed = sum(a != b for a, b in zip(text.splitlines(), written.splitlines(), strict=True))
    assert changed == len(pinned) == 5  # one line per pinned key, the comment's line only at its value


# Index digests as docker-library/repo-info records them (repos/<image>/remote/<tag>.md, "docker
# pull <image>@sha256:..." under the tag's heading, Manifest MIME application/vnd.oci.image.index.v1+json),
# read on 2026-12-06 - the newest patch of each line listed there (issue 24 item 10).
REPO_INFO = {
    "redis:7.4.11-bookworm": ("sha256:c6eabf748fc7a61dbb5a705c78bcf3d6377b1127a97d0ce965c11c44ba46896f",
                              "repos/redis/remote/7.4.11-bookworm.md"),
    "neo4j:5.26.31-enterprise": ("sha256:1a0fc10992bce3d046d1fe1e6999771d33b73dde2af1c5e0eb3e2f6fd54429f5",
                                 "repos/neo4j/remote/5.26.31-enterprise.md"),
}


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_official_images_are_pinned_by_their_published_index_digests(stack):
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    images = pin_images.image_settings(stack, stack_file)
    text = stack_file.read_text()
    for key in ("redis.image", "neo4j.image"):
        name, _, digest = images[key].partition("@")
        ref = pin_images.Reference.parse(name)  # the tool's own reading: name:tag, no digest in it
        assert ref.registry == pin_images.DOCKER_HUB and ref.repository.startswith("library/")
        assert pin_images.DIGEST.match(digest), key
        assert REPO_INFO[name][0] == digest, f"{key}: {name} is not the digest repo-info publishes"
        # the source and the date stand beside the pin, for the reviewer of the next change
        before = text[:text.index(images[key])].splitlines()[-3:]
        assert any(REPO_INFO[name][1] in line for line in before) and any("2026-12-06" in line for line in before)
