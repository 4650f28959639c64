"""Run the real Pulumi program under Pulumi's mock engine and record what it registers.

This is the same entry point `pulumi up` uses (``run_in_stack`` around ``__main__.py``), with the
stack's own ``Pulumi.<stack>.yaml`` as configuration; only the engine is replaced by a recording
mock monitor. Each run gets a fresh context and a fresh event loop, so runs never leak into each
other (tests run the program many times in one process).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import pulumi
import yaml
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import register_stack_transformation, run_in_stack

from synth.mocks import Invoke, PlatformMocks

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "intelgraph-platform"
STACK_TYPE = "pulumi:pulumi:Stack"
# Packages whose resources must name an explicit provider (the stacks disable default providers).
EXPLICIT_PROVIDER_PACKAGES = ("aws", "kubernetes")


@dataclass
class Resource:
    """One registered resource, as `pulumi stack export` would list it."""

    urn: str
    type: str
    name: str
    custom: bool
    id: Optional[str] = None
    parent: Optional[str] = None
    provider: Optional[str] = None
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)
    # Resource options the engine keeps in the checkpoint (`pulumi stack export` shows them).
    protect: bool = False
    retain_on_delete: bool = False
    aliases: list[str] = field(default_factory=list)
    # Not in the checkpoint, but it decides what the engine checks (helpers/redis_auth.py's witnesses).
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)


@dataclass
class Synthesis:
    stack: str
    resources: list[Resource]
    warnings: list[str] = field(default_factory=list)
    invokes: list[Invoke] = field(default_factory=list)  # every function call the program made

    @property
    def root(self) -> Resource:
        return next(r for r in self.resources if r.type == STACK_TYPE)

    @property
    def outputs(self) -> dict:
        return self.root.outputs

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: Optional[str] = None) -> Resource:
        found = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        if len(found) != 1:
            raise KeyError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]

    def children_of(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping every registration in order with its full request."""

    def __init__(self, mocks: PlatformMocks):
        super().__init__(mocks)
        self.platform = mocks
        self.records: list[Resource] = []
        self._by_urn: dict[str, Resource] = {}
        self._lock = threading.Lock()
        # called with each resource once recorded (synth starts its Helm renders from there)
        self.listeners: list[Callable[[Resource], None]] = []
        # called with (type, name, props) the moment the program constructs a resource, before its
        # registration waits for anything it depends on (synth starts Helm renders from there too)
        self.constructing: list[Callable[[str, str, Mapping[str, Any]], None]] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine builds it (pkg/resource/urn.go NewURN with the parent's QualifiedType): the
        # parent's whole type chain, then the type - "A$B$c::name" for c under B under A - leaving
        # out the root stack. The SDK's mock keeps only the parent's last type, so a component
        # nested in another would get a URN the engine never gives it.
        chain = parent.split("::")[2] if parent else STACK_TYPE
        qualified = type_ if chain == STACK_TYPE else f"{chain}${type_}"
        return super().make_urn("", qualified, name)

    def RegisterResource(self, request):
        if (
            request.custom
            and request.type.split(":")[0] in EXPLICIT_PROVIDER_PACKAGES
            and not request.provider
        ):
            raise ValueError(
                f"{request.type} {request.name!r} has no explicit provider; pass the regional "
                "aws.Provider or the Kubernetes provider through opts (default providers are "
                "disabled in every stack)"
            )
        response = super().RegisterResource(request)
        record = Resource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            provider=request.provider or None,
            dependencies=list(request.dependencies),
            property_dependencies={
                key: list(deps.urns) for key, deps in request.propertyDependencies.items()
            },
            secret_outputs=list(request.additionalSecretOutputs),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            aliases=self._alias_urns(request),
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
        )
        if request.type != STACK_TYPE:
            record.inputs = _numbers(rpc.deserialize_properties(request.object))
            registration = self.resources[response.urn]
            record.id = registration.id if request.custom else None
            record.outputs = _numbers(registration.state)
        with self._lock:
            if record.urn in self._by_urn:
                # the engine refuses this too: two resources may not share type and name
                raise ValueError(f"duplicate resource URN {record.urn}; give one of them another name")
            self.records.append(record)
            self._by_urn[record.urn] = record
        for listener in self.listeners:
            listener(record)
        return response

    def _alias_urns(self, request) -> list[str]:
        """The URNs a resource's aliases stand for, resolved as the engine does: a spec's missing
        name, type or parent are the resource's own, and a child inherits every alias of its parent
        (the same child under the parent's old URN)."""
        own = [(request.name, request.type, request.parent)]
        urns = list(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                urns.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            own.append((spec.name or request.name, spec.type or request.type, parent))
            urns.append(self.make_urn(parent, own[-1][1], own[-1][0]))
        with self._lock:
            parent_record = self._by_urn.get(request.parent)
        for parent_alias in parent_record.aliases if parent_record else ():
            urns.extend(self.make_urn(parent_alias, type_, name) for name, type_, _ in own)
        return sorted(set(urns))

    def RegisterResourceOutputs(self, request):
        outputs = _numbers(rpc.deserialize_properties(request.outputs))
        with self._lock:
            record = self._by_urn.get(request.urn)
            if record is not None:
                record.outputs = outputs
        return super().RegisterResourceOutputs(request)


def _numbers(value: Any) -> Any:
    """The engine protocol carries every number as a double; show whole numbers as integers,
    as `pulumi stack export` does (400, not 400.0). An unknown value (preview) is the engine's
    sentinel, as the engine sends it to a policy pack."""
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def stack_config(stack: str, path: Optional[Path] = None) -> dict[str, str]:
    """``Pulumi.<stack>.yaml`` (or ``path``) as the engine hands it to a program: values as text."""
    path = path or ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path}; known stacks: {', '.join(known_stacks())}")
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise ValueError(f"{path}: expected a mapping with a 'config:' mapping")
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in (document.get("config") or {}).items()
    }


