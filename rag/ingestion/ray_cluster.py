"""The Ray cluster an ingest runs on: started (or joined) for the run, and split between the
parsing and the embedding actors."""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError
from rag.ingestion.report import Progress

LOCAL = "local"  # the address meaning "start a private cluster on this machine"
FILES_PER_BATCH = 4  # files one ParseAndChunk call handles: small, so parsing spreads out
# Passed on to the workers of a remote cluster, so they stay as offline as the driver.
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "DO_NOT_TRACK")


@dataclass(frozen=True)
class ActorPlan:
    """How many actors each stage gets and what each one asks of the scheduler."""

    parse_actors: int
    embed_actors: int
    cpus_per_actor: float
    gpus_per_embed: int


def plan_actors(cpus: float, gpus: float, files: int) -> ActorPlan:
    """Split the cluster between the two stages (a pure function: the GPU decision's seam).

    With GPUs, one embedder per GPU and the CPUs parse. Without, the CPUs are shared half
    and half, since embedding is most of the work. Never more parsers than file batches,
    and on a one-CPU cluster both actors take half a CPU each so neither waits forever.
    """
    gpu_count = int(gpus)
    cpu_count = max(1, int(cpus))
    batches = max(1, math.ceil(files / FILES_PER_BATCH))
    if gpu_count >= 1:
        embed = gpu_count
        parse = max(1, cpu_count - embed)
    else:
        embed = max(1, cpu_count // 2)
        parse = max(1, cpu_count - embed)
    parse = min(parse, batches)
    cpus_per_actor = 1.0 if cpu_count >= parse + embed else cpu_count / (parse + embed)
    return ActorPlan(parse, embed, cpus_per_actor, 1 if gpu_count >= 1 else 0)


class RaySession:
    """Starts (or joins) Ray on first use and stops it again if it started it."""

    def __init__(self, address: str, progress: Progress) -> None:
        self.address = address
        self.progress = progress
        self._owned = False

    def start(self) -> float:
        """Connect; returns the seconds it took."""
        t = time.perf_counter()
        host, port = _host_port(self.address)
        if self.address == LOCAL or host in ("127.0.0.1", "localhost", "::1"):
            # Ray binds its servers to the node address, which by default is the machine's
            # routable IP even with _node_ip_address="127.0.0.1" (and it rewrites a loopback
            # address to that IP); this switch, Ray's single-machine mode, keeps both on
            # loopback. Ray reads it when it is imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if port is not None:
            _check_reachable(self.address, host, port)
        import logging

        import ray

        if ray.is_initialized():
            return time.perf_counter() - t
        if self.address == LOCAL:
            self.progress.log("starting a local Ray cluster (127.0.0.1 only)")
            ray.init(
                address=LOCAL,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            node_ip = ray.util.get_node_ip_address()
            if node_ip not in ("127.0.0.1", "::1"):
                self.progress.log(
                    f"note: the local Ray cluster listens on {node_ip}, not only on 127.0.0.1 "
                    "(ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 could be set)"
                )
        else:
            self.progress.log(f"connecting to the Ray cluster at {self.address}")
            env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
            package = str(Path(__file__).resolve().parents[1])  # the rag package
            try:
                ray.init(
                    address=self.address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    runtime_env={"py_modules": [package], "env_vars": env},
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"Could not connect to the Ray cluster at {self.address} ({exc.__class__.__name__}); check "
                    "the address, and for a cluster with token authentication set RAY_AUTH_MODE=token "
                    "(Ray never turns it on by itself for an explicit address)."
                ) from None
        self._owned = True
        self._quiet_ray_data()
        return time.perf_counter() - t

    @staticmethod
    def _quiet_ray_data() -> None:
        """Ray Data's own bars and log lines would fight the ingest progress bar (this
        process owns the session, so it may choose)."""
        import logging

        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # A failed batch still reaches the driver as an exception with the worker's traceback.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)

    def resources(self) -> tuple[float, float]:
        """The cluster's CPUs and GPUs."""
        import ray

        available = ray.cluster_resources()
        return float(available.get("CPU", 1.0)), float(available.get("GPU", 0.0))

    def close(self) -> None:
        """Shut Ray down if this session started it."""
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False


def _host_port(address: str) -> tuple[str, int | None]:
    """The host and port of a ``host:port`` address; no port for "local", "auto", ray://."""
    if "://" in address or address in (LOCAL, "auto"):
        return address, None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else (address, None)


def _check_reachable(address: str, host: str, port: int) -> None:
    """Fail in seconds: Ray itself retries an unreachable cluster for minutes."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc.__class__.__name__}); start one with "
            "'ray start --head', check the address, or pass --ray without one to start a local cluster."
        ) from None
