"""The journey shown on the empty journeys page, so a marketer sees what they will build."""

from django.utils.translation import gettext_lazy as _


def _node(node_id: str, node_type: str, label, x: int, y: int) -> dict:
    return {"id": node_id, "type": node_type, "config": {"label": label}, "position": {"x": x, "y": y}}


def _edge(edge_id: str, source: str, target: str, handle: str | None = None) -> dict:
    return {"id": edge_id, "source": source, "sourceHandle": handle, "target": target}


EXAMPLE_JOURNEY = {
    "nodes": [
        _node("n1", "form_submitted_trigger", _("Live-stream sign-up form submitted"), 0, 120),
        _node("n2", "add_tag", _("Tag: live-stream lead"), 260, 120),
        _node("n3", "send_wechat_template", _("WeChat template: reminder"), 520, 120),
        _node("n4", "send_sms", _("SMS fallback"), 780, 240),
        _node("n5", "delay", _("Wait 2 hours"), 780, 40),
        _node("n6", "condition", _("Clicked the menu?"), 1040, 40),
    ],
    "edges": [
        _edge("e1", "n1", "n2"),
        _edge("e2", "n2", "n3"),
        _edge("e3", "n3", "n5", "delivered"),
        _edge("e4", "n3", "n4", "failed"),
        _edge("e5", "n4", "n5", "delivered"),
        _edge("e6", "n5", "n6"),
    ],
}