def known_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))


Program = Union[Path, Callable[[], Any]]


def synthesize(
    stack: str,
    config: Optional[dict[str, str]] = None,
    program: Program = ROOT / "__main__.py",
    monitor: Optional[RecordingMonitor] = None,
    preview: bool = False,
) -> Synthesis:
    """Run ``program`` for ``stack`` under the mock engine; return every registered resource.

    ``program`` is the project's ``__main__.py`` or any callable (component tests pass one).
    ``config`` replaces the stack file's config (tests use it to try bad values); ``monitor``
    lets a caller inspect what was registered even when the program raises. Exceptions raised
    by the program (for example ``settings.SettingsError``) propagate. ``preview`` runs it as a
    new stack's first ``pulumi preview``: dry run, every provider-computed output unknown.
    """
    if config is None:
        config = stack_config(stack)
    monitor = monitor or new_monitor(config, preview)
    context = contextvars.copy_context()
    return context.run(_synthesize, stack, config, program, monitor, preview)


def new_monitor(config: dict[str, str], preview: bool = False) -> RecordingMonitor:
    aws_section = _decode_section(config.get(f"{PROJECT}:aws"))
    return RecordingMonitor(PlatformMocks(
        account_id=str(aws_section.get("accountId", "000000000000")),
        default_region=str(aws_section.get("primaryRegion", "us-east-1")),
        preview=preview,
    ))


class _Warnings(logging.Handler):
    """Collects what the program says with pulumi.log.warn (the engine's warnings)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _synthesize(stack: str, config: dict[str, str], program: Program,
                monitor: RecordingMonitor, preview: bool = False) -> Synthesis:
    warnings = _Warnings()
    engine_log = logging.getLogger(f"synth.engine.{id(warnings)}")
    engine_log.propagate = False
    engine_log.addHandler(warnings)
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_quiet_about_reraised)
    asyncio.set_event_loop(loop)
    try:
        set_all_config(dict(config), [])
        pulumi_settings.ROOT.set(None)
        pulumi_settings.configure(
            pulumi_mocks.MockSettings(
                monitor=monitor,
                monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
                engine=pulumi_mocks.MockEngine(engine_log),
                project=PROJECT,
                stack=stack,
                dry_run=preview,
                organization="organization",
                callbacks=None,
            )
        )
        # the SDK keeps the pending Outputs in one set shared by every run in the process (the first
        # run's becomes its ContextVar default); a run that failed leaves its own there, bound to its
        # closed loop: start from none, as the SDK's own test harness does (pulumi/runtime/mocks.py)
        pulumi_settings.SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]  # a contextproperty
        if isinstance(program, Path):
            path = program
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            program = lambda: runpy.run_path(str(path), run_name="__main__")  # noqa: E731
        loop.run_until_complete(run_in_stack(_settled(program, monitor.constructing)))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        engine_log.removeHandler(warnings)
    return Synthesis(stack=stack, resources=list(monitor.records), warnings=warnings.messages,
                     invokes=list(monitor.platform.invokes))


def _settled(program: Callable[[], Any],
             constructing: Sequence[Callable[[str, str, Mapping[str, Any]], None]] = ()) -> Callable[[], Any]:
    """``program``, then every registration it started awaited to the end, before the SDK's
    ``wait_for_rpcs`` takes over. That loop (pulumi/runtime/stack.py) starts by awaiting the
    RPCs already running - none yet: ``do_rpc`` records an RPC only once its task first runs - and
    then waits for *every* pending Output with ``asyncio.wait(FIRST_COMPLETED)``, re-arming a
    callback on each of them per event-loop round; with thousands of resource outputs pending
    while chains of registrations complete one round at a time, that polling cost more than the
    registrations themselves (issue 24 item 11). Awaiting each registration in turn, as the SDK's
    first phase does, reaches the same end: the same registrations in the same order of
    dependencies; a failed one ends the wait here and the SDK's loop raises it, as before.

    ``constructing`` listeners see each resource as the program constructs it: a stack
    transformation (pulumi/resource.py runs them synchronously in ``Resource.__init__``) that
    returns None, so it changes nothing the engine receives."""
    async def run() -> None:
        manager = pulumi_settings._get_rpc_manager()
        if constructing:
            def observe(args: pulumi.ResourceTransformationArgs) -> None:
                for listener in constructing:
                    listener(args.type_, args.name, args.props)

            register_stack_transformation(observe)
        result = program()
        if inspect.isawaitable(result):
            await result
        while True:
            await asyncio.sleep(0)  # let the registrations just scheduled start (and be recorded)
            running = [call for call in manager.rpcs if isinstance(call, asyncio.Future) and not call.done()]
            if not running:
                return
            for call in running:
                try:
                    await call
                except Exception:  # noqa: BLE001 - wait_for_rpcs raises it, as it always did
                    return

    return run


def _quiet_about_reraised(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """When a program fails, its error is raised to the caller; the SDK's sibling futures that
    carry the same error are never awaited. Do not print them again as 'never retrieved'."""
    if "never retrieved" in context.get("message", ""):
        return
    loop.default_exception_handler(context)


def _decode_section(raw: Optional[str]) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
