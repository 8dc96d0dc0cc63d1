import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "a-long-test-password-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    # A staff name no test gives a customer: a generated one (赵敏, 李娜) appeared in the page header
    # where a test looked for a customer's name.
    first_name = factory.Sequence(lambda n: f"员工{n}号")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, role_name, **kwargs):
        if role_name:
            self.groups.set([Group.objects.get(name=role_name)])
        if create:
            self.save()
