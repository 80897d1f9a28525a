import asyncio
import signal

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from stormui import leader, live
from stormui.source import reset_source


class Command(BaseCommand):
    help = (
        "Stand for election as the leader without serving (REDIS_URL): once elected, relay "
        "ZooKeeper's changes to the live pages of every daphne and write the history. Every "
        "daphne stands as well; without REDIS_URL daphne leads itself."
    )

    def handle(self, *args, **options):
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
        if live.elects():
            live.stand_for_election(loop)
            said = "relaying ZooKeeper's changes to the channel layer once elected leader"
        else:  # STORMUI_RELAY=true: this process relays, elected or not
            await live.ensure_relay()
            said = "relaying ZooKeeper's changes to the channel layer"
        self.stdout.write(said, ending="\n")
        self.stdout.flush()
        await stop.wait()
        live.stop_relaying()
        await asyncio.to_thread(leader.withdraw)
        await asyncio.to_thread(live.stop_writers)
