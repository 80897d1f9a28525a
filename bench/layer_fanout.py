"""One ``group_send`` to many channels: Channels' in-memory layer against ours.

Each of ``--channels`` channels has a receiver waiting in ``receive``, as a
socket's consumer does, which calls ``receive`` again as soon as a message
comes. Timed, median of ``--repeats`` rounds, per layer:

- ``group_send`` alone: the sender's cost (the stock layer awaits a task per
  channel, so the receivers run, and sweep, before its ``group_send`` returns);
- delivered: from before the ``group_send`` until every receiver has its
  message and waits again, which counts the work each ``receive`` does (the
  stock layer sweeps every channel there: N receives of N channels).

The message is a relay event: a type and about a kilobyte of JSON text.

    .venv/bin/python -m bench.layer_fanout --channels 500 --repeats 21
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from channels.layers import InMemoryChannelLayer

from stormui.layers import FanOutChannelLayer

GROUP = "errors"
MESSAGE = {"type": "errors.reported", "text": '{"errors":[' + '"x",' * 200 + '"x"]}'}


async def measure(layer, channels: int, repeats: int) -> tuple[float, float]:
    """Median seconds of (group_send alone, group_send until every receiver has its message)."""
    names = [await layer.new_channel() for _ in range(channels)]
    for name in names:
        await layer.group_add(GROUP, name)
    got = 0
    everyone = asyncio.Event()

    async def receiver(name: str) -> None:
        nonlocal got
        while True:
            await layer.receive(name)
            got += 1
            if got == channels:
                everyone.set()

    tasks = [asyncio.create_task(receiver(name)) for name in names]
    await asyncio.sleep(0)  # every receiver now waits
    sends, deliveries = [], []
    for _ in range(repeats + 1):  # the first round warms up
        got = 0
        everyone.clear()
        start = time.perf_counter()
        await layer.group_send(GROUP, MESSAGE)
        sent = time.perf_counter()
        await everyone.wait()
        done = time.perf_counter()
        sends.append(sent - start)
        deliveries.append(done - start)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return statistics.median(sends[1:]), statistics.median(deliveries[1:])


async def main(args) -> None:
    results = {}
    for name, layer in (
        ("stock InMemoryChannelLayer", InMemoryChannelLayer()),
        ("FanOutChannelLayer", FanOutChannelLayer()),
    ):
        results[name] = await measure(layer, args.channels, args.repeats)
    print(f"{args.channels} channels, median of {args.repeats} rounds")
    print(f"{'layer':<28} {'group_send':>12} {'delivered':>12}")
    for name, (send, delivered) in results.items():
        print(f"{name:<28} {send * 1e3:>9.2f} ms {delivered * 1e3:>9.2f} ms")
    (stock_send, stock_all), (ours_send, ours_all) = results.values()
    ratios = f"{stock_send / ours_send:>11.1f}x {stock_all / ours_all:>11.1f}x"
    print(f"{'ratio stock / ours':<28} {ratios}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=21)
    asyncio.run(main(parser.parse_args()))
