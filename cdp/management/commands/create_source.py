from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from cdp.models import Source
from cdp.services import source_create


class Command(BaseCommand):
    help = "Creates a data source and prints its write key (the Basic auth user name of the tracking API)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Source.Kind.values)

    def handle(self, *args, name: str, kind: str, **options):
        try:
            source = source_create(name=name, kind=kind)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(source.write_key)
