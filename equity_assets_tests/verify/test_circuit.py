"""The router's circuit per provider: open after a failed chunk, one half-open probe after the
cool-down, closed again when the probe is answered (providers here are in-process fakes; the
sandbox-backed runs are in test_router.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from equity_assets.vendors.http import ProviderHTTPError
from equity_assets.verify.router import ProviderRouter
from equity_assets.verify.verdict import LeadToVerify, ProviderAnswer


class FakeProvider:
    def __init__(self, name: str, *, batch_size: int = 2) -> None:
        self.name, self.batch_size, self.max_concurrency = name, batch_size, 1
        self.throttled = False
        self.requests: list[int] = []  # batch sizes asked
        self.gate: threading.Event | None = None

    @property
    def retries(self) -> int:
        return 0

    def answer(self, leads: Sequence[LeadToVerify]) -> list[ProviderAnswer]:
        self.requests.append(len(leads))
        if self.gate is not None:
            self.gate.wait(5)
        if self.throttled:
            raise ProviderHTTPError("429", provider=self.name, status_code=429, body="", retries=2)
        return [ProviderAnswer(provider=self.name, lead_id=lead.id, matched=True) for lead in leads]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def leads(n: int, start: int = 0) -> list[LeadToVerify]:
    return [LeadToVerify(id=str(i)) for i in range(start, start + n)]


def providers_of(result) -> list[str]:
    return [v.provider for v in result.verdicts]


def test_open_then_one_probe_batch_then_closed() -> None:
    melissa, batchdata, clock = FakeProvider("melissa"), FakeProvider("batchdata"), Clock()
    with ProviderRouter({"melissa": melissa, "batchdata": batchdata}, ["melissa", "batchdata"], cooldown_s=10,
                        clock=clock) as router:
        melissa.throttled = True
        assert providers_of(router.route(leads(4))) == ["batchdata"] * 4
        assert router.open_circuits == {"melissa": "ProviderHTTPError HTTP 429 after 2 retries"}
        assert melissa.requests == [2, 2]

        clock.now = 9.9  # cooling down: not asked at all
        assert providers_of(router.route(leads(4, 4))) == ["batchdata"] * 4
        assert melissa.requests == [2, 2]

        clock.now = 10  # still throttled: the probe is ONE batch, the rest of the chunk is not sent
        assert providers_of(router.route(leads(4, 8))) == ["batchdata"] * 4
        assert melissa.requests == [2, 2, 2] and "melissa" in router.open_circuits

        melissa.throttled = False
        clock.now = 15  # the re-opened circuit cools down again from t=10
        assert providers_of(router.route(leads(4, 12))) == ["batchdata"] * 4
        clock.now = 20  # the burst is over: the probe is answered, then the rest of the chunk follows
        assert providers_of(router.route(leads(4, 16))) == ["melissa"] * 4
        assert melissa.requests == [2, 2, 2, 2, 2] and router.open_circuits == {}
        assert router.circuit_trips == {"melissa": 1}


def test_only_one_chunk_probes_at_a_time() -> None:
    melissa, batchdata, clock = FakeProvider("melissa"), FakeProvider("batchdata"), Clock()
    with ProviderRouter({"melissa": melissa, "batchdata": batchdata}, ["melissa", "batchdata"], cooldown_s=1,
                        clock=clock) as router:
        melissa.throttled = True
        router.route(leads(2))
        clock.now = 5
        melissa.throttled, melissa.gate = False, threading.Event()
        probing = threading.Thread(target=router.route, args=(leads(2, 2),))
        probing.start()
        while len(melissa.requests) < 2:  # the probe is in flight, held by the gate
            threading.Event().wait(0.01)
        # another chunk meanwhile: the circuit is still open for it, no second probe
        assert providers_of(router.route(leads(2, 4))) == ["batchdata"] * 2
        melissa.gate.set()
        probing.join(5)
        assert melissa.requests == [2, 2] and router.open_circuits == {}
