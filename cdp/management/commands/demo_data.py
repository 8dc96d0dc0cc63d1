from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cdp.demo import demo_load
from cdp.demo_customers import DEMO_PEOPLE, demo_customers_load
from connectors.demo import demo_channels_load, demo_messages_send
from segments.demo import demo_rules_load


class Command(BaseCommand):
    help = (
        "Creates the demo company and its staff users, then its customers with 90 days of events "
        "loaded through the ingest path (idempotent)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load the demo even with DJANGO_ENV=production (its passwords are public).",
        )
        parser.add_argument(
            "--skip-customers",
            action="store_true",
            help="Only the company and its staff users: no customers, no events.",
        )
        parser.add_argument(
            "--people",
            type=int,
            default=DEMO_PEOPLE,
            help=f"How many people the demo customers start from (default {DEMO_PEOPLE}).",
        )

    def handle(
        self,
        *args,
        allow_production: bool = False,
        skip_customers: bool = False,
        people: int = DEMO_PEOPLE,
        **options,
    ):
        if settings.PRODUCTION and not allow_production:
            raise CommandError("Refusing to create demo users with public passwords in production.")
        if people < 1:
            raise CommandError("--people must be at least 1.")
        users = demo_load()
        demo_channels_load()
        if not skip_customers:
            self._load_customers(people)
            self.stdout.write("Setting up the demo's tags, segments, lifecycle stages and scores...")
            self.stdout.flush()
            demo_rules_load()
            demo_messages_send()
        self.stdout.write(self.style.SUCCESS("Demo company ready. Log in with:"))
        for user in users:
            self.stdout.write(f"  {user.username:<10} password {user.password:<14} ({user.role})")

    def _load_customers(self, people: int) -> None:
        self.stdout.write("Loading the demo customers and their events through the ingest path...")
        self.stdout.flush()
        result = demo_customers_load(people=people)
        if result.already_loaded:
            self.stdout.write(f"Demo customers were already loaded ({result.seconds:.1f} s).")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {result.customers} demo customers ({result.merges} merges across channels, "
                f"{result.identities} identities) and {result.events} events in {result.seconds:.0f} s."
            )
        )
