"""``depot graph``: the dependency graph of a stack, health-gated edges marked.

Nodes are what a reviewer reasons about — containers, images, builds, networks, volumes and
secrets; providers and components are left out. An edge points from what is needed to what needs
it; an edge between two containers is *health-gated* (the dependency is created with ``wait``, so
the dependent starts only once it is healthy).
"""

from __future__ import annotations

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
from depot.review.planned import Plan, PlannedResource
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


@dataclass(frozen=True)
class Edge:
    """``source`` is needed by ``target``."""

    source: str
    target: str
    health_gated: bool


@dataclass(frozen=True)
class Graph:
    """Nodes (by plan key) and their edges."""

    nodes: dict[str, PlannedResource]
    edges: tuple[Edge, ...]


def build_graph(plan: Plan, only: Iterable[str] | None = None) -> Graph:
    """The graph of ``plan``; with ``only``, those resources and their direct neighbours."""
    nodes = {r.key: r for r in plan.resources if r.type in KINDS}
    edges = [
        Edge(dep, r.key, _gated(nodes[dep], r))
        for r in nodes.values()
        for dep in r.dependencies
        if dep in nodes
    ]
    if only is not None:
        focus = set(only) & nodes.keys()
        edges = [e for e in edges if e.source in focus or e.target in focus]
        keep = focus | {e.source for e in edges} | {e.target for e in edges}
        nodes = {key: node for key, node in nodes.items() if key in keep}
    return Graph(nodes, tuple(sorted(edges, key=lambda e: (e.source, e.target))))


def _gated(dependency: PlannedResource, dependent: PlannedResource) -> bool:
    services = is_workload(dependency) and is_workload(dependent)
    return services and workload(dependency).waited_for


def _label(node: PlannedResource) -> str:
    named = KINDS[node.type] in {"service", "network", "volume"}
    return f"{KINDS[node.type]}: {display_name(node) if named else node.name}"


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart: health-gated edges thick and labelled ``healthy``."""
    ids = {key: f"n{index}" for index, key in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    for key in sorted(graph.nodes):
        node = graph.nodes[key]
        shape = ('[("', '")]') if KINDS[node.type] == "volume" else ('["', '"]')
        lines.append(f"  {ids[key]}{shape[0]}{_label(node)}{shape[1]}")
    for edge in graph.edges:
        arrow = "==>|healthy|" if edge.health_gated else "-->"
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: health-gated edges bold and labelled ``healthy``."""
    lines = ["digraph depot {", "  rankdir=LR;", "  node [shape=box];"]
    for key in sorted(graph.nodes):
        shape = ", shape=cylinder" if KINDS[graph.nodes[key].type] == "volume" else ""
        lines.append(f'  "{key}" [label="{_label(graph.nodes[key])}"{shape}];')
    for edge in graph.edges:
        style = ' [style=bold, label="healthy"]' if edge.health_gated else ""
        lines.append(f'  "{edge.source}" -> "{edge.target}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"
