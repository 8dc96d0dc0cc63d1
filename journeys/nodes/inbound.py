"""Triggers on what customers send us: a form submitted, a follow of the WeChat Official Account or a
scan of its parametric QR code, and a call to the journey's own enrollment endpoint."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.utils.translation import gettext_lazy
from pydantic import Field, field_validator

from journeys.nodes import node_type
from journeys.nodes.base import NodeConfig, TriggerType
from segments.evaluator import properties_match
from segments.rules import PropertyFilter

# What hosted forms and form tools (金数据, the website's SDK) track, with ``form_id`` and ``form_name``.
FORM_EVENT = "Form Submitted"
# What the Official Account's event push becomes (connectors.kinds.sandbox_wechat_template).
WECHAT_EVENTS = {"follow": "wechat_follow", "scan": "wechat_qr_scanned"}
# Never tracked: an API trigger starts only through ``POST /api/journeys/<id>/enroll/``.
API_TRIGGER_EVENT = "journey_api_enroll"


class FormTriggerConfig(NodeConfig):
    form: str = Field(
        min_length=1, max_length=200, description="The form's id (form_id) or its name (form_name)."
    )
    where: list[PropertyFilter] = Field(
        default_factory=list, max_length=10, description="Filters on the submitted fields."
    )


@node_type("form_submitted_trigger")
class FormSubmittedTrigger(TriggerType):
    label = gettext_lazy("Form submitted")
    description = gettext_lazy("Starts when the customer submits a form, optionally with field filters.")
    icon = "form"
    config = FormTriggerConfig

    def trigger_event(self, config: FormTriggerConfig) -> str:
        return FORM_EVENT

    def trigger_matches(self, config: FormTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        if not isinstance(properties, dict):
            return False
        named = config.form in (str(properties.get("form_id", "")), str(properties.get("form_name", "")))
        return named and properties_match(properties, config.where, today)


class WechatTriggerConfig(NodeConfig):
    on: Literal["follow", "scan"] = Field(
        "follow",
        description="A new follower (follow), or a follower scanning a parametric QR code (scan).",
    )
    scene: str = Field(
        "",
        max_length=64,
        description="Only through the parametric QR code with this scene value (empty: any).",
    )


@node_type("wechat_trigger")
class WechatTrigger(TriggerType):
    label = gettext_lazy("Follows or scans on WeChat")
    description = gettext_lazy(
        "Starts when the customer follows the Official Account or scans one of its QR codes."
    )
    icon = "qr"
    config = WechatTriggerConfig

    def trigger_event(self, config: WechatTriggerConfig) -> str:
        return WECHAT_EVENTS[config.on]

    def trigger_matches(self, config: WechatTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        if not config.scene:
            return True
        return isinstance(properties, dict) and str(properties.get("scene", "")) == config.scene


class ApiTriggerConfig(NodeConfig):
    required_context: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Context fields a caller must send (the journey's templates and waits read them).",
    )

    @field_validator("required_context")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        if any(not name.strip() or len(name) > 100 for name in names):
            raise ValueError("each field is a name of 1 to 100 characters")
        return names


@node_type("api_trigger")
class ApiTrigger(TriggerType):
    label = gettext_lazy("Called over the API")
    description = gettext_lazy(
        "Starts when another system enrolls the customer through the journey's enroll endpoint."
    )
    icon = "plug"
    config = ApiTriggerConfig

    def trigger_event(self, config: ApiTriggerConfig) -> str:
        return API_TRIGGER_EVENT

    def trigger_matches(self, config: ApiTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        return False  # no tracked event starts it, only the enroll endpoint
