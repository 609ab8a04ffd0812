"""How a map's items are cut into chunks for the actors (ray_actors.chunk_size): no Ray needed."""

from __future__ import annotations

from pyjoy.engine.ray_actors import MAX_CHUNK, chunk_size


def chunks(count: int, replicas: int, item_seconds: float) -> list[int]:
    """The chunks a map of `count` items is cut into, items timed after the first 2 x replicas chunks."""
    sizes: list[int] = []
    while sum(sizes) < count:
        sizes.append(chunk_size(count - sum(sizes), replicas, item_seconds if len(sizes) >= 2 * replicas else 0.0))
    return sizes


def test_chunks_shrink_towards_the_end_but_not_under_twenty_ms_of_items() -> None:
    # Guided: a quarter of what is left with 2 replicas, the first ones before any timing.
    assert chunks(96, 2, 0.0)[:4] == [24, 18, 14, 10]
    assert chunks(96, 2, 0.0)[-4:] == [1, 1, 1, 1]  # not timed: down to single items
    # 5 ms items: the end's chunks keep 4 (20 ms); 0.1 ms items: 200 would be 20 ms, at most 64.
    assert chunks(96, 2, 0.005) == [24, 18, 14, 10, 8, 6, 4, 4, 4, 4]
    assert all(size == MAX_CHUNK for size in chunks(1000, 2, 0.0001)[:-1])
    # Slow items (a second each): the guided size, down to 1.
    assert chunks(10, 2, 1.0) == [3, 2, 2, 1, 1, 1]
    for count in (1, 7, 96, 1000):  # every item in exactly one chunk, none empty
        for seconds in (0.0, 0.001, 0.02, 2.0):
            sizes = chunks(count, 3, seconds)
            assert sum(sizes) == count and min(sizes) >= 1 and max(sizes) <= MAX_CHUNK
