"""Energy and carbon estimates for a stretch of work (answering, ingesting), through codecarbon.

``EnergyMeter`` wraps codecarbon's ``OfflineEmissionsTracker`` so that it

* never touches the network: the offline tracker (no location look-up), no output method (no
  ``emissions.csv``, no API, no Prometheus or Logfire), no emissions endpoint and no Electricity
  Maps token, whatever a ``.codecarbon.config`` file or ``CODECARBON_*`` variable says;
* writes no file anywhere;
* never fails the work it measures: a missing package or any error inside codecarbon gives an
  :class:`EnergyReport` with ``measured=False`` and the reason.

What codecarbon does depends on the machine. Where there is no power meter to read (no RAPL
counters under ``/sys/class/powercap``, no NVIDIA GPU), as on our 2-core build machines, it
estimates: CPU power = the CPU's rated power (its TDP from codecarbon's table, or 4 W per thread
for a model it does not know) x the CPU share used, sampled every second; RAM power = about 5 W
per memory module it guesses from the memory size; then energy = power x time and CO2e =
energy x the grid's carbon intensity for ``country`` (codecarbon's bundled table; ``WORLD``
uses its world average). :attr:`EnergyReport.method` says, in one sentence, which of these it
did on this run.

Scopes: ``process`` counts this process and its children (the ONNX generator's process, parse
workers, a server this process started): CPU from their CPU seconds, RAM from their resident
memory. ``machine`` counts the whole machine's CPU load and all its memory, other users' work
included.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# The grid's carbon intensity when the country is unknown or not given (codecarbon's world
# average, read from its own data when it is installed).
WORLD = "WORLD"
SCOPES = ("process", "machine")

_RAPL_DIR = "/sys/class/powercap"


@dataclass
class EnergyReport:
    """The energy and emissions of one measured stretch of work, or why there are none."""

    measured: bool
    reason: str | None = None  # why not measured
    seconds: float = 0.0
    kwh: float | None = None
    g_co2e: float | None = None
    cpu_kwh: float | None = None
    ram_kwh: float | None = None
    gpu_kwh: float | None = None
    cpu_w_mean: float | None = None
    ram_w_mean: float | None = None
    gpu_w_mean: float | None = None
    scope: str = "process"
    country: str = WORLD
    country_name: str | None = None
    g_co2e_per_kwh: float | None = None
    method: str = ""
    codecarbon_version: str | None = None
    notes: list[str] = field(default_factory=list)  # codecarbon's own warnings, as it said them

    def per_1000(self, count: int) -> dict[str, float] | None:
        """kWh and grams CO2e per 1,000 of ``count`` items (answers, documents)."""
        if not self.measured or not count or self.kwh is None or self.g_co2e is None:
            return None
        return {"kwh": self.kwh / count * 1000, "g_co2e": self.g_co2e / count * 1000}

    def to_dict(self, count: int | None = None, unit: str = "items") -> dict[str, Any]:
        """Everything, plus ``per_1000_<unit>`` for ``count`` items when given."""
        out = asdict(self)
        if count is not None:
            out["count"] = count
            out["unit"] = unit
            out[f"per_1000_{unit}"] = self.per_1000(count)
        return out

    def summary_line(self, count: int | None = None, unit: str = "items") -> str:
        """One line for a console summary."""
        if not self.measured:
            return f"energy not measured: {self.reason}"
        text = (
            f"{self.kwh:.3g} kWh, {self.g_co2e:.3g} g CO2e over {self.seconds:.0f} s "
            f"({self.scope}, {self.g_co2e_per_kwh:.0f} g/kWh for {self.country_name or self.country})"
        )
        per = self.per_1000(count or 0)
        if per:
            text += f"; per 1,000 {unit}: {per['kwh']:.3g} kWh, {per['g_co2e']:.3g} g CO2e"
        return text


def not_measured(reason: str, scope: str = "process", country: str = WORLD) -> EnergyReport:
    """A report that says why energy was not measured."""
    return EnergyReport(measured=False, reason=reason, scope=scope, country=country)


class _Capture(logging.Handler):
    """Keeps codecarbon's warnings (they say how it estimates) off the console and in the report."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().strip()
        except Exception:  # noqa: BLE001 - a log line must never break the run
            return
        if message and message not in self.messages:
            self.messages.append(message)


