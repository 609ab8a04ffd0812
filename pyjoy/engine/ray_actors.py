"""The engine on a Ray cluster (`pyjoy engine --ray [ADDRESS]`): plugins as Ray actors.

    cluster = Cluster.connect(address, workdir, init_options)   # ray.init: a cluster, or a local Ray
    process = await RayPluginProcess.start(plugin, cluster, on_item, on_output, progress)
    process.send(frame); process.abort(); process.check_room()  # as processes.PluginProcess
    status = await process.exited; await process.stop()
    results = await process.map("method", items, progress)      # over the plugin's replicas, in input order
    cluster.shutdown()

The engine stays the gateway the page talks to (the same WebSocket, token and frames); a
plugin instance is a Ray actor (ray_worker.PluginActor) running the plugin as a plugin
process would, placed by the plugin's `resources`, its requirements installed on the node
through Ray's `runtime_env` (pip), and the engine's runtime (pyjoy, imjoy) shipped as
`py_modules`. The page's messages are relayed as whole messages (`deliver`), the plugin's
come back from `outbox`; their buffers go through Ray's object store as numpy arrays.

`"replicas": N` starts N actors: the first is the plugin the page loads (its channel, its
callbacks); it spreads the page's calls over all of them (ray_worker.py, `spread`: it is
given the others' handles, `set_peers`); `map` spreads one function over items across all
of them in chunks (one Ray call per chunk), results in input order. A replica past the first
that dies (the engine waits on its `until_ended`) fails what it was running, saying so, and
is started again; the first dying is the plugin exiting, as a crashed process is (its
pending calls fail at once with the reason). A request no node can satisfy is refused before any actor is
made, naming what is missing.

A lost cluster (ENGINE.md, "A lost cluster"): Ray's driver cannot outlive its cluster in one
process (its core worker exits, or aborts when a new head answers, and ray.init cannot be
called again cleanly), so a `--ray` engine runs under a supervisor (server.supervise). The
engine watches the head's GCS port (`Cluster.watch`); when it stops answering, the Ray
plugins end with the reason naming the cluster (their pending calls fail with it) and the
engine exits with CLUSTER_LOST_STATUS. The supervisor then runs it without Ray (`LostCluster`:
info() says the cluster is lost, start refuses saying so) while it tries the head again with
backoff; once the head answers, it exits with CLUSTER_BACK_STATUS and the supervisor starts
the engine connected again (same port and token: the page reconnects on its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyjoy.engine import wire
from pyjoy.engine.envs import ENGINE_TOKEN_VARIABLE, RequirementError, classify
from pyjoy.engine.processes import MAX_UNREAD_BYTES, BoundedOutput, OnItem, OnOutput, runtime_dir

#: The most replicas a plugin may ask for.
MAX_REPLICAS = 64
#: Calls a map keeps in flight per replica: the next chunk is on its way while one runs.
IN_FLIGHT_PER_REPLICA = 2
#: A map's items go to the actors in chunks (one Ray call each), each a share of the items
#: left: 1 / (replicas * CHUNKS_PER_REPLICA) of them (guided self-scheduling), so that the
#: chunks shrink towards the end and the replicas finish together, progress comes in steps,
#: and at most MAX_CHUNK items are in one (a chunk's items are in the object store at once).
CHUNKS_PER_REPLICA = 2
MAX_CHUNK = 64
#: ...and once the first chunks said how long an item takes, at least this many seconds of
#: items: a Ray call whose arguments go through the object store costs about 2 ms of CPU
#: (the gateway's and the raylet's, bench/cluster.py), taken from the replicas' cores, so the
#: chunks of a map's end stay about 10x that (5 ms images: 4 a chunk, not 1).
MIN_CHUNK_SECONDS = 0.02
#: How long an actor may take to be placed and start (its requirements installed) before its start fails.
READY_TIMEOUT_S = 600.0
PROGRESS_INTERVAL_S = 0.1
#: The exit statuses by which a `--ray` engine tells its supervisor the cluster was lost, or answers again.
CLUSTER_LOST_STATUS = 75
CLUSTER_BACK_STATUS = 76
#: The head's GCS port is tried this often; this many failures in a row is a lost cluster.
WATCH_INTERVAL_S = 1.0
LOST_AFTER_FAILURES = 3
#: How often the head is asked whether the engine's own node (its raylet) is alive; the head
#: itself takes 15-20 s to count a dead raylet as dead.
NODE_CHECK_S = 5.0
#: The waits between tries of a lost cluster's head.
RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
#: Where the engine keeps, in its workdir, the head's GCS address and why the cluster was lost.
STATE_FILE = "ray-cluster.json"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
Progress = Callable[[dict[str, Any]], None]


def cluster_name(address: str | None) -> str:
    """How every message names the cluster: its address, or `local` (a Ray of the engine's own)."""
    return f"the Ray cluster at {address or 'local'}"


class ClusterError(Exception):
    """What the cluster cannot do (an infeasible request, a failed start): the message says what."""


def parse_memory(value: Any) -> int:
    """`"4GB"`, `"512 MiB"`, or a number of bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B?)\s*", str(value), re.IGNORECASE)
    if not match or match.group(2).lower() not in _UNITS:
        raise ClusterError(f"resources: memory {value!r} should be a size such as \"4GB\" or \"512MiB\"")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def actor_options(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Ray's options from a plugin's `resources` (gpus, cpus, memory), and its replica count."""
    resources = config.get("resources") or {}
    if not isinstance(resources, dict):
        raise ClusterError(f"resources should be an object such as {{\"gpus\": 1, \"cpus\": 2, \"memory\": \"4GB\"}}, "
                           f"not {resources!r}")
    unknown = sorted(set(resources) - {"gpus", "cpus", "memory"})
    if unknown:
        raise ClusterError(f"resources: unknown {', '.join(map(repr, unknown))}; a plugin may ask for gpus, cpus and "
                           "memory")
    options: dict[str, Any] = {}
    for name, option in (("gpus", "num_gpus"), ("cpus", "num_cpus")):
        if name in resources:
            amount = resources[name]
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ClusterError(f"resources: {name} should be a number of at least 0, not {amount!r}")
            options[option] = amount
    if "memory" in resources:
        options["memory"] = parse_memory(resources["memory"])
    replicas = config.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        raise ClusterError(f"replicas should be a whole number from 1 to {MAX_REPLICAS}, not {replicas!r}")
    return options, replicas


def infeasible(options: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """Why no live node could ever hold an actor with `options` (its totals, not what is free now:
    a busy cluster is a wait, not a refusal); None when one could."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    wanted = {"GPU": options.get("num_gpus", 0), "CPU": options.get("num_cpus", 0), "memory": options.get("memory", 0)}
    if any(all(have.get(kind, 0) >= amount for kind, amount in wanted.items()) for have in alive):
        return None
    words = {"GPU": ("GPU", "GPUs"), "CPU": ("CPU", "CPUs"), "memory": ("bytes of memory", "bytes of memory")}
    for kind, amount in wanted.items():
        if amount and not any(have.get(kind, 0) >= amount for have in alive):
            largest = max((have.get(kind, 0) for have in alive), default=0)
            if kind == "GPU" and largest == 0:
                return "no node in the cluster has a GPU"
            one, many = words[kind]
            return (f"no node in the cluster has {amount:g} {one if amount == 1 else many} "
                    f"(the most one has is {largest:g})")
    return "no single node in the cluster has all of " + ", ".join(f"{amount:g} {kind}" for kind, amount in
                                                                   wanted.items() if amount)


def chunk_size(left: int, replicas: int, item_seconds: float = 0.0) -> int:
    """How many of a map's `left` items (not yet sent) go in the next actor call, items
    having taken `item_seconds` each so far (0: not known yet)."""
    floor = min(MAX_CHUNK, -(-MIN_CHUNK_SECONDS // item_seconds)) if item_seconds > 0 else 1
    return int(min(left, max(floor, min(MAX_CHUNK, -(-left // (replicas * CHUNKS_PER_REPLICA))))))


def gcs_answers(gcs: str, timeout: float = 1.0) -> bool:
    """Whether the head's GCS port (host:port) accepts a connection (no Ray call: a Ray call
    blocks while the GCS is down)."""
    host, _, port = gcs.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout):
            return True
    except (OSError, ValueError):
        return False


def read_state(workdir: Path) -> dict[str, Any]:
    try:
        state = json.loads((workdir / STATE_FILE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(workdir: Path, **state: Any) -> None:
    (workdir / STATE_FILE).write_text(json.dumps({**read_state(workdir), **state}))


class Cluster:
    """The engine's connection to Ray (one per engine)."""

    def __init__(self, address: str | None, gcs: str = "", workdir: Path | None = None) -> None:
        self.address = address
        self.gcs = gcs  # the head's GCS host:port, watched
        self.workdir = workdir
        self.processes: set[RayPluginProcess] = set()  # the plugins running on it, ended if it is lost

    @property
    def name(self) -> str:
        return cluster_name(self.address)

    def lost_reason(self) -> str | None:
        """Why the cluster is lost, when its head does not answer; None while it does."""
        if not self.gcs or gcs_answers(self.gcs):
            return None
        return f"{self.name} was lost: its head (GCS {self.gcs}) does not answer"

    async def watch(self) -> None:
        """Tries the head every WATCH_INTERVAL_S, and every NODE_CHECK_S whether the head
        still counts the node this engine's driver runs on (its raylet: with it gone, no actor
        starts and the driver is useless while the head answers; a local Ray is such a node);
        once lost, ends the Ray plugins saying so and exits for the supervisor to run the
        engine without Ray until the head answers (a local Ray: on a new one)."""
        failures, ticks = 0, 0
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            ticks += 1
            answers = await asyncio.to_thread(gcs_answers, self.gcs)
            failures = 0 if answers else failures + 1
            if failures >= LOST_AFTER_FAILURES:
                why = f"{self.name} was lost: its head (GCS {self.gcs}) has not answered for {failures:g} s"
            elif answers and ticks % round(NODE_CHECK_S / WATCH_INTERVAL_S) == 0 and not await self.own_node_alive():
                why = f"{self.name} was lost: the head counts this engine's node (its raylet) as dead"
            else:
                continue
            for process in list(self.processes):
                process.lose(why)
            if self.workdir is not None:
                write_state(self.workdir, lost=why)
            print(f"pyjoy engine: {why}; its plugins were ended; trying it again", file=sys.stderr, flush=True)
            await asyncio.sleep(1.0)  # the plugins' exits reach the pages
            os._exit(CLUSTER_LOST_STATUS)  # not ray.shutdown: it blocks on the lost head

    async def own_node_alive(self) -> bool:
        """False once the head lists the driver's node as not alive (True where it cannot tell:
        a Ray Client driver has no node of its own)."""
        import ray

        def check() -> bool:
            try:
                own = ray.get_runtime_context().get_node_id()
                return all(node.get("Alive") for node in ray.nodes() if node.get("NodeID") == own)
            except Exception:  # noqa: BLE001  the head between answers: its port watch decides
                return True

        return await asyncio.to_thread(check)

    @classmethod
    def connect(cls, address: str | None, workdir: Path, init_options: dict[str, Any] | None = None) -> Cluster:
        """ray.init, on the main thread (Ray sets its signal handlers there), before the engine serves.
        The engine's runtime goes with the job (`py_modules`: Ray uploads local folders for a job
        only), so every actor imports this engine's pyjoy and `imjoy`, whatever its node holds."""
        import ray

        # Ray's processes started here (a local Ray) inherit the environment: never the token.
        os.environ.pop(ENGINE_TOKEN_VARIABLE, None)
        runtime = runtime_dir(workdir)
        job_env: dict[str, Any] = {"py_modules": [str(runtime / "pyjoy"), str(runtime / "imjoy")]}
        if os.environ.get("PYJOY_APP_URL"):  # relative URLs of the app's files (pyjoy.onnx), as for a process
            job_env["env_vars"] = {"PYJOY_APP_URL": os.environ["PYJOY_APP_URL"]}
        options = {"include_dashboard": False, "namespace": "pyjoy", "logging_level": logging.WARNING,
                   "runtime_env": job_env, **(init_options or {})}
        # Without an address, a Ray of the engine's own: "local" starts one even where another
        # runs on this machine (ray.init() alone would join that one, as `auto` does).
        options["address"] = address or "local"
        ray.init(**options)
        gcs = ray.get_runtime_context().gcs_address
        write_state(workdir, gcs=gcs, lost="")
        return cls(address, gcs, workdir)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()

    async def describe(self) -> dict[str, Any]:
        """The cluster, for info(): its address, live nodes and their resources together."""
        import ray

        nodes = [node for node in await asyncio.to_thread(ray.nodes) if node.get("Alive")]
        totals: dict[str, float] = {}
        for node in nodes:
            for kind in ("CPU", "GPU", "memory"):
                totals[kind] = totals.get(kind, 0) + node.get("Resources", {}).get(kind, 0)
        return {"ray": ray.__version__, "state": "connected", "address": self.address or "local", "nodes": len(nodes),
                "resources": totals}

    async def check(self, options: dict[str, Any]) -> None:
        import ray

        why = infeasible(options, await asyncio.to_thread(ray.nodes))
        if why is not None:
            raise ClusterError(f"{why}: the plugin asks for {describe(options)}; it was not started")

    def runtime_env(self, config: dict[str, Any]) -> dict[str, Any]:
        """The actor's runtime_env: its pip requirements (the job's py_modules and env_vars are inherited)."""
        pip, conda, env_args = classify(list(config.get("requirements") or []), config.get("env"))
        if conda or env_args:
            raise RequirementError("conda requirements and env are not run on a Ray cluster yet; give the plugin "
                                   "pip: requirements, or run it on an engine without --ray")
        return {"pip": {"packages": pip, "pip_check": False}} if pip else {}


class LostCluster:
    """The engine's cluster while it is lost (run by the supervisor without Ray): info() says
    so, start refuses saying so, and its head is tried again with backoff."""

    def __init__(self, address: str | None, reason: str, gcs: str, tries: int = 0) -> None:
        self.address, self.reason, self.gcs = address, reason, gcs
        self.tries = tries  # the lost runs before this one in a row: its backoff goes on from there
        self.processes: set[RayPluginProcess] = set()
        self.since = time.time()
        self.next_try = 0.0

    async def describe(self) -> dict[str, Any]:
        return {"state": "lost", "address": self.address or "local", "reason": self.reason, "since": self.since,
                "next_try_s": max(0.0, round(self.next_try - time.time(), 1))}

    async def check(self, options: dict[str, Any]) -> None:
        raise ClusterError(f"{self.reason}; the engine is trying to reconnect to it (see its info()); start the "
                           "plugin again once it is back")

    async def watch(self) -> None:
        """Tries the head with backoff; once it answers, exits for the supervisor to start the
        engine connected again. A local Ray (no head to try) is started again after the wait."""
        tries = self.tries
        while True:
            wait = RETRY_BACKOFF_S[min(tries, len(RETRY_BACKOFF_S) - 1)]
            self.next_try = time.time() + wait
            await asyncio.sleep(wait)
            tries += 1
            if not self.gcs:  # a local Ray, or a head whose address was never written down
                again = "starting a new local Ray" if self.address is None else f"trying {cluster_name(self.address)} again"
                print(f"pyjoy engine: {again}", file=sys.stderr, flush=True)
                os._exit(CLUSTER_BACK_STATUS)
            if await asyncio.to_thread(gcs_answers, self.gcs):
                print(f"pyjoy engine: {cluster_name(self.address)} answers again: reconnecting", file=sys.stderr,
                      flush=True)
                os._exit(CLUSTER_BACK_STATUS)


def describe(options: dict[str, Any]) -> str:
    parts = [f"{options['num_gpus']:g} GPU" if "num_gpus" in options else "",
             f"{options['num_cpus']:g} CPU" if "num_cpus" in options else "",
             f"{options['memory']} bytes of memory" if "memory" in options else ""]
    return ", ".join(part for part in parts if part) or "no particular resources"


class Replica:
    def __init__(self, index: int, actor: Any, where: dict[str, Any]) -> None:
        self.index, self.actor, self.where = index, actor, where


class RayPluginProcess:
    """A plugin's actors, with what processes.PluginProcess offers the server."""

    def __init__(self, plugin: dict[str, Any], actor_class: Any, on_item: OnItem, on_output: OnOutput) -> None:
        loop = asyncio.get_running_loop()
        self.pid = None
        self._plugin = plugin
        self._name = plugin["config"]["name"]
        self._actor_class = actor_class
        self._on_item = on_item
        self._output = BoundedOutput(on_output)  # bounded as a plugin process's output is
        self.replicas: list[Replica] = []
        self._cluster: Any = None  # the Cluster it runs on (set by start)
        self.exited: asyncio.Future[int] = loop.create_future()
        self._why = ""
        self._header: dict[str, Any] | None = None  # the page's message being read
        self._pieces: list[Any] = []
        self._queue: list[tuple[Any, list[Any]]] = []  # the page's messages not yet taken by the actor
        self._queued_bytes = 0
        self._has_queue = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._restarting: dict[int, asyncio.Task[Replica]] = {}
        self._failed: set[int] = set()  # replicas whose start again failed (a map's failure tries again)

    @classmethod
    async def start(cls, plugin: dict[str, Any], cluster: Cluster, on_item: OnItem, on_output: OnOutput,
                    progress: Progress) -> RayPluginProcess:
        import ray

        from pyjoy.engine.ray_worker import PluginActor

        config = plugin["config"]
        options, count = actor_options(config)
        await cluster.check(options)
        runtime_env = cluster.runtime_env(config)
        actor_class = ray.remote(PluginActor).options(runtime_env=runtime_env, max_concurrency=1000, **options)
        self = cls(plugin, actor_class, on_item, on_output)
        self._cluster = cluster
        if "pip" in runtime_env:
            progress({"stage": "install", "message": f"installing {', '.join(runtime_env['pip']['packages'])} on the "
                                                     "cluster's nodes (Ray runtime_env)"})
        try:
            self.replicas = list(await asyncio.gather(*(self._new_replica(index) for index in range(count))))
        except BaseException:
            for replica in self.replicas:
                ray.kill(replica.actor)
            raise
        progress({"stage": "ready", "message": f"{count} Ray actor{'s' if count > 1 else ''} ready"})
        cluster.processes.add(self)
        self.exited.add_done_callback(lambda _: cluster.processes.discard(self))
        loop = asyncio.get_running_loop()
        self._hold(loop.create_task(self._read()))
        self._hold(loop.create_task(self._write()))
        if count > 1:
            await self._tell_peers()
        for replica in self.replicas[1:]:
            self._hold(loop.create_task(self._watch(replica)))
        return self

    async def _tell_peers(self) -> None:
        """Gives the first replica the others' handles (it spreads the page's calls over them)."""
        import ray

        peers = [None if replica.index in self._restarting or replica.index in self._failed else replica.actor
                 for replica in self.replicas[1:]]
        try:
            await _ray_call(self.replicas[0].actor.set_peers, peers)
        except ray.exceptions.RayError:
            pass  # the first replica died: _read says so

    async def _watch(self, replica: Replica) -> None:
        """A replica past the first that dies, whenever (not only in a map), is started again."""
        import ray

        try:
            await _ray_call(replica.actor.until_ended)
        except ray.exceptions.RayError:
            if self.replicas[replica.index] is replica:
                self._restart(replica)

    async def _new_replica(self, index: int) -> Replica:
        """An actor placed, started and (past the first) loaded; ClusterError if it cannot be."""
        import ray

        actor = self._actor_class.remote(self._plugin, index)
        try:
            where = await asyncio.wait_for(_ray_call(actor.ready), READY_TIMEOUT_S)
            if index > 0:
                await _ray_call(actor.load_console)
        except BaseException as error:
            ray.kill(actor)
            if isinstance(error, asyncio.TimeoutError):
                raise ClusterError(f"the plugin's actor was not placed and started within {READY_TIMEOUT_S:g} s "
                                   "(the cluster's resources are in use, or its requirements take long)") from None
            if isinstance(error, ray.exceptions.RuntimeEnvSetupError):
                raise RequirementError(f"installing the plugin's requirements on the cluster failed: "
                                       f"{_last_lines(str(error))}") from None
            if isinstance(error, ray.exceptions.RayError):
                raise ClusterError(f"replica {index} of plugin {self._name!r} could not start: "
                                   f"{_cause(error)}") from None
            raise
        return Replica(index, actor, where)

    def where(self) -> dict[str, Any]:
        """Where the plugin runs, for the page: the cluster, each replica's node and resources."""
        return {"where": "cluster", "replicas": [replica.where for replica in self.replicas]}

    def _hold(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the page's messages to the first replica --------------------------------------------

    def check_room(self) -> None:
        if self._queued_bytes > MAX_UNREAD_BYTES:
            raise BufferError(f"the plugin has {self._queued_bytes >> 20} MiB of messages unread (it is busy or "
                              "stuck); try again once it answers, or stop it")

    def send(self, frame: str | bytes | memoryview) -> None:
        """One WebSocket frame of the page's: a message's text, then its pieces (joined per buffer here:
        the actor gets whole messages, its buffers as arrays in Ray's object store)."""
        if isinstance(frame, str):
            self._header, self._pieces = json.loads(frame), []
        elif self._header is not None:
            self._pieces.append(frame)
        header = self._header
        if header is None:
            return
        sizes = header.get("buffers") or []
        if sum(len(memoryview(piece)) for piece in self._pieces) < sum(sizes):
            return
        self._header = None
        import numpy as np

        data = b"".join(self._pieces) if len(self._pieces) != 1 else self._pieces[0]
        buffers, offset = [], 0
        for size in sizes:
            buffers.append(np.frombuffer(data, dtype=np.uint8, count=size, offset=offset))
            offset += size
        self._queue.append((header["message"], buffers))
        self._queued_bytes += offset
        self._has_queue.set()

    def abort(self) -> None:
        self._header, self._pieces = None, []

    async def _write(self) -> None:
        import ray

        actor = self.replicas[0].actor
        while True:
            await self._has_queue.wait()
            batch, self._queue = self._queue, []
            self._has_queue.clear()
            try:
                await _ray_call(actor.deliver, batch)
            except ray.exceptions.RayError:
                return  # _read sees the actor's death and says why
            finally:
                self._queued_bytes -= sum(buffer.nbytes for _, buffers in batch for buffer in buffers)

    # -- the first replica's messages to the page --------------------------------------------

    async def _read(self) -> None:
        import ray

        try:
            while True:
                messages, lines = await _ray_call(self.replicas[0].actor.outbox)
                for stream, text in lines:
                    self._output.write(stream, text)
                for tree, buffers in messages:
                    await self._relay(tree, buffers)
        except ray.exceptions.RayError as error:
            lost = await asyncio.to_thread(self._cluster.lost_reason)
            if lost is not None:
                self.lose(lost)
            else:
                self._end(1, f"its Ray actor (replica 0) died: {_cause(error)}")
        except asyncio.CancelledError:
            raise

    async def _relay(self, tree: Any, buffers: list[Any]) -> None:
        sizes = [buffer.nbytes for buffer in buffers]
        text = wire.dumps({"channel": "plugin", "message": tree, "buffers": sizes})
        items: list[Any] = [wire.Start("plugin", {"message": tree, "buffers": sizes}, text)]
        for buffer in buffers:
            view = memoryview(buffer).cast("B")
            items += [wire.Piece(view[start:start + wire.PIECE_BYTES])
                      for start in range(0, view.nbytes, wire.PIECE_BYTES)]
        items.append(wire.Complete("plugin", {"message": tree, "buffers": sizes}, text, started=True))
        for item in items:
            waiting = self._on_item(item)
            if waiting is not None:
                await waiting

    # -- map over the replicas -----------------------------------------------------------------

    async def map(self, name: str, items: list[Any], progress: Callable[[dict[str, Any]], Any] | None,
                  offset: int = 0) -> list[Any]:
        """`name(item)` for each item, spread over the replicas in chunks, results in input order;
        errors number the items from `offset` (a client's bigger batch, sent as several maps)."""
        import ray

        results: list[Any] = [None] * len(items)
        state = {"next": 0, "done": 0, "reported": 0.0, "seconds": 0.0, "timed": 0}
        # The items go into the object store once; each chunk's call names its part of them (a
        # call whose arguments go into the store costs the gateway and the raylet 3x the CPU of one
        # naming an object already there).
        batch = await asyncio.to_thread(ray.put, items)
        loop = asyncio.get_running_loop()

        def report(force: bool = False) -> None:
            if progress is not None and (force or loop.time() - state["reported"] >= PROGRESS_INTERVAL_S):
                state["reported"] = loop.time()
                progress({"done": state["done"], "total": len(items)})

        async def work(slot: int) -> None:
            while state["next"] < len(items):
                if self.exited.done():
                    raise ClusterError(f"map: plugin {self._name!r} {self._why}")
                first = state["next"]
                item_seconds = state["seconds"] / state["timed"] if state["timed"] else 0.0
                state["next"] = last = first + chunk_size(len(items) - first, len(self.replicas), item_seconds)
                replica = self.replicas[slot % len(self.replicas)]
                try:
                    answers, failure, seconds = await _ray_call(replica.actor.call_chunk, name, batch, first, last)
                except ray.exceptions.RayTaskError as error:
                    raise ClusterError(f"map: {name}(item {offset + first}) failed on replica {replica.index}: "
                                       f"{_cause(error)}") from None
                except ray.exceptions.RayError as error:
                    self._restart(replica)
                    raise ClusterError(f"map: replica {replica.index} of plugin {self._name!r} died during "
                                       f"{name}(items {offset + first} to {offset + last - 1}): {_cause(error)}; it is being started "
                                       "again") from None
                if failure is not None:
                    at, why = failure
                    raise ClusterError(f"map: {name}(item {offset + first + at}) failed on replica {replica.index}: {why}")
                results[first:last] = answers
                state["seconds"] += seconds
                state["timed"] += last - first
                state["done"] += last - first
                report()

        workers = [loop.create_task(work(slot)) for slot in range(len(self.replicas) * IN_FLIGHT_PER_REPLICA)]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in workers:
                task.cancel()
        report(force=True)
        return results

    def _restart(self, replica: Replica) -> None:
        """A replica past the first that died is replaced by a new actor, loaded as it was."""
        if replica.index == 0 or replica.index in self._restarting or self.exited.done():
            return
        if self.replicas[replica.index] is not replica:
            return  # started again already (a map that began before still held the old one)

        async def restart() -> Replica:
            await self._tell_peers()  # the first replica stops sending it calls
            new = await self._new_replica(replica.index)
            if self.exited.done():
                import ray

                ray.kill(new.actor)
            else:
                self.replicas[replica.index] = new
                self._hold(asyncio.get_running_loop().create_task(self._watch(new)))
            return new

        def restarted(task: asyncio.Task[Replica]) -> None:
            self._restarting.pop(replica.index, None)
            if task.cancelled() or task.exception() is not None:
                self._failed.add(replica.index)
            else:
                self._failed.discard(replica.index)
            if not self.exited.done():
                self._hold(asyncio.get_running_loop().create_task(self._tell_peers()))

        loop = asyncio.get_running_loop()
        task = self._restarting[replica.index] = loop.create_task(restart())
        task.add_done_callback(restarted)

    async def restarted(self) -> None:
        """Waits for replicas being started again (tests, benchmarks)."""
        await asyncio.gather(*self._restarting.values(), return_exceptions=True)

    # -- the end -------------------------------------------------------------------------------

    def describe_exit(self) -> str:
        return self._why

    def lose(self, why: str) -> None:
        """The cluster was lost: the plugin ends saying so (its actors are not asked to end: a
        Ray call blocks while the head is down)."""
        self._end(1, why, kill=False)

    def _end(self, status: int, why: str, kill: bool = True) -> None:
        if self.exited.done():
            return
        self._why = why
        import ray

        for replica in self.replicas if kill else []:
            ray.kill(replica.actor)
        for task in list(self._tasks):
            task.cancel()
        self.exited.set_result(status)

    async def stop(self) -> int:
        self._end(0, "was stopped: its Ray actors were ended")
        return await asyncio.shield(self.exited)


def _ray_call(method: Any, *args: Any) -> Awaitable[Any]:
    """An actor call, as an asyncio future (an ObjectRef is awaitable)."""
    return asyncio.ensure_future(_await(method.remote(*args)))


async def _await(ref: Any) -> Any:
    return await ref


def _cause(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    return _last_lines(str(error))


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:])
