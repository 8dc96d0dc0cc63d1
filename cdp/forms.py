from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from cdp.access import ROLE_CAPABILITIES, ROLE_LABELS

User = get_user_model()


def role_choices() -> list[tuple[str, str]]:
    return [(role, ROLE_LABELS[role]) for role in ROLE_CAPABILITIES]


class UserForm(forms.Form):
    full_name = forms.CharField(label=_("Name"), max_length=150)
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), choices=role_choices)


class UserCreateForm(UserForm):
    username = forms.RegexField(
        label=_("Username"),
        max_length=150,
        regex=r"^[\w.@+-]+$",
        error_messages={"invalid": _("Use letters, digits and @ . + - _ only.")},
        help_text=_("Used to log in."),
    )
    password = forms.CharField(
        label=_("Password"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Leave empty to get an invitation link the user opens to choose a password."),
    )
    field_order = ["full_name", "username", "email", "role", "password"]
