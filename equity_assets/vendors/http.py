"""The HTTP base every vendor resource is built on (Melissa, BatchData, Instantly, VAPI).

One session factory: default ``(connect, read)`` timeouts, urllib3 ``Retry`` on 429/5xx and
transport errors with exponential backoff + jitter, ``Retry-After`` honoured, and a counter of
the retries that actually happened (benchmarks report it). Plus the typed errors every provider
client raises, so callers can tell "service said no" from "service unreachable".
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import dagster as dg
import requests
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

#: Default ``(connect, read)`` timeout in seconds for every provider call.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)

#: Statuses worth retrying: throttling and transient server failures.
RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)

#: POST is included on purpose: every provider API we call is POST-only, and each call is
#: safe to repeat (Melissa/BatchData are lookups; Instantly dedupes with skip_if_in_campaign).
RETRY_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"})

#: Longest ``Retry-After`` we obey; a bigger value is capped so one header cannot stall a run.
DEFAULT_RETRY_AFTER_MAX_S = 120

T = TypeVar("T")
R = TypeVar("R")

#: Characters of an error body kept in exception messages (bodies may echo input, keep it short).
_ERROR_BODY_CHARS = 300


class RetryCounter:
    """Thread-safe count of retries performed through one session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def increment(self) -> None:
        """Record one retry."""
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """Retries recorded so far."""
        with self._lock:
            return self._value


class CountingRetry(Retry):
    """urllib3 ``Retry`` that adds one to a shared :class:`RetryCounter` per retry taken.

    urllib3 derives a fresh ``Retry`` for every attempt via :meth:`new`, so the counter object is
    carried across those copies instead of living on a single instance.
    """

    def __init__(self, *args: Any, counter: RetryCounter | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter if counter is not None else RetryCounter()

    def new(self, **kw: Any) -> CountingRetry:
        kw.setdefault("counter", self.counter)
        return super().new(**kw)

    def increment(self, *args: Any, **kwargs: Any) -> CountingRetry:
        # super() raises MaxRetryError when the budget is spent: only count retries that happen.
        retry = super().increment(*args, **kwargs)
        self.counter.increment()
        return retry


class RetryingSession(requests.Session):
    """``requests.Session`` with a default timeout and a :class:`RetryCounter`."""

    def __init__(self, *, timeout: tuple[float, float], retry_counter: RetryCounter) -> None:
        super().__init__()
        self.timeout = timeout
        self.retry_counter = retry_counter

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def build_session(
    *,
    total_retries: int = 5,
    backoff_factor: float = 0.5,
    backoff_jitter: float = 0.5,
    backoff_max: float = 30.0,
    retry_after_max: int = DEFAULT_RETRY_AFTER_MAX_S,
    status_forcelist: Collection[int] = RETRY_STATUSES,
    allowed_methods: Collection[str] = RETRY_METHODS,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    pool_maxsize: int = 10,
    headers: Mapping[str, str] | None = None,
) -> RetryingSession:
    """Build a session that retries 429/5xx and transport errors with backoff + jitter.

    ``Retry-After`` wins over the computed backoff when the server sends it. When the retry budget
    is spent on an HTTP status, the last response is returned (not raised) so the caller can turn
    it into a :class:`ProviderHTTPError` carrying the status and body; transport failures still
    raise ``requests.RequestException``. ``pool_maxsize`` should be at least the number of threads
    sharing the session.
    """
    counter = RetryCounter()
    retry = CountingRetry(
        total=total_retries,
        status_forcelist=tuple(status_forcelist),
        allowed_methods=frozenset(m.upper() for m in allowed_methods),
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_jitter,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        counter=counter,
    )
    session = RetryingSession(timeout=timeout, retry_counter=counter)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json"})
    if headers:
        session.headers.update(headers)
    return session


def backoff_delay(attempt: int, *, factor: float, jitter: float, cap: float, retry_after: str | None = None,
                  retry_after_max: float = DEFAULT_RETRY_AFTER_MAX_S) -> float:
    """Seconds to wait before retry ``attempt + 1`` of a call the session may not retry by itself.

    The same rule as the session's: ``factor * 2**attempt`` plus up to ``jitter``, capped at ``cap``;
    a ``Retry-After`` in seconds wins when it asks for longer (capped at ``retry_after_max``).
    """
    delay = min(factor * (2 ** attempt) + random.uniform(0, jitter), cap)
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), retry_after_max))
    return delay


