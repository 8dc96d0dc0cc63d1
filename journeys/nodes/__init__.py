"""The node-type registry: every kind of node a journey can hold, keyed by its ``type``.

Each node type lives in one of the modules imported at the end (triggers, flow, actions) and
registers itself with ``@node_type``; the canvas reads the registry's palette from
``GET /api/journeys/node-types/``.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from journeys.nodes.base import NodeType

NODE_TYPES: dict[str, NodeType] = {}

KIND_LABELS = {"trigger": _("Triggers"), "flow": _("Flow"), "action": _("Actions")}


def node_type(key: str):
    def register(cls: type[NodeType]) -> type[NodeType]:
        if key in NODE_TYPES:
            raise ValueError(f"node type {key} registered twice")
        cls.key = key
        NODE_TYPES[key] = cls()
        return cls

    return register


def node_type_get(key: str) -> NodeType:
    try:
        return NODE_TYPES[key]
    except KeyError:
        raise LookupError(key) from None


def palette() -> list[dict]:
    """Every node type as the canvas draws it in its palette, with its config's JSON schema."""
    return [
        {
            "type": key,
            "kind": node.kind,
            "group": str(KIND_LABELS[node.kind]),
            "label": str(node.label),
            "description": str(node.description),
            "icon": node.icon,
            "handles": list(node.handles),
            "dynamic_handles": node.dynamic_handles,
            "handles_when": [
                {"field": rule.field, "equals": rule.equals, "handles": list(rule.handles)}
                for rule in node.handles_when
            ],
            "config_schema": node.config.model_json_schema(),
        }
        for key, node in sorted(NODE_TYPES.items(), key=lambda item: list(KIND_LABELS).index(item[1].kind))
    ]


from journeys.nodes import actions, flow, inbound, outbound, staff, triggers  # noqa: E402, F401  (they register themselves)
