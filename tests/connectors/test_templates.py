"""Message templates: sandboxed, variables from traits and event properties, problems by field,
unknown variables reported before saving, a preview for a real customer."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from cdp.models import Customer
from connectors.models import MessageTemplate
from connectors.services import template_save
from connectors.templating import body_problems, body_render, variables_context


def test_variables_come_from_traits_and_event_properties_and_missing_ones_are_listed():
    customer = Customer(pk=7, name="李雷", traits={"city": "深圳", "vip": 3})
    rendered = body_render(
        channel="sms",
        body={"template_code": "SMS_9",
              "params": {"name": "{{ customer.name }}", "order": "{{ event.order_id }}"},
              "text": "{{ traits.city }}的{{ customer.name }}，VIP{{ traits.vip }}，{{ traits.company }}"},
        context=variables_context(customer=customer, event_properties={"order_id": "SO-1"}),
    )  # fmt: skip
    assert rendered.content["params"] == {"name": "李雷", "order": "SO-1"}
    assert rendered.content["text"] == "深圳的李雷，VIP3，"
    assert rendered.missing == ["traits.company"]


def test_problems_are_reported_by_field():
    problems = body_problems(channel="email", body={"subject": "", "html": "{% if %}", "colour": "red"})
    assert problems["subject"] == "This field is required."
    assert problems["html"].startswith("Line 1:")
    assert problems["colour"] == "This channel has no field “colour”."
    assert body_problems(channel="sms", body={"template_code": "S", "params": {"a": "{{ x"}})["params.a"]


def test_the_sandbox_refuses_python_internals():
    from connectors.templating import TemplateInvalid

    with pytest.raises(TemplateInvalid) as refused:
        body_render(
            channel="wecom", body={"text": "{{ traits.__class__ }}"}, context=variables_context(customer=None)
        )
    assert "not allowed" in refused.value.problems["text"]


def test_saving_reports_variables_no_customer_has_unless_confirmed(db):
    body = {"text": "{{ traits.citty }} {{ traits.city }} {{ event.sku }}"}
    with pytest.raises(ValidationError) as refused:
        template_save(key="hello", name="你好", channel="wecom", body=body, known_traits={"city"})
    assert "traits.citty" in refused.value.message_dict["body"][0]
    assert "traits.city," not in refused.value.message_dict["body"][0]
    saved = template_save(
        key="hello", name="你好", channel="wecom", body=body, known_traits={"city"}, allow_unknown=True
    )
    assert MessageTemplate.objects.get().pk == saved.pk


def test_the_page_refuses_an_invalid_template_and_previews_for_a_customer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    customer = Customer.objects.create(name="韩梅梅", traits={"city": "成都"})
    url = reverse("message_template_new", args=["email"])
    response = client.post(
        url, {"key": "promo", "name": "促销", "subject": "", "html": "{% for %}"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "This field is required." in page
    assert "Line 1:" in page
    assert not MessageTemplate.objects.exists()

    preview = client.post(
        reverse("message_template_preview", args=["email"]),
        {"subject": "{{ customer.name }}，{{ traits.city }}见", "text": "{{ traits.level }}",
         "preview_customer": str(customer.pk)},
    )  # fmt: skip
    content = preview.content.decode()
    assert "韩梅梅，成都见" in content
    assert "traits.level" in content


# -- bounded work (security review, finding 3) ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # 3.1 s of one big-integer power holding the interpreter lock, before these limits.
        ("{{ (7 ** 5764801) % 10 }}", "The exponent is too large"),
        ("{{ 'x' * 10 ** 9 }}", "The repetition is too large"),
        ("{{ '%999999999d' % 1 }}", "A width or precision in the format is too large"),
        ("{{ '{:>999999999}'.format(1) }}", "A width or precision in the format is too large"),
        ("{{ 'x'|center(999999999) }}", "The width 999999999 is too large"),
        ("{{ range(100000)|join('x' * 10000) }}", "A range may hold at most"),
        (
            "{% set a = 'xxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}",
            "builds a text or list longer",
        ),
        (
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            "loops run more than 100000 times",
        ),
        (
            "{% for x in [1] recursive %}{{ loop([1, 1]) }}{% endfor %}",
            "Recursive loops are not allowed",
        ),
        ("{{ " + "(" * 600 + "1" + ")" * 600 + " }}", "nested too deeply"),
        ("x" * 100_001, "The template is too long"),
    ],
)
def test_costly_templates_are_refused_before_they_run_where_the_marketer_edits_them(text, problem):
    assert problem in body_problems(channel="wecom", body={"text": text})["text"]
    from connectors.templating import TemplateInvalid

    with pytest.raises(TemplateInvalid) as refused:
        body_render(channel="wecom", body={"text": text}, context=variables_context(customer=None))
    assert problem in refused.value.problems["text"]


def test_ordinary_arithmetic_and_formatting_still_work():
    rendered = body_render(
        channel="wecom",
        body={
            "text": "{{ 2 ** 10 }} {{ 3 * 4 }} {{ 'ab' * 3 }} {{ 1 + 2 }} "
            "{{ '%05.1f' % 3.14159 }} {{ 'a' ~ 'b' }}"
        },
        context=variables_context(customer=None),
    )
    assert rendered.content["text"] == "1024 12 ababab 3 003.1 ab"


def test_a_preview_of_a_huge_power_answers_with_the_problem_not_a_stall(client, user_in_role):
    client.force_login(user_in_role("Marketer"))  # previews are for those who write templates
    customer = Customer.objects.create(name="韩梅梅", traits={"city": "成都"})
    preview = client.post(
        reverse("message_template_preview", args=["wecom"]),
        {
            "text": "{{ (7 ** 5764801) % 10 }}",
            "preview_customer": f"#{customer.pk}",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert preview.status_code == 200
    assert "The exponent is too large" in preview.content.decode()


# -- the webhook payload is JSON (security review, finding 14) --------------------------------------


def test_a_trait_cannot_add_fields_to_a_webhook_payload():
    customer = Customer(pk=7, name='x","vip":true,"a":"', traits={"tags": ["a", '"b']})
    rendered = body_render(
        channel="webhook",
        body={
            "payload": '{"name": "{{ customer.name }}", "id": {{ customer.id }}, '
            '"tags": {{ traits.tags|tojson }}}'
        },
        context=variables_context(customer=customer),
    )
    assert rendered.content["payload"] == {
        "name": 'x","vip":true,"a":"',
        "id": 7,
        "tags": ["a", '"b'],
    }


def test_a_webhook_payload_must_be_a_json_object():
    from connectors.templating import TemplateInvalid

    customer = Customer(pk=7, name="李雷", traits={"n": "1, 2"})
    with pytest.raises(TemplateInvalid) as refused:
        body_render(
            channel="webhook",
            body={"payload": "[{{ traits.n }}]"},
            context=variables_context(customer=customer),
        )
    assert refused.value.problems["payload"] == "The payload must be a JSON object ({…})."
