"""The Pulumi engine's side of the analyzer protocol: launches the policy pack exactly as the
engine does and talks to it over gRPC, so the contract test compares synth's verdict with the
pack's own answers. Sources (pulumi/pulumi):

* sdk/go/common/resource/plugin/analyzer_plugin.go: NewPolicyAnalyzer runs the pack with the pack
  directory as working directory and its `venv` (PulumiPolicy.yaml `virtualenv`), i.e.
  `python -u -m pulumi.policy <engine address> .`; constructEnv sets PULUMI_CONFIG (the stack
  config as JSON), PULUMI_PROJECT, PULUMI_STACK, PULUMI_DRY_RUN; the gRPC port is the first line
  the pack prints. Analyze and AnalyzeStack marshal properties with KeepUnknowns and KeepSecrets
  (secrets travel decrypted, `{sig: secret, value: ...}`), as a protobuf Struct (numbers are
  doubles); AnalyzeStack adds parent, dependencies and property dependencies.
* pkg/resource/analyzer/config.go: ReconcilePolicyPackConfig - every policy's level and schema
  defaults, then the pack's initial config, then the file: "all" sets a level only, a policy's
  entry its level and settings; each policy's settings validated against its schema (with
  `enforcementLevel` injected), any error stops the run; Configure refuses an entry without a
  valid level (a misspelt policy name given settings only).
* pkg/resource/deploy/step_generator.go: Analyze per resource on its inputs; AnalyzeStack once on
  every resource's outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2, engine_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policy"
PROJECT = "intelgraph-platform"
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
CANT_RUN = "during preview: "


class Refused(Exception):
    """The engine stops the run before any policy runs (an invalid pack config)."""


@dataclass
class EngineVerdict:
    violations: set = field(default_factory=set)  # (policy, level, urn or None, message)
    undecided: set = field(default_factory=set)  # (policy, urn or None, message)
    not_applicable: set = field(default_factory=set)  # (policy, urn, reason)
    logs: list = field(default_factory=list)

    @property
    def fails(self) -> bool:
        return any(level == "mandatory" for _, level, _, _ in self.violations)


class _Engine(engine_pb2_grpc.EngineServicer):
    """The engine service a pack logs to (`pulumi.log` in a pack goes here)."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request, context):
        self.logs.append(request.message)
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        return engine_pb2.GetRootResourceResponse()

    def SetRootResource(self, request, context):
        return engine_pb2.SetRootResourceResponse()


