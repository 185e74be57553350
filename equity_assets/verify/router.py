"""Provider router: ask providers in a configured order, fall back on error or no match.

For one chunk of leads:

1. The first provider gets every lead, in batches of its ``batch_size``, ``max_concurrency``
   batches in flight. A lead it *matches* is done. (Melissa matches when it finds the address of
   a lead that has an email or phone to check; a lead with neither still needs a skip trace.)
2. Leads it did not match, and leads whose batch failed (after the client's own retries), go to
   the next provider, and so on down the order.
3. A lead is settled when a provider matched it, or when every provider answered "no match".
   A lead that some provider could not answer, and nobody matched, is *unrouted*: the asset
   sends it to the DLQ and leaves it due, so a later run retries it. Nothing is half-written.

Failures are told apart, because they call for different handling:

* **provider down** (transport errors, 5xx/429 after retries, bad credentials, out of credits):
  when no batch of a provider succeeds in a chunk, its circuit opens, so later chunks go straight
  to the next provider instead of re-spending every retry budget. An open circuit is not for the
  rest of the run: after ``cooldown_s`` the next chunk sends the provider one batch (*half-open*
  probe, one chunk at a time); if it is answered the circuit closes and the provider takes its
  share again (a 429 burst is over), if not the circuit stays open for another ``cooldown_s``;
* **poison record** (a 4xx or an unreadable body for one batch, or a 5xx for one batch while the
  provider's other batches succeed): the batch is split in halves until the offending records
  are alone; only those fail.

The router keeps its state (circuits) for one run only: build one per run, and use it as a
context manager (it opens the providers' sessions and owns their worker threads). ``route`` may
be called from several threads at once; they share each provider's worker pool.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from equity_assets.vendors.http import (
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from equity_assets.vendors.melissa import MelissaLicenseError, MelissaTransmissionError
from equity_assets.verify.providers import VerificationProvider
from equity_assets.verify.verdict import LeadToVerify, LeadVerdict, ProviderAnswer, combine_answers

#: Melissa request-level codes that mean the account, not the request, is the problem.
_MELISSA_ACCOUNT_CODES = frozenset({"GE04", "GE05", "GE06", "GE08", "GE14", "SE01"})
#: Seconds an open circuit waits before one probe batch is sent to the provider again.
DEFAULT_COOLDOWN_S = 60.0


@dataclass
class _Circuit:
    """An open circuit: why, when the next probe may go, whether one is in flight."""

    reason: str
    probe_at: float
    probing: bool = False


@dataclass(frozen=True, slots=True)
class Unrouted:
    """A lead no provider matched and at least one could not answer; ``errors``: provider -> reason."""

    lead: LeadToVerify
    errors: dict[str, str]

    @property
    def reason(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in self.errors.items())


@dataclass
class RoutingResult:
    """The outcome of one chunk."""

    verdicts: list[LeadVerdict] = field(default_factory=list)
    unrouted: list[Unrouted] = field(default_factory=list)
    # provider -> leads it was asked about / answered / matched (for metadata)
    asked: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        """True when the chunk had leads and none of them got a verdict."""
        return bool(self.unrouted) and not self.verdicts


class ProviderRouter:
    """Route leads across ``providers`` in ``order`` (names), falling back on error or no match."""

    def __init__(self, providers: Mapping[str, VerificationProvider], order: Sequence[str], *,
                 cooldown_s: float = DEFAULT_COOLDOWN_S, clock: Callable[[], float] = time.monotonic) -> None:
        unknown = [name for name in order if name not in providers]
        if unknown or not order:
            raise ValueError(f"provider order {list(order)} names unknown providers {unknown}; known: {sorted(providers)}")
        if len(set(order)) != len(order):
            raise ValueError(f"provider order {list(order)} repeats a provider")
        self.order = tuple(order)
        self.providers = dict(providers)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}  # open ones only
        self._circuit_lock = threading.Lock()  # route() runs on several threads
        self.circuit_trips: Counter[str] = Counter()  # provider -> times its circuit opened
        # Created up front: several chunks may be routed at once, and they must share one pool
        # per provider so that provider never sees more than its max_concurrency requests.
        self._executors = {
            name: ThreadPoolExecutor(max_workers=max(1, p.max_concurrency), thread_name_prefix=f"verify-{name}")
            for name, p in self.providers.items()
        }

    def __enter__(self) -> ProviderRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads."""
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors.clear()

    @property
    def retries(self) -> int:
        """HTTP retries spent by every provider so far."""
        return sum(p.retries for p in self.providers.values())

    @property
    def open_circuits(self) -> dict[str, str]:
        """Providers skipped right now, and why."""
        with self._circuit_lock:
            return {name: circuit.reason for name, circuit in self._circuits.items()}

    @property
    def exhausted(self) -> bool:
        """True when every provider's circuit is open: the run stops and a later run tries again."""
        with self._circuit_lock:
            return all(name in self._circuits for name in self.order)

    def _admit(self, name: str) -> str:
        """``closed`` (ask freely), ``probe`` (this chunk sends one batch) or ``open`` (skip)."""
        with self._circuit_lock:
            circuit = self._circuits.get(name)
            if circuit is None:
                return "closed"
            if circuit.probing or self._clock() < circuit.probe_at:
                return "open"
            circuit.probing = True
            return "probe"

    def _trip(self, name: str, reason: str) -> None:
        """Open (or keep open) ``name``'s circuit for another cool-down."""
        with self._circuit_lock:
            if name not in self._circuits:
                self.circuit_trips[name] += 1
            self._circuits[name] = _Circuit(reason, self._clock() + self.cooldown_s)

    def _reset(self, name: str) -> None:
        with self._circuit_lock:
            self._circuits.pop(name, None)

    def route(self, leads: Sequence[LeadToVerify]) -> RoutingResult:
        """Verify ``leads``; every lead ends in exactly one of ``verdicts`` or ``unrouted``."""
        result = RoutingResult()
        answers: dict[str, list[ProviderAnswer]] = {lead.id: [] for lead in leads}
        errors: dict[str, dict[str, str]] = {lead.id: {} for lead in leads}
        pending = list(leads)
        for name in self.order:
            if not pending:
                break
            admission = self._admit(name)
            if admission == "open":
                reason = self.open_circuits.get(name, "circuit open")
                for lead in pending:
                    errors[lead.id][name] = f"skipped, provider unavailable ({reason})"
                continue
            result.asked[name] = len(pending)
            outcome = self._probe(name, pending) if admission == "probe" else self._ask(name, pending)
            still_pending = []
            for lead in pending:
                got = outcome[lead.id]
                if isinstance(got, ProviderAnswer):
                    answers[lead.id].append(got)
                    result.answered[name] = result.answered.get(name, 0) + 1
                    if got.matched:
                        result.matched[name] = result.matched.get(name, 0) + 1
                        continue
                else:
                    errors[lead.id][name] = got
                still_pending.append(lead)
            pending = still_pending

        for lead in leads:
            got = answers[lead.id]
            settled = any(a.matched for a in got) or (got and not errors[lead.id])
            if settled:
                result.verdicts.append(combine_answers(lead, got))
            else:
                result.unrouted.append(Unrouted(lead, errors[lead.id]))
        return result

    # -- one provider ---------------------------------------------------------------------------

    def _probe(self, name: str, leads: Sequence[LeadToVerify]) -> dict[str, ProviderAnswer | str]:
        """Half-open: one batch goes first; answered, the circuit closes and the rest follow."""
        first = leads[: self.providers[name].batch_size]
        try:
            outcome = self._ask(name, first)
        except BaseException:
            self._trip(name, "probe did not finish")
            raise
        if name in self.open_circuits:  # _ask re-opened it: still down, the others wait
            reason = self.open_circuits[name]
            outcome.update((lead.id, f"skipped, provider unavailable ({reason})") for lead in leads[len(first):])
            return outcome
        return outcome | (self._ask(name, leads[len(first):]) if len(leads) > len(first) else {})

    def _ask(self, name: str, leads: Sequence[LeadToVerify]) -> dict[str, ProviderAnswer | str]:
        """Each lead's answer from provider ``name``, or the reason it has none (closes or opens its circuit)."""
        provider = self.providers[name]
        size = provider.batch_size
        batches = [leads[i : i + size] for i in range(0, len(leads), size)]
        futures = [self._executors[name].submit(_attempt, provider, batch) for batch in batches]
        attempts = [future.result() for future in futures]

        some_batch_worked = any(not isinstance(a, ProviderError) for a in attempts)
        outcome: dict[str, ProviderAnswer | str] = {}
        outages: list[ProviderError] = []
        for batch, attempt in zip(batches, attempts, strict=True):
            if not isinstance(attempt, ProviderError):
                outcome.update((a.lead_id, a) for a in attempt)
            elif _is_poison_suspect(attempt, provider_works=some_batch_worked):
                outcome.update(self._isolate_poison(provider, batch, attempt))
            else:
                outages.append(attempt)
                outcome.update((lead.id, describe(attempt)) for lead in batch)
        if outages and not some_batch_worked:
            self._trip(name, describe(outages[0]))
        else:
            self._reset(name)
        return outcome

    def _isolate_poison(
        self, provider: VerificationProvider, batch: Sequence[LeadToVerify], error: ProviderError
    ) -> dict[str, ProviderAnswer | str]:
        """Split a failing batch until the records that fail are alone; the rest get answers."""
        if len(batch) == 1:
            return {batch[0].id: f"record rejected: {describe(error)}"}
        middle = len(batch) // 2
        outcome: dict[str, ProviderAnswer | str] = {}
        for half in (batch[:middle], batch[middle:]):
            # through the provider's pool, so the probes count against its concurrency too
            attempt = self._executors[provider.name].submit(_attempt, provider, half).result()
            if isinstance(attempt, ProviderError):
                if _is_poison_suspect(attempt, provider_works=True):
                    outcome.update(self._isolate_poison(provider, half, attempt))
                else:  # the provider itself broke meanwhile: splitting further would not help
                    outcome.update((lead.id, describe(attempt)) for lead in half)
            else:
                outcome.update((a.lead_id, a) for a in attempt)
        return outcome


