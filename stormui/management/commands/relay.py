import asyncio
import signal

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from stormui import live
from stormui.source import reset_source


class Command(BaseCommand):
    help = (
        "Relay ZooKeeper's changes to the live pages of every daphne through Redis "
        "(REDIS_URL). Run exactly one; without REDIS_URL daphne relays itself."
    )

    def handle(self, *args, **options):
        live.mark_relay_process()
        if live.process_local(get_channel_layer()):
            raise CommandError("REDIS_URL is unset: each daphne relays its own changes")
        try:
            asyncio.run(self._relay())
        finally:
            reset_source()

    async def _relay(self):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await live.ensure_relay()
        self.stdout.write("relaying ZooKeeper's changes to the channel layer", ending="\n")
        self.stdout.flush()
        await stop.wait()
        live.stop_relay()
