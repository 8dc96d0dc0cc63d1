#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    from django.core.management import execute_from_command_line

    from cdp.config import ConfigurationError

    try:
        execute_from_command_line(sys.argv)
    except ConfigurationError as error:
        # A configuration problem is the operator's to fix: say what it is, without a traceback.
        sys.exit(str(error))
