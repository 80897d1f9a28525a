"""``manage.py run_scheduled``: run the removals that kill/<wait-secs> scheduled."""

from django.core.management.base import BaseCommand

from stormui.scheduler import Scheduler, run_due


class Command(BaseCommand):
    help = "Run the scheduled storm removals that are due (with --loop, keep running them)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop",
            action="store_true",
            help="keep running, removing each storm when its removal falls due",
        )

    def handle(self, *args, loop=False, **options):
        if loop:
            scheduler = Scheduler()
            try:
                scheduler._run()
            except KeyboardInterrupt:
                pass
            return
        results = run_due()
        for result in results:
            self.stdout.write(f"remove {result.storm_id}: {result.outcome} ({result.message})")
        if not results:
            self.stdout.write("nothing due")