def _wire(value: Any) -> Any:
    """Checkpoint JSON -> what the engine marshals: secrets decrypted into `value`."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            assert "plaintext" in value, "the engine decrypts secrets; give the test a --show-secrets export"
            return {SIG_KEY: SECRET_SIG, "value": _wire(json.loads(value["plaintext"]))}
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _struct(props: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(props))
    return struct


def _level(value: int) -> str:
    return analyzer_pb2.EnforcementLevel.Name(value).lower()


class PolicyPackProcess:
    """One run of the pack, as one `pulumi preview`/`up` starts it."""

    def __init__(self, stack: str, stack_config: dict[str, str], dry_run: bool = False,
                 pack_dir: Path = POLICY_DIR):
        self.pack_dir = pack_dir
        python = pack_dir / "venv" / "bin" / "python"
        assert python.exists(), f"{python} is missing; ./dev creates the pack's venv (policy/requirements.txt)"
        self._engine = _Engine()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self._engine, self._server)
        engine_port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "PULUMI_CONFIG": json.dumps(stack_config), "PULUMI_PROJECT": PROJECT, "PULUMI_STACK": stack,
               "PULUMI_DRY_RUN": "true" if dry_run else "false"}
        self._process = subprocess.Popen(
            [str(python), "-u", "-m", "pulumi.policy", f"127.0.0.1:{engine_port}", "."],
            cwd=pack_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = self._process.stdout.readline().decode().strip()
        assert first.isdigit(), f"the pack did not print its port: {first!r} {self._process.stderr.read().decode()}"
        self._channel = grpc.insecure_channel(f"127.0.0.1:{first}")
        self.analyzer = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        self.info = self.analyzer.GetAnalyzerInfo(empty_pb2.Empty())

    def close(self) -> None:
        self._channel.close()
        self._process.kill()
        self._process.wait(timeout=10)
        self._server.stop(0)

    def __enter__(self) -> "PolicyPackProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the engine's config handling (config.go) ------------------------------------------------

    def reconcile(self, config: dict[str, Any]) -> dict[str, tuple[str, dict]]:
        result: dict[str, tuple[str, dict]] = {}
        schemas: dict[str, dict] = {}
        for policy in self.info.policies:
            properties = json_format.MessageToDict(policy.configSchema.properties)
            defaults = {k: v["default"] for k, v in properties.items() if "default" in v}
            result[policy.name] = (_level(policy.enforcementLevel), defaults)
            schemas[policy.name] = {
                "type": "object",
                "properties": {**properties, "enforcementLevel": {"type": "string", "enum": list(LEVELS)}},
                **({"required": list(policy.configSchema.required)} if policy.configSchema.required else {}),
            }
        initial = {k: (_level(v.enforcementLevel), json_format.MessageToDict(v.properties))
                   for k, v in self.info.initialConfig.items()}
        parsed = {}
        for name, value in config.items():
            if isinstance(value, str):
                if value not in LEVELS:
                    raise Refused(f"parsing enforcement level for {name!r}: {value!r} is not a valid enforcement level")
                parsed[name] = (value, {})
            elif isinstance(value, dict):
                props = dict(value)
                level = props.pop("enforcementLevel", None)
                if level is not None and level not in LEVELS:
                    raise Refused(f"parsing enforcement level for {name!r}: {level!r} is not a valid enforcement level")
                if level is None and not props:
                    continue
                parsed[name] = (level, props)
            else:
                raise Refused(f"parsing {name!r}: {value!r} is not a valid value; must be a string or object")
        for layer in (initial, parsed):
            if layer.get("all", (None,))[0]:
                result = {k: (layer["all"][0], props) for k, (_, props) in result.items()}
            for name, (level, props) in layer.items():
                old_level, old_props = result.get(name, (None, {}))
                result[name] = (level or old_level, {**old_props, **props})
        # gojsonschema, like draft 7, takes 7.0 (a default back from the pack) as an integer
        errors = [f"{name}: {error.message}" for name, schema in schemas.items()
                  for error in jsonschema.Draft7Validator(schema).iter_errors(result[name][1])]
        if errors:
            raise Refused("; ".join(errors))
        invalid = [name for name, (level, _) in result.items() if level not in LEVELS]
        if invalid:
            raise Refused(f"invalid enforcement level for {invalid}")
        return result

    def configure(self, config: dict[str, Any]) -> None:
        reconciled = self.reconcile(config)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, props) in reconciled.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value(level.upper())
            entry.properties.update(props)
        self.analyzer.Configure(request)

    # -- one run ---------------------------------------------------------------------------------

    def run(self, export: dict, config: dict[str, Any]) -> EngineVerdict:
        self.configure(config)
        entries = export["deployment"]["resources"]
        by_urn = {e["urn"]: e for e in entries}
        verdict = EngineVerdict()
        for entry in entries:
            response = self.analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
                urn=entry["urn"], type=entry["type"], name=_name(entry["urn"]),
                properties=_struct(entry.get("inputs") or {}), options=_options(entry),
                provider=_provider(entry, by_urn)))
            self._collect(response, verdict, entry["urn"])
        response = self.analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(
                urn=e["urn"], type=e["type"], name=_name(e["urn"]), properties=_struct(e.get("outputs") or {}),
                options=_options(e), provider=_provider(e, by_urn), parent=e.get("parent", ""),
                dependencies=e.get("dependencies", []),
                propertyDependencies={k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v)
                                      for k, v in (e.get("propertyDependencies") or {}).items() if v})
            for e in entries]))
        self._collect(response, verdict, None)
        verdict.logs = list(self._engine.logs)
        return verdict

    @staticmethod
    def _collect(response, verdict: EngineVerdict, urn: Optional[str]) -> None:
        for d in response.diagnostics:
            if d.message.startswith(f"can't run policy '{d.policyName}'"):
                verdict.undecided.add((d.policyName, urn, d.message.split(CANT_RUN, 1)[1]))
                continue
            message = d.message.removeprefix(d.description).removeprefix("\n")
            verdict.violations.add((d.policyName, _level(d.enforcementLevel), d.urn or urn or None, message))
        for n in response.not_applicable:
            verdict.not_applicable.add((n.policy_name, urn, n.reason))


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _options(entry: dict) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(protect=bool(entry.get("protect")), parent=entry.get("parent", ""))


def _provider(entry: dict, by_urn: dict) -> Optional[analyzer_pb2.AnalyzerProviderResource]:
    ref = entry.get("provider")
    provider = by_urn.get(ref.rsplit("::", 1)[0]) if ref else None
    if provider is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(urn=provider["urn"], type=provider["type"], name=_name(provider["urn"]),
                                                 properties=_struct(provider.get("inputs") or {}))
