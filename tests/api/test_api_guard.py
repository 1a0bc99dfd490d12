"""The pure parts of the server's guard and admission control (the live server is in test_api_security)."""

from __future__ import annotations

import threading

import pytest

from api.admission import Admission
from api.errors import ApiError
from api.guard import allowed_hosts, host_name, is_loopback, same_origin
from rag.config import Settings


@pytest.mark.parametrize(
    "header, name",
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("Example.ORG", "example.org"),
        ("localhost:80", "localhost"),
    ],
)
def test_host_name_drops_the_port(header, name):
    assert host_name(header) == name


def test_loopback_names_and_addresses():
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.3.4.5", "::1", "[::1]", "app.localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.org", "localhost.evil.example"))


def test_same_origin_compares_host_and_port():
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000", "http")
    assert same_origin("http://localhost", "localhost", "http")
    assert not same_origin("http://127.0.0.1:9000", "127.0.0.1:8000", "http")
    assert not same_origin("http://evil.example", "127.0.0.1:8000", "http")
    assert not same_origin("null", "127.0.0.1:8000", "http")


def test_allowed_hosts_follow_the_bind_address_and_the_setting():
    local = allowed_hosts(Settings(host="127.0.0.1"))
    assert local is not None and {"localhost", "127.0.0.1", "::1"} <= local and "rag.example.org" not in local
    named = allowed_hosts(Settings(host="127.0.0.1", allowed_hosts=["rag.example.org"]))
    assert named is not None and "rag.example.org" in named
    assert allowed_hosts(Settings(allowed_hosts=["*"])) is None


def test_admission_refuses_past_the_limit_and_frees_slots_when_work_ends():
    admission = Admission(max_pending=2)
    first, second = admission.enter(), admission.enter()
    with pytest.raises(ApiError, match="answering 2 questions already; try again in") as refused:
        admission.enter()
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
    admission.run(first, lambda: None)
    admission.leave(first)  # giving a slot back twice counts once
    third = admission.enter()  # the slot came back
    stream = admission.stream(second, lambda: iter([1, 2, 3]))
    assert next(stream) == 1 and admission.pending == 2
    stream.close()  # a client that hung up frees its slot
    assert admission.pending == 1
    admission.abandon(third)  # its work never started
    assert admission.pending == 0 and admission.refused == 1


def test_admission_refuses_when_the_queue_would_wait_too_long():
    admission = Admission(max_pending=100, max_wait_s=10.0)
    for _ in range(3):  # answers that took 4 s of work each
        slot = admission.enter()
        slot.started -= 4.0
        admission.leave(slot)
    assert admission.service_s() == pytest.approx(4.0, abs=0.1)
    held = [admission.enter() for _ in range(3)]  # 3 ahead: a 4th would wait ~12 s
    with pytest.raises(ApiError, match="answering 3 questions already; try again in") as refused:
        admission.enter()
    assert refused.value.code == "overloaded" and 4 <= int(refused.value.headers["Retry-After"]) <= 12
    admission.leave(held[0])
    assert admission.enter() is not None  # 2 ahead: ~8 s, let in


def test_admission_slots_are_counted_across_threads():
    admission = Admission(max_pending=3)
    refused: list[int] = []

    def take() -> None:
        try:
            admission.enter()
        except ApiError as error:
            refused.append(error.status)

    threads = [threading.Thread(target=take) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admission.pending == 3 and refused == [503] * 7


def test_rate_limit_per_client_answers_429_with_retry_after():
    admission = Admission(max_pending=10, rate_per_minute=3)
    for _ in range(3):
        admission.check_rate("key:a")
    with pytest.raises(ApiError, match="Too many questions from this client: the limit is 3 a minute") as limited:
        admission.check_rate("key:a")
    assert limited.value.status == 429 and 1 <= int(limited.value.headers["Retry-After"]) <= 60
    admission.check_rate("key:b")  # another client has its own budget
