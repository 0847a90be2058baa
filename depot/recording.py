"""Run the real program under the Pulumi SDK's mocks and record every registration in full.

The stock ``MockMonitor`` hands ``Mocks.new_resource`` only type, name and inputs: it drops the
resource options (protect, retainOnDelete, deleteBeforeReplace, dependencies) and does not mark
``additionalSecretOutputs`` secret the way the engine does. ``RecordingMonitor`` keeps the whole
``RegisterResourceRequest`` and honours ``additionalSecretOutputs``, so what is recorded is what
the engine would see: inputs keyed by engine property names (camelCase), secrets still marked.
"""

from __future__ import annotations

import base64
import gc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from depot.config.loader import RawConfig
from depot.resource_types import (
    BUILD,
    COMMAND,
    RANDOM_BYTES,
    RANDOM_PASSWORD,
    REMOTE_IMAGE,
    STACK,
)

PROJECT = "depot"


@dataclass(frozen=True)
class Secret:
    """A value the engine would hold encrypted."""

    value: Any


class Unknown:
    """A value not known until the resource exists (only in previews)."""

    def __repr__(self) -> str:
        return "Unknown"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Registration:
    """One ``RegisterResource`` call as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    additional_secret_outputs: tuple[str, ...]
    replace_on_changes: tuple[str, ...] = ()
    import_id: str = ""  # the ID of an existing resource the engine would import, not create


@dataclass
class Recording:
    """Everything one run of the program registered."""

    stack: str
    registrations: list[Registration] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Registration:
        """The single registration called ``name`` (of ``type_``, when names repeat)."""
        found = [
            r for r in self.registrations if r.name == name and (type_ is None or r.type == type_)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} registrations named {name!r} (type {type_})")
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)


def decode(value: Any) -> Any:
    """Wire-format property value → Python, keeping secrets and unknowns visible."""
    if isinstance(value, dict):
        return _decode_object(value)
    if isinstance(value, list):
        return [decode(item) for item in value]
    if value == rpc.UNKNOWN:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf's Struct has only doubles; the engine shows integers
    return value


def _decode_object(value: dict[str, Any]) -> Any:
    signature = value.get(rpc._special_sig_key)
    if signature == rpc._special_secret_sig:
        return Secret(decode(value.get("value")))
    if signature == rpc._special_resource_sig:
        return value.get("urn")
    return {key: decode(item) for key, item in value.items()}


class DepotMocks(pulumi.runtime.Mocks):
    """Deterministic stand-ins for what the providers compute (IDs, digests, passwords)."""

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        # Computed values say what they stand for, and change whenever the inputs they are
        # computed from change, so a diff of two plans carries a rebuild through to containers.
        # A build's digest depends on what is built, not on how it is tagged or where it goes.
        content = {k: v for k, v in args.inputs.items() if k not in {"tags", "registries", "push"}}
        token = hashlib.sha256(f"{args.typ}/{args.name}/{sorted(content.items())}".encode())
        fingerprint = token.hexdigest()[:12]
        if args.typ == RANDOM_PASSWORD:
            # A replaced password (other length, other rules) is another password.
            outputs["result"] = f"generated-{token.hexdigest()[:24]}"
        elif args.typ == RANDOM_BYTES:
            # Stands for the bytes drawn once and kept in state: the same on every run.
            drawn = hashlib.sha256(token.digest()).digest()[: int(args.inputs.get("length", 0))]
            outputs["base64"] = base64.b64encode(drawn).decode("ascii")
            outputs["hex"] = drawn.hex()
        elif args.typ == BUILD:
            outputs["digest"] = f"sha256:{token.hexdigest()}"  # stands for the pushed content
            tag = (args.inputs.get("tags") or [""])[0]
            outputs["ref"] = f"{tag}@{outputs['digest']}" if args.inputs.get("push") else tag
        elif args.typ == REMOTE_IMAGE:
            outputs["imageId"] = f"(image id of {args.inputs.get('name')} {fingerprint})"
            outputs["repoDigest"] = f"(repo digest of {args.inputs.get('name')} {fingerprint})"
        elif args.typ == COMMAND:
            # What psql and grafana's CLI print when they took the password: nothing on stdout.
            outputs["stdout"] = ""
            outputs["stderr"] = ""
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(mocks.MockMonitor):
    """A ``MockMonitor`` that keeps every request whole (see module docstring)."""

    def __init__(self, recording: Recording, stand_ins: DepotMocks | None = None) -> None:
        super().__init__(stand_ins or DepotMocks())
        self.recording = recording

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK:
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        wire = json_format.MessageToDict(request.object)
        self.recording.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent,
                custom=request.custom,
                provider=request.provider,
                inputs=decode(wire),
                protect=request.protect,
                retain_on_delete=request.retainOnDelete,
                delete_before_replace=request.deleteBeforeReplace,
                dependencies=tuple(request.dependencies),
                property_dependencies={
                    key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                replace_on_changes=tuple(request.replaceOnChanges),
                import_id=request.importId,
            )
        )
        _ensure_event_loop()  # type: ignore[no-untyped-call]  # as upstream: refs need a loop
        inputs = rpc.deserialize_properties(request.object)
        resource_id, state = self.mocks.new_resource(
            mocks.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
        )
        # The engine encrypts these outputs (e.g. RandomPassword.result); so must we.
        for key in request.additionalSecretOutputs:
            if key in state:
                state[key] = pulumi.Output.secret(state[key])
        wire_state = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id or "", state)
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id or "", object=wire_state
        )

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.urn.endswith(f"::{PROJECT}-{self.recording.stack}"):
            self.recording.stack_outputs = decode(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def record(
    program: Callable[[], None],
    *,
    stack: str,
    config: RawConfig,
    preview: bool = True,
    into: Recording | None = None,
    stand_ins: DepotMocks | None = None,
) -> Recording:
    """Run ``program`` as ``pulumi preview`` (or ``up``) of ``stack`` would, under mocks.

    Registrations go to ``into`` when given, so a caller can inspect them after a failure.
    ``stand_ins``: what the providers compute, when a test needs other values than the
    deterministic ``DepotMocks`` (e.g. a deployment's own random state).
    """
    recording = into if into is not None else Recording(stack=stack)
    stand_ins = stand_ins or DepotMocks()
    # At each registration the SDK extracts and converts the whole Python stack, for the source
    # position the engine shows; a run under mocks has no engine, and a Registration keeps none
    # of it (~15% of a run's CPU). The SDK's own is back once the run ends.
    traced = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = _no_stack_trace
    try:
        _run(
            program,
            stack=stack,
            config=config,
            preview=preview,
            recording=recording,
            stand_ins=stand_ins,
        )
    finally:
        sdk_resource._get_stack_trace = traced
    return recording


def _run(
    program: Callable[[], None],
    *,
    stack: str,
    config: RawConfig,
    preview: bool,
    recording: Recording,
    stand_ins: DepotMocks,
) -> None:
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        stand_ins,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=RecordingMonitor(recording, stand_ins),
    )
    pulumi.runtime.set_all_config(dict(config.values), sorted(config.secret_keys))
    settings.ROOT.set(None)  # run_in_stack makes the stack resource, as `pulumi up` does
    # A run allocates many objects that live until it ends; the cycle collector's passes over
    # that growing heap made planning superlinear in the number of services (make bench).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _sync_await(run_in_stack(program))
    finally:
        if collecting:
            gc.enable()


def _no_stack_trace() -> source_pb2.StackTrace:
    """What the SDK sends when it finds no frame of the program: no source position."""
    return source_pb2.StackTrace()