class EnergyMeter:
    """Measures the energy of the work between :meth:`start` and :meth:`stop` (or a ``with`` block).

    ``country`` is a 3-letter ISO code of codecarbon's table (``FRA``, ``USA``, ``CHN``...) or
    ``WORLD``; ``scope`` is ``process`` or ``machine`` (module docstring). Nothing it does raises:
    :meth:`stop` always returns a report, ``measured=False`` with the reason when codecarbon is
    missing or failed.
    """

    def __init__(self, country: str = WORLD, scope: str = "process", off: str | None = None) -> None:
        self.country = (country or WORLD).strip().upper()
        self.scope = scope if scope in SCOPES else "process"
        self.report: EnergyReport | None = None
        self._tracker: Any = None
        # ``off``: the reason it is switched off; the report then says so and nothing is loaded.
        self._failure: str | None = off or (
            None if scope in SCOPES else f"unknown energy scope {scope!r} (use one of {', '.join(SCOPES)})"
        )
        self._started = 0.0
        self._capture = _Capture()
        self._saved_handlers: list[logging.Handler] | None = None
        self._intensity: float | None = None
        self._version: str | None = None

    # -- start ------------------------------------------------------------------------------

    def start(self) -> EnergyMeter:
        """Start measuring; a failure is kept for the report, never raised."""
        self._started = time.perf_counter()
        if self._failure:
            return self
        try:
            self._start()
        except ImportError as exc:
            if getattr(exc, "name", None) == "codecarbon":
                self._failure = "codecarbon is not installed (pip install codecarbon)"
            else:  # installed, but one of its own imports fails
                self._failure = f"codecarbon cannot be imported ({exc.__class__.__name__}: {exc})"
            self._restore_logging()
        except ValueError as exc:  # a country codecarbon has no data for
            self._failure = str(exc)
            self._tracker = None
            self._restore_logging()
        except Exception as exc:  # noqa: BLE001 - the measured work must go on
            self._failure = f"codecarbon failed to start ({exc.__class__.__name__}: {exc})"
            self._tracker = None
            self._restore_logging()
        return self

    def _start(self) -> None:
        import codecarbon
        from codecarbon import OfflineEmissionsTracker

        self._version = getattr(codecarbon, "__version__", None)
        logger = logging.getLogger("codecarbon")
        logger.setLevel(logging.ERROR)  # quiet while it reads its configuration
        from codecarbon.input import DataSource

        kwargs: dict[str, Any] = {}
        if self.country == WORLD:
            self._intensity = float(DataSource().get_carbon_intensity_per_source_data()["world_average"])
            kwargs["force_carbon_intensity_g_co2e_kwh"] = self._intensity
        else:
            mix = DataSource().get_global_energy_mix_data()
            if self.country not in mix:
                raise ValueError(
                    f"codecarbon has no grid data for country {self.country!r}; use a 3-letter "
                    "ISO code such as FRA, USA or CHN, or WORLD for the world average"
                )
            kwargs["country_iso_code"] = self.country
        tracker = OfflineEmissionsTracker(
            project_name="rag-service",
            tracking_mode=self.scope,
            log_level="warning",
            # No output at all: no emissions.csv, no API, no metrics push; these also override
            # whatever a .codecarbon.config file or CODECARBON_* variable asks for.
            output_methods=[],
            emissions_endpoint=None,
            electricitymaps_api_token="",
            cloud_provider=None,
            cloud_region=None,
            allow_multiple_runs=True,  # else it keeps a lock file in /tmp
            measure_power_secs=15,
            **kwargs,
        )
        if not hasattr(tracker, "_output_methods"):
            # Its constructor swallows its own errors (and logs them): it is not usable.
            raise RuntimeError("its tracker could not be set up")
        # Its constructor puts a console handler back; keep its warnings for the report instead.
        self._saved_handlers = list(logger.handlers)
        logger.handlers = [self._capture]
        self._tracker = tracker
        tracker.start()
        if getattr(tracker, "_start_time", None) is None:
            raise RuntimeError("its tracker did not start")

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> EnergyReport:
        """Stop measuring and return the report (also kept as :attr:`report`)."""
        if self.report is not None:
            return self.report
        seconds = time.perf_counter() - self._started if self._started else 0.0
        if self._failure or self._tracker is None:
            self.report = not_measured(self._failure or "the meter was never started", self.scope, self.country)
            self.report.seconds = seconds
            return self.report
        try:
            self.report = self._stop(seconds)
        except Exception as exc:  # noqa: BLE001 - the measured work must go on
            self.report = not_measured(f"codecarbon failed ({exc.__class__.__name__}: {exc})", self.scope, self.country)
            self.report.seconds = seconds
        finally:
            self._restore_logging()
        return self.report

    def _stop(self, seconds: float) -> EnergyReport:
        tracker = self._tracker
        tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            errors = [m for m in self._capture.messages if "rror" in m]
            raise RuntimeError(errors[0] if errors else "no figures came back")
        kwh = float(data.energy_consumed)
        kg = float(data.emissions)
        if not (math.isfinite(kwh) and math.isfinite(kg)) or kwh < 0 or kg < 0:
            raise RuntimeError(f"implausible figures ({kwh} kWh, {kg} kg)")
        duration = float(getattr(data, "duration", 0) or seconds)
        report = EnergyReport(
            measured=True,
            seconds=duration,
            kwh=kwh,
            g_co2e=kg * 1000,
            cpu_kwh=float(data.cpu_energy),
            ram_kwh=float(data.ram_energy),
            gpu_kwh=float(data.gpu_energy),
            # Mean power over the run, from the energies (codecarbon's own power fields are the
            # last sample's).
            cpu_w_mean=_mean_watts(data.cpu_energy, duration),
            ram_w_mean=_mean_watts(data.ram_energy, duration),
            gpu_w_mean=_mean_watts(data.gpu_energy, duration),
            scope=self.scope,
            country=self.country,
            country_name="world average" if self.country == WORLD else (data.country_name or None),
            g_co2e_per_kwh=self._intensity if self._intensity is not None else (kg * 1000 / kwh if kwh > 0 else None),
            codecarbon_version=self._version,
            notes=list(self._capture.messages),
        )
        report.method = describe_method(tracker, report)
        return report

    def _restore_logging(self) -> None:
        if self._saved_handlers is not None:
            logging.getLogger("codecarbon").handlers = self._saved_handlers
            self._saved_handlers = None

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mean_watts(kwh: Any, seconds: float) -> float | None:
    try:
        return float(kwh) * 3.6e6 / seconds if seconds > 0 else None
    except (TypeError, ValueError):
        return None


