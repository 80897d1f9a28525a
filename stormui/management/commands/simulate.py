from django.conf import settings
from django.core.management.base import BaseCommand

from clusterstate import MemoryStore, mk_distributed_cluster_state, mk_memory_cluster_state
from clusterstate.simulate import add_arguments, simulator_from_args, stop_on_signals
from stormui.source import storm_conf


class Command(BaseCommand):
    help = "Play a Storm master, its supervisors and their tasks against the configured store."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        if settings.STORMUI_STORE == "memory":
            store = MemoryStore()
            root = settings.STORMUI_ZK_ROOT

            def factory():
                return mk_memory_cluster_state(store, root=root)
        else:
            conf = storm_conf()

            def factory():
                return mk_distributed_cluster_state(conf)

        simulator = simulator_from_args(_Namespace(options), factory)
        self.stdout.write(f"simulating against {settings.STORMUI_STORE} {settings.STORMUI_ZK_ROOT}")
        # SIGTERM (make stop) stops it as Ctrl-C does: its sessions close, so its supervisors
        # and their tasks vanish at once rather than a session timeout later
        stop_on_signals()
        try:
            simulator.run(options.get("duration") or None)
        except KeyboardInterrupt:
            pass
        finally:
            simulator.stop()


class _Namespace:
    def __init__(self, options):
        self.__dict__.update(options)
