"""What rules build on what: the refresh graph of everything rules maintain.

Nodes are ``segment:<key>`` (dynamic segments), ``tag:<key>`` (dynamic tags), ``stage`` (the
lifecycle stages, together: one stage per customer) and ``score``. An edge goes from a rule to what
it reads (``rule_references``). Refreshes follow the edges (what a rule reads is brought up to date
first); a definition that would close a cycle is refused with the path shown; something that others
build on cannot be deleted while they do."""

from __future__ import annotations

from django.dispatch import Signal
from django.utils.translation import gettext as _

from segments.models import LifecycleStage, Segment, Tag
from segments.rules import RuleError, rule_parse, rule_references

STAGE = "stage"
SCORE = "score"


def segment_node(key: str) -> str:
    return f"segment:{key}"


def tag_node(key: str) -> str:
    return f"tag:{key}"


def definitions_load() -> dict[str, list]:
    """Every rule-maintained node with its parsed rules (the stages: one each, in order)."""
    definitions: dict[str, list] = {}
    dynamic_segments = Segment.objects.filter(kind=Segment.Kind.DYNAMIC).exclude(rule=None)
    for key, rule in dynamic_segments.values_list("key", "rule"):
        definitions[segment_node(key)] = [rule_parse(rule)]
    for key, rule in Tag.objects.filter(kind=Tag.Kind.DYNAMIC).exclude(rule=None).values_list("key", "rule"):
        definitions[tag_node(key)] = [rule_parse(rule)]
    stage_rules = [rule_parse(rule) for rule in LifecycleStage.objects.values_list("rule", flat=True)]
    if stage_rules:
        definitions[STAGE] = stage_rules
    return definitions


def graph_load() -> dict[str, set[str]]:
    """Every rule-maintained node with what its rules read."""
    return {
        node: set().union(*(rule_references(rule) for rule in rules))
        for node, rules in definitions_load().items()
    }


def cycles_refuse(node: str, references: set[str], graph: dict[str, set[str]] | None = None) -> None:
    """A rule may build on others, never on itself through them: RuleError with the path."""
    graph = dict(graph if graph is not None else graph_load())
    graph[node] = references

    def walk(current: str, path: list[str]) -> list[str] | None:
        if current == node and len(path) > 1:
            return path
        if current in path[:-1]:
            return None
        for child in sorted(graph.get(current, ())):
            found = walk(child, [*path, child])
            if found:
                return found
        return None

    cycle = walk(node, [node])
    if cycle:
        raise RuleError([{"path": "$", "message": "refers back to itself: " + " → ".join(cycle)}])


def dependency_order(nodes, graph: dict[str, set[str]]) -> list[str]:
    """``nodes`` with each after everything it reads (among ``nodes``)."""
    wanted, ordered, done = set(nodes), [], set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        if node in done or node in path:
            return
        for reference in sorted(graph.get(node, ())):
            if reference in wanted:
                visit(reference, (*path, node))
        done.add(node)
        ordered.append(node)

    for node in sorted(wanted):
        visit(node, ())
    return ordered


def dependents(node: str, graph: dict[str, set[str]]) -> list[str]:
    """Everything that reads ``node``, directly or through others, in refresh order."""
    found: set[str] = set()
    frontier = [node]
    while frontier:
        current = frontier.pop()
        for other, references in graph.items():
            if current in references and other not in found:
                found.add(other)
                frontier.append(other)
    return dependency_order(found, graph)


def stage_node(key: str) -> str:
    """One stage by name, as a rule tests for it (``stage`` is the node that is refreshed)."""
    return f"stage:{key}"


# Sent with ``node`` by ``node_users``: apps whose objects read tags, segments or stages too (journeys)
# answer with a list of readable names of those that read it.
node_users_asked = Signal()


def node_users(node: str) -> list[str]:
    """Readable names of the rules, and of whatever else (journeys), that read ``node`` directly (for
    refusing a deletion)."""
    users = []
    for segment in Segment.objects.exclude(rule=None).order_by("name"):
        if node in rule_references(rule_parse(segment.rule)):
            users.append(_("segment “%(name)s”") % {"name": segment.name})
    for tag in Tag.objects.exclude(rule=None).order_by("name"):
        if node in rule_references(rule_parse(tag.rule)):
            users.append(_("tag “%(name)s”") % {"name": tag.name})
    for stage in LifecycleStage.objects.all():
        if node in rule_references(rule_parse(stage.rule)):
            users.append(_("stage “%(name)s”") % {"name": stage.name})
    for _receiver, names in node_users_asked.send(sender=None, node=node):
        users += names
    return users
