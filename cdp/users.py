"""Small helpers about staff users shared by services, views and templates."""


def display_name(user) -> str:
    """The name people recognise: the full name when there is one, else the username."""
    return user.get_full_name() or user.get_username()