def retries_spent(response: requests.Response) -> int:
    """Retries urllib3 made before producing ``response`` (0 when unknown)."""
    retry = getattr(response.raw, "retries", None)
    return len(retry.history) if isinstance(retry, Retry) else 0


class ProviderError(RuntimeError):
    """A call to an external provider failed; ``retries`` is what was spent on the failing call."""

    def __init__(self, message: str, *, provider: str, retries: int = 0) -> None:
        super().__init__(message)
        self.provider = provider
        self.retries = retries


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status (after retries for retryable ones)."""

    def __init__(self, message: str, *, provider: str, status_code: int, body: str, retries: int = 0) -> None:
        super().__init__(message, provider=provider, retries=retries)
        self.status_code = status_code
        self.body = body


class ProviderAuthError(ProviderHTTPError):
    """The provider rejected our credentials (HTTP 401/403)."""


class ProviderUnavailableError(ProviderError):
    """No usable answer: connection refused/reset or timed out, every retry included."""


class ProviderResponseError(ProviderError):
    """The provider answered 2xx with a body we do not understand."""


def post_json(
    session: RetryingSession,
    url: str,
    payload: Mapping[str, Any],
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON body, or raise a :class:`ProviderError`."""
    try:
        response = session.post(url, json=payload, headers=dict(headers or {}))
    except requests.RequestException as exc:
        spent = _retries_before_giving_up(session, url, exc)
        raise ProviderUnavailableError(
            f"{provider}: {type(exc).__name__} calling {url} after {spent} retries",
            provider=provider,
            retries=spent,
        ) from exc
    if response.status_code >= 400:
        raise _http_error(response, provider=provider, url=url)
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderResponseError(
            f"{provider}: non-JSON body from {url} (HTTP {response.status_code})",
            provider=provider,
            retries=retries_spent(response),
        ) from exc


def _retries_before_giving_up(session: RetryingSession, url: str, exc: requests.RequestException) -> int:
    """Retries spent before a transport failure: the whole budget if urllib3 gave up, else none."""
    if not (exc.args and isinstance(exc.args[0], MaxRetryError)):
        return 0
    retry = session.get_adapter(url).max_retries
    return retry.total if isinstance(retry, Retry) and isinstance(retry.total, int) else 0


def _http_error(response: requests.Response, *, provider: str, url: str) -> ProviderHTTPError:
    """Turn an error response into the matching typed exception."""
    body = response.text[:_ERROR_BODY_CHARS]
    spent = retries_spent(response)
    cls = ProviderAuthError if response.status_code in (401, 403) else ProviderHTTPError
    return cls(
        f"{provider}: HTTP {response.status_code} from {url} after {spent} retries: {body}",
        provider=provider,
        status_code=response.status_code,
        body=body,
        retries=spent,
    )


