# ruff: noqa: E501  (the graphs read best one node and its config per line)
"""The templates gallery: ready journeys marketers ask for, each a real graph of registered node types.

A template names what it uses by key: tags, tag groups, segments, lifecycle stages, message
templates, and channel accounts by channel. Making one concrete for a workspace
(``journey_from_template``) does what is safe to do for the marketer and leaves the rest for them:

- tags and tag groups it names are created when missing (they are only names; a journey cannot run
  without them, and creating them changes no customer);
- each send and call gets the workspace's first active account of its channel;
- segments, lifecycle stages and message templates are left as they are named: they are business
  definitions (a rule, a path, content approved by WeChat or the SMS provider) that only the marketer
  can give. Until they exist, publishing reports each with its node, as any other problem, and the
  draft opens with that list.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from connectors.models import ChannelAccount
from connectors.protocol import Channel
from journeys.models import Journey
from journeys.services import journey_save
from journeys.validation import graph_validate
from segments.models import Tag, TagGroup
from segments.tags import tag_save

HOUR, DAY = 3600, 86400
CHINA = zoneinfo.ZoneInfo("Asia/Shanghai")

# Tags the templates set, with their names; created in a workspace that lacks them.
TAG_NAMES: dict[str, Promise] = {
    "new-follower": _("New follower"),
    "silent-follower": _("Silent follower"),
    "live-signup": _("Live-stream sign-up"),
    "live-engaged": _("Clicked after the live-stream sign-up"),
    "call-interested": _("Interested on the call"),
    "call-unreached": _("Not reached by phone"),
    "lost-60d": _("No order for 60 days"),
    "cart-lost": _("Cart not recovered"),
    "birthday-greeted": _("Birthday greeted"),
    "industry-smart-home": _("Industry: smart home"),
    "industry-computer": _("Industry: computer equipment"),
    "industry-security": _("Industry: smart security"),
    "double11-interested": _("Double 11: interested"),
    "sales-lead": _("Sales lead"),
    "lead-unworked": _("Lead not followed up"),
    "form-signup": _("Signed up by form"),
    "high-intent": _("High intent"),
}
# Tag groups the AI call's scripts are chosen by, with the tags in each.
TAG_GROUPS: dict[str, tuple[Promise, tuple[str, ...]]] = {
    "smart-home": (_("Smart home group"), ("industry-smart-home",)),
    "computer": (_("Computer equipment group"), ("industry-computer",)),
    "security": (_("Smart security group"), ("industry-security",)),
}


def _node(node_id: str, node_type: str, label: Promise, **config) -> dict:
    return {"id": node_id, "type": node_type, "config": {"label": str(label), **config}, "position": {}}


def _edge(source: str, target: str, handle: str | None = None) -> dict:
    return {
        "id": f"{source}-{handle or 'default'}-{target}",
        "source": source,
        "sourceHandle": handle,
        "target": target,
    }


Accounts = Callable[[str], int]


@dataclass(frozen=True)
class JourneyTemplate:
    key: str
    name: Promise
    description: Promise
    category: Promise
    build: Callable[[Accounts], tuple[list[dict], list[dict]]]
    entry_policy: str = Journey.EntryPolicy.ONCE
    cooldown_seconds: int | None = None
    entry_key_property: str = ""
    # Segments it starts from, with a rule the marketer may take as a start (docs/rules.md).
    suggested_segments: dict[str, tuple[Promise, dict]] = field(default_factory=dict)

    def graph(self, accounts: Accounts) -> dict:
        nodes, edges = self.build(accounts)
        return {"nodes": _laid_out(nodes, edges), "edges": edges}


def _laid_out(nodes: list[dict], edges: list[dict]) -> list[dict]:
    """Left to right by distance from the triggers, one row per node of a column."""
    depth = {node["id"]: 0 for node in nodes if node["type"].endswith("_trigger")}
    frontier = list(depth)
    while frontier:
        source = frontier.pop(0)
        for edge in edges:
            if edge["source"] == source and edge["target"] not in depth:
                depth[edge["target"]] = depth[source] + 1
                frontier.append(edge["target"])
    rows: dict[int, int] = defaultdict(int)
    for node in nodes:
        column = depth.get(node["id"], 0)
        node["position"] = {"x": column * 260, "y": rows[column] * 140}
        rows[column] += 1
    return nodes


# -- the templates ---------------------------------------------------------------------------------


def _new_follower(account: Accounts):
    wechat = account(Channel.WECHAT_TEMPLATE)
    return [
        _node("t1", "wechat_trigger", _("Follows the Official Account"), on="follow"),
        _node("a1", "add_tag", _("Tag: new follower"), tag="new-follower"),
        _node("s1", "send", _("Welcome message"), account=wechat, template="gallery-welcome", no_response_seconds=HOUR, ends=["failed"]),
        _node("w1", "wait_for_event", _("Clicks the menu within a day?"), event="Menu Clicked", timeout_seconds=DAY),
        _node("s2", "send", _("Offer for the curious"), account=wechat, template="gallery-first-offer", ends=["delivered", "failed", "no_response"]),
        _node("s3", "send", _("What we offer"), account=wechat, template="gallery-intro", ends=["failed", "no_response"]),
        _node("w2", "wait_for_event", _("Orders within the next day?"), event="Order Completed", timeout_seconds=DAY),
        _node("g1", "goal", _("First order"), exit=True),
        _node("a2", "add_tag", _("Tag: silent follower"), tag="silent-follower", ends=["default"]),
    ], [
        _edge("t1", "a1"), _edge("a1", "s1"), _edge("s1", "w1", "delivered"), _edge("s1", "w1", "no_response"),
        _edge("w1", "s2", "happened"), _edge("w1", "s3", "timed_out"), _edge("s3", "w2", "delivered"),
        _edge("w2", "g1", "happened"), _edge("w2", "a2", "timed_out"),
    ]  # fmt: skip


def _live_stream(account: Accounts):
    wechat, sms = account(Channel.WECHAT_TEMPLATE), account(Channel.SMS)
    return [
        _node("t1", "form_submitted_trigger", _("Live-stream sign-up form"), form="live-signup"),
        _node("a1", "add_tag", _("Tag: live-stream sign-up"), tag="live-signup"),
        _node("s1", "send", _("WeChat: signed up"), account=wechat, template="gallery-live-signed-up", no_response_seconds=HOUR),
        _node("s2", "send", _("SMS fallback"), account=sms, template="gallery-live-signed-up-sms", ends=["failed", "no_response"]),
        _node("w1", "wait_for_event", _("Clicks the menu within 2 hours?"), event="Menu Clicked", timeout_seconds=2 * HOUR),
        _node("a2", "add_tag", _("Tag: engaged"), tag="live-engaged", ends=["default"]),
        _node("s3", "send", _("SMS: how to watch"), account=sms, template="gallery-live-how-to-watch", ends=["delivered", "failed", "no_response"]),
    ], [
        _edge("t1", "a1"), _edge("a1", "s1"), _edge("s1", "w1", "delivered"), _edge("s1", "s2", "failed"),
        _edge("s1", "w1", "no_response"), _edge("s2", "w1", "delivered"), _edge("w1", "a2", "happened"),
        _edge("w1", "s3", "timed_out"),
    ]  # fmt: skip


def _dormant_ai_call(account: Accounts):
    call, sms = account(Channel.CALL), account(Channel.SMS)
    scripts = [
        {"tag_group": str(TAG_GROUPS[group][0]), "template": f"gallery-call-{group}"}
        for group in ("smart-home", "computer", "security")
    ]
    return [
        _node("t1", "segment_trigger", _("Becomes dormant (6 months)"), segment="dormant-6m"),
        _node("d1", "delay", _("On a weekday, 10:00–18:00"), window={"days": ["mon", "tue", "wed", "thu", "fri"], "start": "10:00", "end": "18:00"}),
        _node("c1", "ai_call", _("AI call with the group's script"), account=call, scripts=scripts, default_template="gallery-call-general", min_duration_seconds=30),
        _node("a1", "add_tag", _("Tag: interested"), tag="call-interested"),
        _node("k1", "create_task", _("Owner calls back"), title=str(_("Call back: interested on the AI call")), due_in_seconds=4 * HOUR, timeout_seconds=2 * DAY, ends=["done", "not_reached", "timed_out"]),
        _node("s1", "send", _("SMS: a coupon to come back"), account=sms, template="gallery-winback-coupon", ends=["delivered", "failed", "no_response"]),
        _node("d2", "delay", _("Two days later"), seconds=2 * DAY),
        _node("a2", "add_tag", _("Tag: not reached by phone"), tag="call-unreached"),
        _node("s2", "send", _("SMS: we miss you"), account=sms, template="gallery-winback-sms", ends=["delivered", "failed", "no_response"]),
    ], [
        _edge("t1", "d1"), _edge("d1", "c1"), _edge("c1", "a1", "answered"), _edge("a1", "k1"),
        _edge("c1", "s1", "short_call"), _edge("c1", "d2", "not_answered"), _edge("d2", "a2"), _edge("a2", "s2"),
    ]  # fmt: skip


def _no_order_recall(account: Accounts):
    sms, wechat, call = account(Channel.SMS), account(Channel.WECHAT_TEMPLATE), account(Channel.CALL)
    return [
        _node("t1", "event_trigger", _("Orders"), event="Order Completed"),
        _node("w1", "wait_for_event", _("Orders again within 7 days?"), event="Order Completed", timeout_seconds=7 * DAY),
        _node("s1", "send", _("7 days: SMS reminder"), account=sms, template="gallery-recall-7d", ends=["failed", "no_response"]),
        _node("w2", "wait_for_event", _("Orders by day 30?"), event="Order Completed", timeout_seconds=23 * DAY),
        _node("s2", "send", _("30 days: WeChat coupon"), account=wechat, template="gallery-recall-30d", ends=["failed", "no_response"]),
        _node("w3", "wait_for_event", _("Orders by day 60?"), event="Order Completed", timeout_seconds=30 * DAY),
        _node("c1", "ai_call", _("60 days: AI call"), account=call, default_template="gallery-call-general", ends=["answered", "short_call"]),
        _node("a1", "add_tag", _("Tag: no order for 60 days"), tag="lost-60d", ends=["default"]),
        _node("x1", "exit", _("Ordered again")),
    ], [
        _edge("t1", "w1"), _edge("w1", "x1", "happened"), _edge("w1", "s1", "timed_out"), _edge("s1", "w2", "delivered"),
        _edge("w2", "x1", "happened"), _edge("w2", "s2", "timed_out"), _edge("s2", "w3", "delivered"),
        _edge("w3", "x1", "happened"), _edge("w3", "c1", "timed_out"), _edge("c1", "a1", "not_answered"),
    ]  # fmt: skip


def _cart_recovery(account: Accounts):
    wechat, sms = account(Channel.WECHAT_TEMPLATE), account(Channel.SMS)
    return [
        _node("t1", "event_trigger", _("Adds to the cart"), event="Product Added"),
        _node("w1", "wait_for_event", _("Orders within an hour?"), event="Order Completed", timeout_seconds=HOUR),
        _node("s1", "send", _("WeChat: your cart"), account=wechat, template="gallery-cart-wechat", no_response_seconds=HOUR),
        _node("s2", "send", _("SMS fallback"), account=sms, template="gallery-cart-sms", ends=["failed", "no_response"]),
        _node("w2", "wait_for_event", _("Orders within a day?"), event="Order Completed", timeout_seconds=DAY),
        _node("g1", "goal", _("Cart recovered"), exit=True),
        _node("a1", "add_tag", _("Tag: cart not recovered"), tag="cart-lost", ends=["default"]),
        _node("x1", "exit", _("Ordered at once")),
    ], [
        _edge("t1", "w1"), _edge("w1", "x1", "happened"), _edge("w1", "s1", "timed_out"), _edge("s1", "w2", "delivered"),
        _edge("s1", "s2", "failed"), _edge("s1", "w2", "no_response"), _edge("s2", "w2", "delivered"),
        _edge("w2", "g1", "happened"), _edge("w2", "a1", "timed_out"),
    ]  # fmt: skip


def _post_purchase(account: Accounts):
    wechat, sms = account(Channel.WECHAT_TEMPLATE), account(Channel.SMS)
    return [
        _node("t1", "event_trigger", _("Orders"), event="Order Completed"),
        _node("d1", "delay", _("Three days later, in the daytime"), seconds=3 * DAY, window={"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "10:00", "end": "20:00"}),
        _node("s1", "send", _("WeChat: how is it going?"), account=wechat, template="gallery-care", ends=["failed", "no_response"]),
        _node("d2", "delay", _("A week later"), seconds=7 * DAY),
        _node("s2", "send", _("SMS: tell us how you like it"), account=sms, template="gallery-review-request", ends=["failed", "no_response"]),
        _node("p1", "add_score", _("Points for a happy customer"), points=10, expires_after_days=365, ends=["default"]),
    ], [
        _edge("t1", "d1"), _edge("d1", "s1"), _edge("s1", "d2", "delivered"), _edge("d2", "s2"), _edge("s2", "p1", "delivered"),
    ]  # fmt: skip


def _birthday(account: Accounts):
    wechat, sms = account(Channel.WECHAT_TEMPLATE), account(Channel.SMS)
    return [
        _node("t1", "api_trigger", _("Birthday (enrolled by your systems)")),
        _node("d1", "delay", _("In the morning"), window={"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "21:00"}),
        _node("s1", "send", _("WeChat: happy birthday"), account=wechat, template="gallery-birthday", no_response_seconds=2 * HOUR),
        _node("s2", "send", _("SMS fallback"), account=sms, template="gallery-birthday-sms", ends=["failed", "no_response"]),
        _node("p1", "add_score", _("Birthday points"), points=20, expires_after_days=30),
        _node("a1", "add_tag", _("Tag: birthday greeted"), tag="birthday-greeted", ends=["default"]),
    ], [
        _edge("t1", "d1"), _edge("d1", "s1"), _edge("s1", "p1", "delivered"), _edge("s1", "s2", "failed"),
        _edge("s1", "p1", "no_response"), _edge("s2", "p1", "delivered"), _edge("p1", "a1"),
    ]  # fmt: skip


def _next_double11_morning() -> dt.datetime:
    """10:00 on the coming 11 November in China (this year's until it has passed)."""
    now = timezone.now().astimezone(CHINA)
    moment = dt.datetime(now.year, 11, 11, 10, tzinfo=CHINA)
    return moment if moment > now else moment.replace(year=now.year + 1)


def _double11(account: Accounts):
    email = account(Channel.EMAIL)
    industries = (
        ("smart_home", "industry-smart-home"),
        ("computer", "industry-computer"),
        ("security", "industry-security"),
    )
    nodes = [
        _node("t1", "scheduled_trigger", _("Suppliers, on the morning of Double 11"), segment="double11-suppliers", repeat="once", at=_next_double11_morning().isoformat()),
        _node(
            "c1",
            "condition",
            _("Which industry group?"),
            branches=[{"id": branch, "label": str(TAG_NAMES[tag]), "rule": {"tag": tag}} for branch, tag in industries],
        ),
        *(
            _node(f"s_{branch}", "send", _("Double 11 offer for the group"), account=email, template=f"gallery-double11-{branch.replace('_', '-')}", ends=["failed", "no_response"])
            for branch, _tag in industries
        ),
        _node("s_other", "send", _("Double 11 offer"), account=email, template="gallery-double11-general", ends=["failed", "no_response"]),
        _node("w1", "wait_for_event", _("Clicks within 3 days?"), event="message_clicked", timeout_seconds=3 * DAY, ends=["timed_out"]),
        _node("a1", "add_tag", _("Tag: interested in Double 11"), tag="double11-interested"),
        _node("k1", "create_task", _("The group's sales follow up"), title=str(_("Double 11: follow up an interested supplier")), due_in_seconds=DAY, timeout_seconds=3 * DAY, ends=["done", "not_reached", "timed_out"]),
    ]  # fmt: skip
    edges = [_edge("t1", "c1"), _edge("c1", "s_other", "else"), _edge("s_other", "w1", "delivered")]
    for branch, _tag in industries:
        edges += [_edge("c1", f"s_{branch}", branch), _edge(f"s_{branch}", "w1", "delivered")]
    edges += [_edge("w1", "a1", "happened"), _edge("a1", "k1")]
    return nodes, edges


def _lead_followup(account: Accounts):
    sms = account(Channel.SMS)
    return [
        _node("t1", "tag_added_trigger", _("Becomes a sales lead"), tag="sales-lead"),
        _node("k1", "create_task", _("Owner calls the lead"), title=str(_("First call to a new lead")), due_in_seconds=4 * HOUR, timeout_seconds=DAY),
        _node("st", "set_stage", _("Stage: nurturing"), stage="nurturing"),
        _node("s1", "send", _("SMS: thanks for the call"), account=sms, template="gallery-lead-thanks", ends=["delivered", "failed", "no_response"]),
        _node("s2", "send", _("SMS: we tried to call"), account=sms, template="gallery-lead-missed", ends=["failed", "no_response"]),
        _node("d1", "delay", _("Next working day"), window={"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}, seconds=12 * HOUR),
        _node("k2", "create_task", _("Owner tries again"), title=str(_("Second call to the lead")), due_in_seconds=4 * HOUR, timeout_seconds=DAY, ends=["done", "not_reached", "timed_out"]),
        _node("a1", "add_tag", _("Tag: lead not followed up"), tag="lead-unworked", ends=["default"]),
    ], [
        _edge("t1", "k1"), _edge("k1", "st", "done"), _edge("st", "s1"), _edge("k1", "s2", "not_reached"),
        _edge("s2", "d1", "delivered"), _edge("d1", "k2"), _edge("k1", "a1", "timed_out"),
    ]  # fmt: skip


def _form_signup(account: Accounts):
    sms = account(Channel.SMS)
    return [
        _node("t1", "form_submitted_trigger", _("Sign-up form"), form="signup"),
        _node("a1", "add_tag", _("Tag: signed up by form"), tag="form-signup"),
        _node("h1", "call_webhook", _("Hand the lead to the CRM"), url="https://crm.example.com/hooks/leads", timeout_seconds=5, data={"source": "journey"}),
        _node("s1", "send", _("SMS: you're signed up"), account=sms, template="gallery-signup-confirm", ends=["delivered", "failed", "no_response"]),
        _node("a2", "add_tag", _("Tag: sales lead (CRM missed it)"), tag="sales-lead", ends=["default"]),
    ], [
        _edge("t1", "a1"), _edge("a1", "h1"), _edge("h1", "s1", "success"), _edge("h1", "a2", "failed"),
    ]  # fmt: skip


def _key_event(account: Accounts):
    wechat = account(Channel.WECHAT_TEMPLATE)
    return [
        _node("t1", "event_trigger", _("Views an expensive product"), event="Product Viewed", where=[{"property": "price", "op": "gte", "value": 5000}]),
        _node("w1", "wait_for_event", _("Orders within a day?"), event="Order Completed", timeout_seconds=DAY),
        _node("s1", "send", _("WeChat: the product's case studies"), account=wechat, template="gallery-key-event", ends=["failed", "no_response"]),
        _node("k1", "create_task", _("Owner follows up"), title=str(_("High-value product viewed: follow up")), due_in_seconds=HOUR * 8, timeout_seconds=2 * DAY, ends=["not_reached", "timed_out"]),
        _node("g1", "goal", _("Ordered"), exit=True),
        _node("a1", "add_tag", _("Tag: high intent"), tag="high-intent", ends=["default"]),
    ], [
        _edge("t1", "w1"), _edge("w1", "g1", "happened"), _edge("w1", "s1", "timed_out"), _edge("s1", "k1", "delivered"),
        _edge("k1", "a1", "done"),
    ]  # fmt: skip


def _activity_scoring(account: Accounts):
    return [
        _node("t1", "event_trigger", _("Clicks the menu"), event="Menu Clicked"),
        _node("t2", "event_trigger", _("Views a product"), event="Product Viewed"),
        _node("t3", "form_submitted_trigger", _("Submits the sign-up form"), form="signup"),
        _node("p1", "add_score", _("+2 points"), points=2, expires_after_days=90),
        _node("p2", "add_score", _("+5 points"), points=5, expires_after_days=90),
        _node("p3", "add_score", _("+10 points"), points=10, expires_after_days=90),
        _node("c1", "condition", _("50 points or more?"), branches=[{"id": "hot", "rule": {"score": {"op": "gte", "value": 50}}}], ends=["else"]),
        _node("a1", "add_tag", _("Tag: high intent"), tag="high-intent", ends=["default"]),
    ], [
        _edge("t1", "p1"), _edge("t2", "p2"), _edge("t3", "p3"),
        _edge("p1", "c1"), _edge("p2", "c1"), _edge("p3", "c1"), _edge("c1", "a1", "hot"),
    ]  # fmt: skip


GROWTH, NURTURE, RETENTION, SALES = (
    _("Growth"),
    _("Nurture and convert"),
    _("Retention"),
    _("Sales follow-up"),
)

TEMPLATES: dict[str, JourneyTemplate] = {
    template.key: template
    for template in (
        JourneyTemplate(
            "new-follower-48h", _("New follower nurture in 48 hours"),
            _("Welcomes a new Official Account follower, offers more to those who click the menu within a day, "
              "and tags those who stay silent after two days."),
            NURTURE, _new_follower,
        ),
        JourneyTemplate(
            "live-stream-signup", _("Live-stream sign-up follow-up"),
            _("Confirms a live-stream sign-up by WeChat template, falls back to SMS when it fails, and checks for "
              "two hours whether the customer clicks the menu."),
            GROWTH, _live_stream,
        ),
        JourneyTemplate(
            "dormant-ai-call", _("Dormant customer win-back by AI call"),
            _("Calls customers who became dormant with the script of their industry group, hands the interested "
              "to their owner, and follows up by SMS by the call's outcome."),
            RETENTION, _dormant_ai_call,
            suggested_segments={"dormant-6m": (_("Dormant for 6 months"), {"not": {"event": "Application Opened", "within_days": 180}})},
        ),
        JourneyTemplate(
            "no-order-recall", _("7 / 30 / 60-day no-order recall"),
            _("After each order, reminds by SMS at 7 days, sends a WeChat coupon at 30 and calls at 60 if no "
              "new order came; a new order ends it."),
            RETENTION, _no_order_recall,
            entry_policy=Journey.EntryPolicy.ONCE_PER_KEY, entry_key_property="order_id",
        ),
        JourneyTemplate(
            "cart-recovery", _("Cart recovery"),
            _("Reminds a customer who added to the cart and did not order within an hour, on WeChat or else by SMS, "
              "and counts the recovered carts."),
            NURTURE, _cart_recovery,
            entry_policy=Journey.EntryPolicy.AFTER_COOLDOWN, cooldown_seconds=DAY,
        ),
        JourneyTemplate(
            "post-purchase-care", _("Post-purchase care"),
            _("Asks how the order is going three days later in the daytime, asks for a review a week after, and "
              "rewards those who answer with points."),
            RETENTION, _post_purchase,
            entry_policy=Journey.EntryPolicy.ONCE_PER_KEY, entry_key_property="order_id",
        ),
        JourneyTemplate(
            "birthday", _("Birthday greeting"),
            _("Your systems enroll the customer on their birthday over the API; a WeChat greeting (or SMS) in the "
              "daytime, birthday points and a tag."),
            RETENTION, _birthday,
            entry_policy=Journey.EntryPolicy.AFTER_COOLDOWN, cooldown_seconds=300 * DAY,
        ),
        JourneyTemplate(
            "double11-suppliers", _("Double 11 push per supplier industry group"),
            _("Sends each supplier the Double 11 offer of their industry group (smart home, computer equipment, "
              "smart security) and hands those who click to the group's sales."),
            GROWTH, _double11,
            suggested_segments={"double11-suppliers": (_("Suppliers for Double 11"), {"role": "supplier"})},
        ),
        JourneyTemplate(
            "lead-follow-up", _("Lead follow-up by sales"),
            _("Gives a new sales lead to its owner to call within four hours; reached leads move to nurturing, "
              "missed ones get an SMS and a second call the next working day."),
            SALES, _lead_followup,
        ),
        JourneyTemplate(
            "form-signup", _("Form sign-up"),
            _("Tags a form sign-up, hands the lead to your CRM over a webhook (replace its URL) and confirms by "
              "SMS; when the CRM does not answer, the lead goes to sales."),
            GROWTH, _form_signup,
            entry_policy=Journey.EntryPolicy.AFTER_COOLDOWN, cooldown_seconds=DAY,
        ),
        JourneyTemplate(
            "key-event-follow-up", _("Key event follow-up"),
            _("When a customer views a product of 5,000 or more and does not order within a day, sends its case "
              "studies and asks the owner to follow up."),
            SALES, _key_event,
            entry_policy=Journey.EntryPolicy.AFTER_COOLDOWN, cooldown_seconds=7 * DAY,
        ),
        JourneyTemplate(
            "activity-scoring", _("Activity scoring"),
            _("Adds points for menu clicks, product views and form sign-ups, and tags customers who reach 50 points "
              "as high intent."),
            NURTURE, _activity_scoring,
            entry_policy=Journey.EntryPolicy.AFTER_COOLDOWN, cooldown_seconds=60,
        ),
    )
}  # fmt: skip


# -- using a template ------------------------------------------------------------------------------


def accounts_by_channel() -> Accounts:
    """The workspace's first active account of each channel (0 where it has none: validation says so)."""
    first: dict[str, int] = {}
    for channel, account_id in (
        ChannelAccount.objects.exclude(status=ChannelAccount.Status.PAUSED)
        .order_by("pk")
        .values_list("channel", "pk")
    ):
        first.setdefault(channel, account_id)
    return lambda channel: first.get(channel, 0)


def template_needs(template: JourneyTemplate) -> dict:
    """What the template names, by kind, for the gallery to show before it is used."""
    graph = template.graph(lambda channel: 0)
    needs: dict[str, set] = defaultdict(set)
    for node in graph["nodes"]:
        config = node["config"]
        for key in ("template", "default_template"):
            if key in config:
                needs["message_templates"].add(config[key])
        needs["message_templates"].update(script["template"] for script in config.get("scripts", []))
        if "segment" in config:
            needs["segments"].add(config["segment"])
        if "stage" in config:
            needs["stages"].add(config["stage"])
        if "tag" in config:
            needs["tags"].add(config["tag"])
        for branch in config.get("branches", []):
            if "tag" in branch.get("rule", {}):
                needs["tags"].add(branch["rule"]["tag"])
    return {
        "tags": sorted(needs["tags"]),
        "segments": [
            {
                "key": key,
                "name": str(template.suggested_segments.get(key, ("", {}))[0]),
                "suggested_rule": template.suggested_segments.get(key, ("", None))[1],
            }
            for key in sorted(needs["segments"])
        ],
        "stages": sorted(needs["stages"]),
        "message_templates": sorted(needs["message_templates"]),
    }


def templates_list() -> list[dict]:
    return [
        {
            "key": template.key,
            "name": str(template.name),
            "description": str(template.description),
            "category": str(template.category),
            "entry_policy": template.entry_policy,
            "needs": template_needs(template),
            "graph": template.graph(lambda channel: 0),
        }
        for template in TEMPLATES.values()
    ]


def _tags_ensure(graph: dict, actor) -> list[str]:
    """Creates the tags and tag groups the graph names that the workspace lacks; returns the new tags' keys."""
    wanted = set()
    for node in graph["nodes"]:
        config = node["config"]
        if node["type"] in {"add_tag", "remove_tag", "tag_added_trigger"}:
            wanted.add(config["tag"])
        for branch in config.get("branches", []):
            if "tag" in branch.get("rule", {}):
                wanted.add(branch["rule"]["tag"])
        for script in config.get("scripts", []):
            for name, tags in TAG_GROUPS.values():
                if str(name) == script["tag_group"]:
                    wanted.update(tags)
                    TagGroup.objects.get_or_create(name=str(name))
    existing = set(Tag.objects.filter(key__in=wanted).values_list("key", flat=True))
    groups = {str(name): tags for name, tags in TAG_GROUPS.values()}
    created = []
    for key in sorted(wanted - existing):
        group_name = next((name for name, tags in groups.items() if key in tags), None)
        group = TagGroup.objects.filter(name=group_name).first() if group_name else None
        tag_save(key=key, name=str(TAG_NAMES.get(key, key)), group=group, actor=actor)
        created.append(key)
    return created


@transaction.atomic
def journey_from_template(*, key: str, actor, name: str = "") -> tuple[Journey, list[str], list[dict]]:
    """A new draft journey from a gallery template, made concrete for this workspace (see the module's
    docstring): (the journey, the tags created, what publishing would still refuse)."""
    template = TEMPLATES.get(key)
    if template is None:
        raise LookupError(key)
    graph = template.graph(accounts_by_channel())
    created = _tags_ensure(graph, actor)
    journey = journey_save(
        name=name.strip() or str(template.name),
        description=str(template.description),
        draft_graph=graph,
        entry_policy=template.entry_policy,
        cooldown_seconds=template.cooldown_seconds,
        entry_key_property=template.entry_key_property,
        actor=actor,
    )
    return journey, created, graph_validate(graph)