def _attempt(provider: VerificationProvider, batch: Sequence[LeadToVerify]) -> list[ProviderAnswer] | ProviderError:
    """One request; a provider error is returned, not raised, so one batch cannot sink the others."""
    try:
        return provider.answer(batch)
    except ProviderError as exc:
        return exc


def _is_account_error(error: ProviderError) -> bool:
    """The provider refuses us, whatever we send: credentials, licence, credits."""
    if isinstance(error, (ProviderAuthError, MelissaLicenseError)):
        return True
    return isinstance(error, MelissaTransmissionError) and bool(_MELISSA_ACCOUNT_CODES.intersection(error.codes))


def _is_poison_suspect(error: ProviderError, *, provider_works: bool) -> bool:
    """Could the records of this batch, rather than the provider, be the cause?"""
    if _is_account_error(error) or isinstance(error, ProviderUnavailableError):
        return False
    if isinstance(error, ProviderHTTPError):
        if error.status_code == 429:
            return False
        # a 4xx is about the request; a 5xx is about the request only if others got through
        return error.status_code < 500 or provider_works
    # unreadable body, or a request-level Melissa code such as GE07 "invalid request"
    return isinstance(error, (ProviderResponseError, MelissaTransmissionError)) or provider_works


def describe(error: ProviderError) -> str:
    """A short reason without response bodies (they may echo the lead's contact data)."""
    parts = [type(error).__name__]
    if isinstance(error, ProviderHTTPError):
        parts.append(f"HTTP {error.status_code}")
    if isinstance(error, MelissaTransmissionError):
        parts.append(",".join(error.codes))
    parts.append(f"after {error.retries} retries")
    return " ".join(parts)
