from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from cdp.models import CustomerScope, Team
from cdp.staff_roles import role_choices, team_choices

User = get_user_model()


class UserForm(forms.Form):
    full_name = forms.CharField(label=_("Name"), max_length=150)
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), choices=role_choices)
    team = forms.ChoiceField(
        label=_("Team"),
        choices=team_choices,
        required=False,
        help_text=_("A role that sees its team's customers shows those owned by anyone in this team."),
    )

    def clean_team(self) -> Team | None:
        team_id = self.cleaned_data.get("team")
        return Team.objects.filter(pk=team_id).first() if team_id else None


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
    field_order = ["full_name", "username", "email", "role", "team", "password"]


def scope_choices() -> list[tuple[str, str]]:
    return list(CustomerScope.choices)


class RoleCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=150)
    template = forms.ChoiceField(
        label=_("Start from"),
        required=False,
        choices=lambda: [("", _("No capabilities")), *role_choices()],
        help_text=_("The new role starts with that role's capabilities; tick others in the matrix."),
    )
    scope = forms.ChoiceField(label=_("Customers it sees"), choices=scope_choices, initial=CustomerScope.ALL)


class RoleRenameForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=150)


class TeamCreateForm(forms.Form):
    name = forms.CharField(label=_("Team name"), max_length=100)
