"""Publish-time validation of a journey graph: every problem at once, each with its node id."""

from __future__ import annotations

from collections import defaultdict

from django.utils.translation import gettext as _
from pydantic import ValidationError

from journeys.nodes import node_type_get
from journeys.nodes.base import DEFAULT_HANDLE, RULE_INVALID, ConfigProblem, NodeConfig, NodeType

MAX_TRIGGERS = 10


class GraphInvalid(ValueError):
    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(f"{p['node'] or '-'}: {p['message']}" for p in problems))
        self.problems = problems


def _problem(node: str | None, message: str, field: str = "", path: str = "") -> dict:
    """``path``: inside a rule, the JSON path of the condition the problem is about."""
    problem = {"node": node, "field": field, "message": message}
    if path:
        problem["path"] = path
    return problem


def _pydantic_problems(node_id: str, error: ValidationError) -> list[dict]:
    problems = []
    for item in error.errors():
        field = "config." + ".".join(str(part) for part in item["loc"])
        if item["type"] == RULE_INVALID:
            # One problem per mistake in the rule, each at its condition.
            problems += [
                _problem(node_id, rule_problem["message"], field, rule_problem["path"])
                for rule_problem in item["ctx"]["problems"]
            ]
        else:
            problems.append(_problem(node_id, str(item["msg"]).removeprefix("Value error, "), field))
    return problems


def _reference_problem(node_id: str, problem: str | ConfigProblem) -> dict:
    if isinstance(problem, ConfigProblem):
        return _problem(node_id, problem.message, f"config.{problem.field}", problem.path)
    return _problem(node_id, problem, "config")


def edge_handle(edge: dict) -> str:
    """Edges without a handle leave by the node's only (default) handle, as the canvas draws them."""
    return edge.get("sourceHandle") or DEFAULT_HANDLE


def graph_parse(graph) -> tuple[dict[str, tuple[NodeType, NodeConfig]], list[dict], list[dict]]:
    """(node id -> (type, parsed config) for the nodes that parse, the edges, the problems)."""
    problems: list[dict] = []
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return {}, [], [_problem(None, _("The graph needs a list of nodes."), "nodes")]
    edges = graph.get("edges", [])
    if not isinstance(edges, list):
        problems.append(_problem(None, _("The graph's edges must be a list."), "edges"))
        edges = []
    parsed: dict[str, tuple[NodeType, NodeConfig]] = {}
    seen: set[str] = set()
    for index, node in enumerate(graph["nodes"]):
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or not node_id:
            problems.append(
                _problem(None, _("Node %(index)s has no id.") % {"index": index}, f"nodes[{index}]")
            )
            continue
        if node_id in seen:
            problems.append(_problem(node_id, _("Two nodes have the id “%(id)s”.") % {"id": node_id}, "id"))
            continue
        seen.add(node_id)
        try:
            kind = node_type_get(node.get("type"))
        except LookupError:
            problems.append(
                _problem(node_id, _("There is no node type “%(type)s”.") % {"type": node.get("type")}, "type")
            )
            continue
        try:
            config = kind.config.model_validate(node.get("config") or {})
        except ValidationError as error:
            problems += _pydantic_problems(node_id, error)
            continue
        parsed[node_id] = (kind, config)
    good_edges = []
    for index, edge in enumerate(edges):
        if not isinstance(edge, dict):
            problems.append(_problem(None, _("Edge %(index)s is not an object.") % {"index": index}, "edges"))
            continue
        missing = [end for end in ("source", "target") if edge.get(end) not in seen]
        for end in missing:
            problems.append(
                _problem(
                    edge.get("source") if end == "target" and edge.get("source") in seen else None,
                    _("Edge “%(edge)s” points to a node that does not exist (%(end)s).")
                    % {"edge": edge.get("id", index), "end": end},
                    f"edges[{index}].{end}",
                )
            )
        if not missing:
            good_edges.append(edge)
    return parsed, good_edges, problems


def graph_validate(graph) -> list[dict]:
    """Every problem of the graph, each ``{"node", "field", "message"}`` (node None: the whole graph)."""
    parsed, edges, problems = graph_parse(graph)
    outgoing: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    incoming: dict[str, int] = defaultdict(int)
    for edge in edges:
        outgoing[edge["source"]][edge_handle(edge)].append(edge["target"])
        incoming[edge["target"]] += 1

    triggers = [node_id for node_id, (kind, _config) in parsed.items() if kind.kind == "trigger"]
    if not triggers and not any(p["field"] == "type" for p in problems):
        problems.append(
            _problem(None, _("A journey needs a trigger: what starts a customer on it."), "nodes")
        )
    if len(triggers) > MAX_TRIGGERS:
        problems.append(
            _problem(None, _("A journey has at most %(count)s triggers.") % {"count": MAX_TRIGGERS}, "nodes")
        )

    for node_id, (kind, config) in parsed.items():
        handles = kind.output_handles(config)
        if kind.kind == "trigger" and incoming[node_id]:
            problems.append(_problem(node_id, _("A trigger starts the journey: nothing may lead into it.")))
        for handle, targets in outgoing[node_id].items():
            if handle not in handles:
                problems.append(
                    _problem(
                        node_id,
                        _("This node has no handle “%(handle)s” (it has: %(handles)s).")
                        % {"handle": handle, "handles": ", ".join(handles) or "-"},
                        "edges",
                    )
                )
            elif len(targets) > 1:
                problems.append(
                    _problem(
                        node_id, _("The handle “%(handle)s” leads to several nodes.") % {"handle": handle}
                    )
                )
        for handle in config.ends:
            if handle not in handles:
                problems.append(
                    _problem(
                        node_id,
                        _("“%(handle)s” is not a handle of this node.") % {"handle": handle},
                        "config.ends",
                    )
                )
            elif outgoing[node_id].get(handle):
                problems.append(
                    _problem(
                        node_id,
                        _("The handle “%(handle)s” is both connected and marked as ending.")
                        % {"handle": handle},
                        "config.ends",
                    )
                )
        for handle in handles:
            if not outgoing[node_id].get(handle) and handle not in config.ends:
                problems.append(
                    _problem(
                        node_id,
                        _("The handle “%(handle)s” leads nowhere: connect it, or mark it as ending.")
                        % {"handle": handle},
                        "edges",
                    )
                )
        problems += [_reference_problem(node_id, problem) for problem in kind.reference_problems(config)]

    reachable = set(triggers)
    frontier = list(triggers)
    while frontier:
        node_id = frontier.pop()
        for targets in outgoing[node_id].values():
            for target in targets:
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
    for node_id in parsed:
        if node_id not in reachable and triggers:
            problems.append(_problem(node_id, _("No trigger leads to this node.")))
    return problems


def graph_references(graph) -> set[str]:
    """What the graph's nodes read that rules maintain (``tag:<key>``, ``segment:<key>``,
    ``stage:<key>``); nodes that do not parse name nothing."""
    nodes, _edges, _problems = graph_parse(graph)
    return set().union(*(kind.references(config) for kind, config in nodes.values()))
