from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cdp.demo import demo_load


class Command(BaseCommand):
    help = "Creates the demo company and its staff users (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load the demo even with DJANGO_ENV=production (its passwords are public).",
        )

    def handle(self, *args, allow_production: bool = False, **options):
        if settings.PRODUCTION and not allow_production:
            raise CommandError("Refusing to create demo users with public passwords in production.")
        users = demo_load()
        self.stdout.write(self.style.SUCCESS("Demo company ready. Log in with:"))
        for user in users:
            self.stdout.write(f"  {user.username:<10} password {user.password:<14} ({user.role})")