def describe_method(tracker: Any, report: EnergyReport) -> str:
    """One sentence: how codecarbon got these figures on this machine (read from its tracker)."""
    parts: list[str] = []
    hardware = getattr(tracker, "_hardware", []) or []
    cpu = next((h for h in hardware if type(h).__name__ == "CPU"), None)
    rapl = os.path.isdir(_RAPL_DIR)
    if cpu is not None:
        mode = getattr(cpu, "_mode", "?")
        tdp = getattr(cpu, "_tdp", None)
        model = getattr(cpu, "_model", None) or "?"
        threads = getattr(cpu, "_cpu_count", None) or os.cpu_count()
        if mode in ("intel_rapl", "windows_emi", "intel_power_gadget", "apple_powermetrics"):
            parts.append(f"CPU energy read from the {mode} counters")
        else:
            if getattr(cpu, "_is_generic_tdp", False):
                source = "codecarbon's generic constant: it could not read the CPU model"
            elif isinstance(tdp, (int, float)) and threads and tdp == 4 * threads:
                source = f"codecarbon's default of 4 W per thread: its table does not know the {model}"
            else:
                source = f"the rated power of the {model} in codecarbon's table"
            share = (
                f"the CPU seconds of this process and its children over wall time, of all {threads} threads"
                if report.scope == "process"
                else "0.1 + 0.9 x (machine CPU load)^3"
            )
            no_meter = "no RAPL counters" + ("" if rapl else f" ({_RAPL_DIR} absent)")
            parts.append(
                f"CPU estimated ({no_meter}): {tdp:g} W ({source}) x {share}, sampled every second"
                if isinstance(tdp, (int, float))
                else f"CPU estimated in codecarbon's {mode} mode ({no_meter})"
            )
    ram_note = (
        f"RAM estimated at about 5 W per memory module codecarbon guesses from the "
        f"{'resident memory of this process and its children' if report.scope == 'process' else 'machine memory'}"
    )
    if report.ram_w_mean is not None:
        ram_note += f" ({report.ram_w_mean:.0f} W here)"
    parts.append(ram_note)
    gpus = getattr(tracker, "_conf", {}).get("gpu_count") or 0
    parts.append(f"GPU read through NVML ({gpus} found)" if gpus else "no GPU")
    intensity = f"{report.g_co2e_per_kwh:.0f} g CO2e/kWh" if report.g_co2e_per_kwh is not None else "its grid figure"
    where = "the world average" if report.country == WORLD else (report.country_name or report.country)
    parts.append(f"grid {intensity} ({where}, codecarbon's bundled data)")
    return f"codecarbon {report.codecarbon_version or '?'} {report.scope} estimate: " + "; ".join(parts) + "."
