"""The one redaction path: phones, emails and ID numbers masked by the key they sit under (English
and Chinese spellings) and by their shape in any text; the value untouched for those with
``view_pii``."""

from types import SimpleNamespace

import pytest

from cdp.redaction import redact, redact_fields, redact_text, redact_under


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("回电 +86 139-1234-5678", "回电 +86 139****5678"),
        ("139 1234 5678", "139****5678"),
        ("8613912345678", "+86 139****5678"),
        ("tel:13912345678", "tel:139****5678"),
        ("call +14155550123 now", "call +141****0123 now"),
        ("身份证 11010519900307123X 已核", "身份证 •••• 已核"),
        ("mail Li.Lei+x@example.com.cn", "mail L****@example.com.cn"),
        ("order 20261207123456 total 1390", "order 20261207123456 total 1390"),  # not personal data
    ],
)
def test_phones_emails_and_id_numbers_are_masked_inside_any_text(text, shown):
    assert redact_text(text) == shown


def test_keys_in_english_and_chinese_spellings_mask_their_values_whole():
    traits = {
        "phoneNumber": "13912345678",
        "contact_phone": 13912345678,
        "手机号": "139 1234 5678",
        "邮箱": "li@example.cn",
        "身份证号": "110105199003071234",
        "id_card": "any",
        "nested": {"mobile": "13912345678", "notes": ["call 13912345678"]},
        "externalIds": [{"type": "phone", "id": "13912345678"}],
        "visits": 5,
        "vip": True,
    }
    assert redact(traits, show_pii=False) == {
        "phoneNumber": "139****5678",
        "contact_phone": "139****5678",
        "手机号": "139****5678",
        "邮箱": "l****@example.cn",
        "身份证号": "••••",
        "id_card": "••••",
        "nested": {"mobile": "139****5678", "notes": ["call 139****5678"]},
        "externalIds": [{"type": "phone", "id": "139****5678"}],
        "visits": 5,
        "vip": True,
    }
    assert redact(traits, show_pii=True) is traits


def test_a_value_under_a_key_and_rows_about_to_be_shown():
    assert redact_under("email", "li@example.cn", show_pii=False) == "l****@example.cn"
    assert redact_under("user_id", "u-13912345678", show_pii=False) == "u-139****5678"
    assert redact_under("email", "li@example.cn", show_pii=True) == "li@example.cn"
    note = SimpleNamespace(text="回电 13912345678", author="王")
    row = {"recipient": "+8613912345678", "status": "sent"}
    assert redact_fields([note, row], "text", "recipient", show_pii=False) == [note, row]
    assert (note.text, note.author) == ("回电 139****5678", "王")
    assert row == {"recipient": "+86 139****5678", "status": "sent"}
