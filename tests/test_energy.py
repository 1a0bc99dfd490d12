"""rag/energy.py with the real codecarbon: figures present and plausible, per-1,000 scaling, the
work of a child process counted, no network, no stray files, and every way it can fail reported
as a reason instead of an error."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time

import pytest

from rag.energy import EnergyMeter, EnergyReport

pytest.importorskip("codecarbon")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_real_figures_are_positive_finite_and_scale_per_1000(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with EnergyMeter("WORLD", "process") as meter:
        _busy(1.5)
    report = meter.report
    assert report is not None and report.measured, report.reason
    for value in (report.kwh, report.g_co2e, report.ram_kwh, report.cpu_kwh):
        assert value is not None and math.isfinite(value) and value > 0
    assert report.cpu_kwh + report.ram_kwh + report.gpu_kwh == pytest.approx(report.kwh, rel=1e-6)
    assert 1.0 <= report.seconds < 30
    # Power is of the order of watts, not milliwatts or kilowatts (RAM is 5 W a module).
    assert 1 < report.ram_w_mean < 300
    assert 0 < report.cpu_w_mean < 1000
    # World average grid: grams = kWh x 475, as codecarbon's data says.
    assert report.g_co2e_per_kwh == 475
    assert report.g_co2e == pytest.approx(report.kwh * 475, rel=1e-6)
    per = report.per_1000(4)
    assert per == {"kwh": pytest.approx(report.kwh * 250), "g_co2e": pytest.approx(report.g_co2e * 250)}
    assert report.per_1000(0) is None
    shown = report.to_dict(4, "answers")
    assert shown["per_1000_answers"] == per and shown["count"] == 4
    assert "codecarbon" in report.method and "RAM" in report.method and "475" in report.method
    assert "per 1,000 answers" in report.summary_line(4, "answers")
    # No emissions.csv or anything else where it ran.
    assert list(tmp_path.iterdir()) == []


def test_a_country_changes_the_grid_and_a_bad_one_is_a_reason():
    with EnergyMeter("fra") as meter:
        _busy(0.5)
    assert meter.report.measured and meter.report.country == "FRA" and meter.report.country_name == "France"
    # France's grid is far below the world average in codecarbon's table.
    assert 10 < meter.report.g_co2e_per_kwh < 200
    bad = EnergyMeter("XYZ").start().stop()
    assert not bad.measured and "XYZ" in bad.reason and "WORLD" in bad.reason
    assert bad.summary_line().startswith("energy not measured: ")
    assert bad.per_1000(10) is None


def test_process_scope_counts_a_child_process():
    with EnergyMeter(scope="process") as idle:
        time.sleep(2.5)
    child = [sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"]
    with EnergyMeter(scope="process") as busy:
        subprocess.run(child, check=True)
    assert idle.report.measured and busy.report.measured
    # A child busy for 3 s is a share of 8 W even on a crowded machine; this process alone waits.
    assert busy.report.cpu_w_mean > max(0.15, 2 * idle.report.cpu_w_mean), (busy.report, idle.report)


def test_it_never_reaches_the_network_whatever_codecarbon_is_told(monkeypatch, tmp_path):
    # Every setting that would make codecarbon go online, through its own configuration channels.
    for key, value in {
        "CODECARBON_OUTPUT_METHODS": "api,prometheus",
        "CODECARBON_SAVE_TO_API": "true",
        "CODECARBON_EMISSIONS_ENDPOINT": "http://192.0.2.1/emissions",
        "CODECARBON_ELECTRICITYMAPS_API_TOKEN": "token",
        "CODECARBON_CO2_SIGNAL_API_TOKEN": "token",
        "CODECARBON_API_CALL_INTERVAL": "1",
        "CODECARBON_OUTPUT_DIR": str(tmp_path),
        "CODECARBON_SAVE_TO_FILE": "true",
    }.items():
        monkeypatch.setenv(key, value)
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network blocked by the test")
        return real_connect(self, address)

    def guarded_getaddrinfo(*args, **kwargs):
        attempts.append(args[:2])
        raise socket.gaierror("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    for country in ("WORLD", "USA"):
        with EnergyMeter(country, "machine") as meter:
            _busy(1.2)
        assert meter.report.measured, meter.report.reason
    assert attempts == []
    assert list(tmp_path.iterdir()) == []  # CODECARBON_SAVE_TO_FILE did not write either


def test_missing_package_is_a_reason_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import codecarbon -> ImportError
    meter = EnergyMeter().start()
    _busy(0.1)
    report = meter.stop()
    assert isinstance(report, EnergyReport) and not report.measured
    assert report.reason == "codecarbon is not installed (pip install codecarbon)"
    assert (
        report.summary_line(10, "documents")
        == "energy not measured: codecarbon is not installed (pip install codecarbon)"
    )
    assert report.to_dict(10, "documents")["per_1000_documents"] is None


def test_a_broken_dependency_of_codecarbon_is_named():
    # In a process of its own: a half-imported codecarbon must not stay behind for other tests.
    code = (
        "import sys; sys.modules['psutil'] = None\n"  # codecarbon imports psutil
        "from rag.energy import EnergyMeter\n"
        "print(EnergyMeter().start().stop().reason)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("codecarbon cannot be imported (") and "psutil" in done.stdout


def test_an_error_inside_codecarbon_is_a_reason(monkeypatch):
    import codecarbon

    def broken(*args, **kwargs):
        raise RuntimeError("sensor on fire")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    report = EnergyMeter().start().stop()
    assert not report.measured and "sensor on fire" in report.reason


def test_switched_off_loads_nothing():
    report = EnergyMeter(off="switched off (--no-energy)").start().stop()
    assert not report.measured and report.reason == "switched off (--no-energy)"


@pytest.mark.skipif(os.path.isdir("/sys/class/powercap"), reason="this machine has RAPL counters")
def test_the_method_says_it_is_an_estimate_without_rapl():
    with EnergyMeter() as meter:
        _busy(0.3)
    assert "no RAPL counters" in meter.report.method and "estimated" in meter.report.method


# -- python -m ingest --energy ------------------------------------------------------------------


def _ingest(folder, index_dir, *flags, pythonpath: str = "", cwd=None):
    from tests.conftest import REPO

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(p for p in (pythonpath, str(REPO)) if p))
    return subprocess.run(
        [sys.executable, "-m", "ingest", str(folder), "--index-dir", str(index_dir), "--quiet", *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=300,
    )


@pytest.mark.slow
def test_ingest_reports_energy_per_1000_documents_and_runs_without_codecarbon(tmp_path):
    import json

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees for two minutes.\n", encoding="utf-8")
    (docs / "b.txt").write_text("The library is closed on Mondays and opens at nine.\n", encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    done = _ingest(docs, tmp_path / "ix", "--energy", "--energy-country", "FRA", "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    energy = json.loads(done.stdout)["energy"]
    assert energy["measured"] and energy["count"] == 2 and energy["unit"] == "documents"
    assert energy["country"] == "FRA" and energy["kwh"] > 0 and energy["g_co2e"] > 0
    assert energy["per_1000_documents"]["kwh"] == pytest.approx(energy["kwh"] / 2 * 1000)
    assert energy["per_1000_documents"]["g_co2e"] == pytest.approx(energy["g_co2e"] / 2 * 1000)
    assert list(work.iterdir()) == []  # no emissions.csv where it ran

    # codecarbon missing: the ingest still succeeds and says why there is no figure.
    fake = tmp_path / "no-codecarbon" / "codecarbon"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named codecarbon', name='codecarbon')\n", encoding="utf-8"
    )
    done = _ingest(docs, tmp_path / "ix2", "--energy", pythonpath=str(fake.parent))
    assert done.returncode == 0, done.stderr
    assert "\n  energy not measured: codecarbon is not installed (pip install codecarbon)" in done.stdout
    assert "2 new" in done.stdout


def test_eval_report_shows_the_energy_line():
    from eval.report import energy_text

    with EnergyMeter() as meter:
        _busy(0.3)
    line = energy_text(meter.report.to_dict(3, "answers"))
    assert line.startswith(f"{meter.report.kwh:.3g} kWh") and "per 1,000 answers" in line and "codecarbon" in line
    assert (
        energy_text(EnergyMeter(off="switched off (--no-energy)").start().stop().to_dict(3, "answers"))
        == "not measured: switched off (--no-energy)"
    )
    assert energy_text(None) == ""
