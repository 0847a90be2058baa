"""``depot graph``: the dependency graph of a stack, health-gated edges marked.

Nodes are what a reviewer reasons about — containers, images, builds, networks, volumes and
secrets; providers and components are left out. An edge points from what is needed to what needs
it; an edge between two containers is *health-gated* (the dependency is created with ``wait``, so
the dependent starts only once it is healthy).

A graph is drawn two ways to the same result: ``build_graph`` from a plan (the program run under
mocks: what ``depot diff`` shows of a change), and ``depot.review.model_graph`` from the resolved
model alone (what ``depot graph`` prints, without loading the Pulumi SDK).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from depot.resource_types import (
    BUILD,
    COMMAND,
    DOCKER_SECRET,
    NETWORK,
    RANDOM_PASSWORD,
    REMOTE_IMAGE,
    VOLUME,
)
from depot.review.planned import Plan, PlannedResource, resource_key
from depot.review.workload import WORKLOAD_TYPES, display_name, is_workload, workload

KINDS = {
    **dict.fromkeys(sorted(WORKLOAD_TYPES), "service"),
    REMOTE_IMAGE: "image",
    BUILD: "build",
    NETWORK: "network",
    VOLUME: "volume",
    RANDOM_PASSWORD: "secret",
    DOCKER_SECRET: "swarm secret",
    COMMAND: "rotation",
}
"""Every resource type the graph draws, and the word its label starts with."""

ENGINE_NAMED = frozenset({"service", "network", "volume"})
"""Kinds labelled with the name the engine knows them by (``depot-postgres``), not Pulumi's."""


@dataclass(frozen=True)
class Node:
    """One resource as the graph shows it: its plan key, its kind and the name on its label."""

    key: str
    kind: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.name}"


def node(type_: str, name: str, engine_name: str) -> Node:
    """The node of resource ``name`` of ``type_`` (one of ``KINDS``), known to the engine as
    ``engine_name``; its label shows the engine's name where a reviewer knows it by that."""
    kind = KINDS[type_]
    return Node(resource_key(type_, name), kind, engine_name if kind in ENGINE_NAMED else name)


@dataclass(frozen=True)
class Edge:
    """``source`` is needed by ``target``."""

    source: str
    target: str
    health_gated: bool


@dataclass(frozen=True)
class Graph:
    """Nodes (by plan key) and their edges, sorted: equal graphs draw equal text."""

    nodes: dict[str, Node]
    edges: tuple[Edge, ...]

    @classmethod
    def of(cls, nodes: Iterable[Node], edges: Iterable[Edge]) -> Graph:
        by_key = {n.key: n for n in sorted(nodes, key=lambda n: n.key)}
        return cls(by_key, tuple(sorted(set(edges), key=lambda e: (e.source, e.target))))

    def around(self, only: Iterable[str]) -> Graph:
        """The resources ``only`` names and their direct neighbours."""
        focus = set(only) & self.nodes.keys()
        edges = [e for e in self.edges if e.source in focus or e.target in focus]
        keep = focus | {e.source for e in edges} | {e.target for e in edges}
        return Graph.of((n for key, n in self.nodes.items() if key in keep), edges)


def build_graph(plan: Plan, only: Iterable[str] | None = None) -> Graph:
    """The graph of ``plan``; with ``only``, those resources and their direct neighbours."""
    resources = {r.key: r for r in plan.resources if r.type in KINDS}
    edges = [
        Edge(dep, r.key, _gated(resources[dep], r))
        for r in resources.values()
        for dep in r.dependencies
        if dep in resources
    ]
    nodes = (node(r.type, r.name, display_name(r)) for r in resources.values())
    graph = Graph.of(nodes, edges)
    return graph if only is None else graph.around(only)


def _gated(dependency: PlannedResource, dependent: PlannedResource) -> bool:
    services = is_workload(dependency) and is_workload(dependent)
    return services and workload(dependency).waited_for


_MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 .:/-]")


def _mermaid_label(label: str) -> str:
    """``label`` inside ``["…"]``: any other character as Mermaid's ``#<code>;``, so no name
    can end the label, start a line of the chart or leave the PR comment's code block."""
    return "".join(c if _MERMAID_PLAIN.fullmatch(c) else f"#{ord(c)};" for c in label)


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart: health-gated edges thick and labelled ``healthy``."""
    ids = {key: f"n{index}" for index, key in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    for key in sorted(graph.nodes):
        shown = graph.nodes[key]
        shape = ('[("', '")]') if shown.kind == "volume" else ('["', '"]')
        lines.append(f"  {ids[key]}{shape[0]}{_mermaid_label(shown.label)}{shape[1]}")
    for edge in graph.edges:
        arrow = "==>|healthy|" if edge.health_gated else "-->"
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: health-gated edges bold and labelled ``healthy``."""
    lines = ["digraph depot {", "  rankdir=LR;", "  node [shape=box];"]
    for key in sorted(graph.nodes):
        shown = graph.nodes[key]
        shape = ", shape=cylinder" if shown.kind == "volume" else ""
        lines.append(f'  "{key}" [label="{shown.label}"{shape}];')
    for edge in graph.edges:
        style = ' [style=bold, label="healthy"]' if edge.health_gated else ""
        lines.append(f'  "{edge.source}" -> "{edge.target}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"
