"""The demo company's channels: a sandbox account for every channel kind, a few templates, and a
first handful of messages to demo customers, so the Messages page has lives to show."""

from __future__ import annotations

from django.db import transaction

from cdp.models import Customer, Identity
from connectors.accounts import account_create
from connectors.models import ChannelAccount, MessageTemplate
from connectors.services import message_enqueue

DEMO_ACCOUNTS = (
    ("sandbox_wechat_template", "弱电优选服务号（沙箱）", {"receipt_delay_seconds": 3, "failure_rate": 0.05}),
    ("sandbox_wecom", "企业微信（沙箱）", {"receipt_delay_seconds": 3}),
    (
        "sandbox_sms",
        "阿里云短信（沙箱）",
        {"latency_ms": 50, "receipt_delay_seconds": 5, "failure_rate": 0.08},
    ),
    ("sandbox_email", "SendCloud 邮件（沙箱）", {"receipt_delay_seconds": 5, "failure_rate": 0.03}),
    ("sandbox_call", "AI 外呼（沙箱）", {"receipt_delay_seconds": 10, "failure_rate": 0.4}),
    ("sandbox_webhook", "ERP 回调（沙箱）", {"receipt_delay_seconds": 2}),
)

DEMO_TEMPLATES = (
    ("sms-cart", "购物车提醒", "sms", {
        "template_code": "SMS_274410001",
        "params": {"name": "{{ customer.name }}"},
        "text": "【弱电优选】{{ customer.name }}您好，您购物车里的商品库存不多了，点击查看 https://demo.ruodian.example/cart",
    }),
    ("email-double11", "双十一采购节", "email", {
        "subject": "{{ customer.name }}，双十一采购节专属价已开启",
        "html": "<p>{{ customer.name }}您好：</p><p>监控、门禁、智能家居全场满 5000 减 300。"
                "<a href=\"https://demo.ruodian.example/double11\">立即查看</a></p>",
    }),
    ("wechat-order", "订单发货通知", "wechat_template", {
        "template_id": "OPENTM200565259",
        "url": "https://demo.ruodian.example/orders",
        "fields": {"first": "{{ customer.name }}，您的订单已发货", "remark": "感谢您选择弱电优选"},
    }),
)  # fmt: skip


@transaction.atomic
def demo_channels_load() -> list[ChannelAccount]:
    """Creates what is missing; running it again changes nothing."""
    accounts = []
    for kind, name, values in DEMO_ACCOUNTS:
        account = ChannelAccount.objects.filter(name=name).first()
        if account is None:
            account = account_create(
                kind=kind,
                name=name,
                values={**values, "callback_secret": f"demo-{kind}-callback"},
                rate_per_second=50,
            )
        accounts.append(account)
    for key, name, channel, body in DEMO_TEMPLATES:
        MessageTemplate.objects.get_or_create(
            key=key, defaults={"name": name, "channel": channel, "body": body}
        )
    return accounts


def demo_messages_send(*, count: int = 30) -> int:
    """Queues the cart reminder to the first demo customers with a phone (idempotent keys)."""
    account = ChannelAccount.objects.filter(kind="sandbox_sms").order_by("pk").first()
    template = MessageTemplate.objects.filter(key="sms-cart").first()
    if account is None or template is None:
        return 0
    customer_ids = (
        Identity.objects.filter(type="phone", customer__merged_into__isnull=True)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)[:count]
    )
    created = 0
    for customer in Customer.objects.filter(pk__in=list(customer_ids)):
        _message, new = message_enqueue(
            account=account,
            customer=customer,
            idempotency_key=f"demo:sms-cart:{customer.pk}",
            template=template,
            origin="journey",
        )
        created += new
    return created
