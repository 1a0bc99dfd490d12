"""The server's side of the model's process: starting it, sending it requests and handing each
message it writes to the generation the message is about (:mod:`rag.generation.onnx.protocol`)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from rag.errors import ConfigError, GenerationError
from rag.generation.onnx.protocol import WORKER_MODULE, encode

log = logging.getLogger(__name__)


class WorkerProcess:
    """The child process that runs the model (:mod:`rag.generation.onnx.worker`). It answers
    several generations at once; a thread hands each message it writes to the generation the
    message is about."""

    def __init__(self, folder: Path, window: int, slots: int, parallel: int) -> None:
        import rag

        env = dict(os.environ)
        root = str(Path(rag.__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(folder), str(window), str(slots), str(parallel)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None  # both are pipes
        self._input: IO[str] = self.process.stdin
        self._output: IO[str] = self.process.stdout
        self.ready: dict | None = None
        self._inboxes: dict[int, queue.Queue] = {}
        self._inboxes_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._gone: str | None = None  # why the process can take no more work

    def wait_ready(self) -> dict:
        """The process's ready message (read once; then the thread reading its output starts)."""
        if self.ready is None:
            first = self._read()
            if "error" in first:
                self.close()
                raise ConfigError(f"The generator process could not load the model: {first['error']}")
            self.ready = first
            threading.Thread(target=self._hand_out, name="generator-process-output", daemon=True).start()
        return self.ready

    def open(self) -> tuple[int, queue.Queue]:
        """A number for a new generation and the queue its messages will arrive in."""
        with self._inboxes_lock:
            if self._gone is not None:
                raise GenerationError(self._gone)
            number = next(self._numbers)
            self._inboxes[number] = queue.Queue()
            return number, self._inboxes[number]

    def release(self, number: int) -> None:
        """Forget generation ``number``'s queue (its messages are dropped from now on)."""
        with self._inboxes_lock:
            self._inboxes.pop(number, None)

    def send(self, message: dict) -> None:
        """Write one request to the process; raises :class:`GenerationError` when it is gone."""
        try:
            with self._send_lock:
                self._input.write(encode(message))
                self._input.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise GenerationError(f"The generator process is gone (exit code {self.process.poll()}).") from exc

    def _read(self) -> dict:
        while True:
            line = self._output.readline()
            if not line:
                raise GenerationError(
                    f"The generator process ended unexpectedly (exit code {self.process.wait()}); "
                    "it is started again for the next question."
                )
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict):
                return message
            log.warning("Generator process: %s", line.rstrip()[:300])  # printed before it took over its output

    def _hand_out(self) -> None:
        """Put each message into its generation's queue until the process ends; then tell every
        generation still waiting that it has."""
        try:
            while True:
                message = self._read()
                with self._inboxes_lock:
                    number = message.get("id")
                    inbox = self._inboxes.get(number) if isinstance(number, int) else None
                if inbox is not None:
                    inbox.put(message)
        except GenerationError as exc:
            gone = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken pipe or a bad line: the process is of no more use
            gone = f"The generator process failed ({exc})."
            self.process.kill()
        with self._inboxes_lock:
            self._gone = gone
            for inbox in self._inboxes.values():
                inbox.put({"gone": gone})

    @property
    def alive(self) -> bool:
        """Whether the process still runs and can take work."""
        return self.process.poll() is None and self._gone is None

    def close(self) -> None:
        """Close the process's input (it exits by itself) and wait briefly; kill it if it does not stop."""
        try:
            self._input.close()
            self.process.wait(timeout=5)
        except Exception:  # noqa: BLE001 - closing is best effort; kill what does not stop
            self.process.kill()