def map_in_threads(func: Callable[[T], R], items: Sequence[T], *, max_workers: int) -> list[R]:
    """``[func(x) for x in items]`` on up to ``max_workers`` threads, results in input order.

    The first exception cancels the calls not yet started and is re-raised: a provider that is
    down should stop the batch, not burn through every remaining retry budget.
    """
    if max_workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    executor = ThreadPoolExecutor(max_workers=min(max_workers, len(items)))
    try:
        futures = [executor.submit(func, item) for item in items]
        return [future.result() for future in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class HttpApiResource(dg.ConfigurableResource):
    """Shared fields and session lifecycle of the HTTP provider resources.

    The session (and its connection pool) is opened in ``setup_for_execution`` and closed in
    ``teardown_after_execution``; outside Dagster (scripts, tests) it is opened on first use.
    """

    provider: ClassVar[str] = "http"
    #: Methods the session retries by itself; a vendor whose POST is not safe to repeat narrows it.
    retry_methods: ClassVar[frozenset[str]] = RETRY_METHODS

    base_url: str = Field(description="Service root, e.g. https://api.example.com (no trailing path).")
    timeout_s: float = Field(default=DEFAULT_TIMEOUT[1], description="Read timeout per request, seconds.")
    connect_timeout_s: float = Field(default=DEFAULT_TIMEOUT[0], description="Connect timeout, seconds.")
    max_retries: int = Field(default=5, ge=0, description="Retries per request on 429/5xx/transport errors.")
    backoff_factor: float = Field(default=0.5, ge=0, description="Exponential backoff base, seconds.")
    backoff_jitter: float = Field(default=0.5, ge=0, description="Random extra backoff, 0..jitter seconds.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Cap on one backoff sleep, seconds.")
    retry_after_max_s: int = Field(
        default=DEFAULT_RETRY_AFTER_MAX_S, ge=0, description="Cap on an obeyed Retry-After, seconds."
    )

    _session: RetryingSession | None = PrivateAttr(default=None)
    _session_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._session = self._new_session()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and its pooled connections (safe to call twice)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def retries_total(self) -> int:
        """Retries taken by this resource's session since it was opened."""
        return self._session.retry_counter.value if self._session is not None else 0

    def _connection_pool_size(self) -> int:
        """Connections to keep per host; subclasses that fan out raise it to their concurrency."""
        return 4

    def _session_headers(self) -> Mapping[str, str]:
        """Headers sent with every request (a vendor whose every call carries its key adds it here)."""
        return {}

    def _new_session(self) -> RetryingSession:
        return build_session(
            total_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            backoff_jitter=self.backoff_jitter,
            backoff_max=self.backoff_max_s,
            retry_after_max=self.retry_after_max_s,
            allowed_methods=self.retry_methods,
            timeout=(self.connect_timeout_s, self.timeout_s),
            pool_maxsize=self._connection_pool_size(),
            headers=self._session_headers(),
        )

    def _backoff(self, attempt: int, retry_after: str | None = None) -> float:
        """:func:`backoff_delay` with this resource's settings, counted as a retry of its session."""
        self._get_session().retry_counter.increment()
        return backoff_delay(attempt, factor=self.backoff_factor, jitter=self.backoff_jitter, cap=self.backoff_max_s,
                             retry_after=retry_after, retry_after_max=self.retry_after_max_s)

    def _get_session(self) -> RetryingSession:
        """The open session, created once even when several threads ask at the same time."""
        with self._session_lock:
            if self._session is None:
                self._session = self._new_session()
            return self._session

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _post(self, path: str, payload: Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> Any:
        """POST JSON to ``base_url + path``; typed :class:`ProviderError` on failure."""
        return post_json(self._get_session(), self._url(path), payload, provider=self.provider, headers=headers)


class BatchingApiResource(HttpApiResource):
    """A vendor API called with batches of records, a few batches in flight at once.

    Subclasses define ``batch_size`` (the vendor's per-request limit differs) and call
    :meth:`_in_batches` with the function that sends one batch and returns its results in order.
    """

    batch_size: int = Field(default=100, ge=1, description="Records per request.")
    max_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once.")

    def _connection_pool_size(self) -> int:
        return max(4, self.max_concurrency)

    def _in_batches(self, send: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R]:
        """``send`` every ``batch_size`` slice of ``items`` on up to ``max_concurrency`` threads, flattened."""
        self._get_session()  # open the pool before threads share it
        size = self.batch_size
        batches = [items[start : start + size] for start in range(0, len(items), size)]
        sent = map_in_threads(send, batches, max_workers=self.max_concurrency)
        return [result for batch in sent for result in batch]
