"""Group commit for the vend API: the requests that arrive while a batch is being written go together in
the next one, through `do_vends`, in one transaction.

Why: every vend of a tenant writes the same few shared rows (the receipt counter, the balance slices of
the tenant-wide accounts, the audit chain head), and one at a time a vend spends most of its time in round
trips, statements and its commit. Written together, a batch of vends costs a statement per kind of row,
one commit, and one turn on each shared row (docs/vending.md, "Performance").

One batch is written at a time per process. A request that finds none running is written at once, so a
quiet system answers as fast as before; under load, each batch takes what arrived during the last one,
after waiting a moment (`LINGER_SECONDS`) for as many requests as the last one held: their callers are
on their way back with the next ones.
A batch is all or nothing. If writing it fails, it was rolled back, and its requests are written again one
at a time, each in its own transaction, as if they had come alone: the claim on each idempotency key
still makes every one of them vend exactly once.

One batcher per process and event loop; it batches the requests of one API key (one tenant, one actor)
together, so that every audit row names its own caller; each keeps its own request id.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from citygas.identity.principal import Principal
from citygas.platform.uow import Database
from citygas.vending.rules import DEFAULT_LIMITS, VendLimits, VendRequest
from citygas.vending.service import Deferred, VendOutcome, do_vends, vend_body

MAX_BATCH = 32  # enough to soak up a burst; small enough that one batch's rows stay a few kilobytes
# How long a batch may wait for the callers of the last one to come back (a lone request never waits:
# the last batch held one). A round trip on a busy server; small against the write it saves.
LINGER_SECONDS = 0.003


@dataclass(frozen=True)
class VendAnswer:
    body: dict[str, Any]  # what the API returns (`vend_body`)
    replayed: bool  # the key had vended before: the first answer, unchanged


Result = VendAnswer | BaseException


@dataclass
class _Waiting:
    request: VendRequest
    request_id: str | None
    future: asyncio.Future[VendAnswer]


class VendBatcher:
    def __init__(
        self,
        db: Database,
        master_key: bytes,
        *,
        max_batch: int = MAX_BATCH,
        linger_seconds: float = LINGER_SECONDS,
        limits: VendLimits = DEFAULT_LIMITS,
    ) -> None:
        self.db = db
        self.master_key = master_key
        self.max_batch = max_batch
        self.linger_seconds = linger_seconds
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self._queues: dict[tuple[str, str], tuple[Principal, list[_Waiting]]] = {}
        self._arrived = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # How the last requests were grouped, for the benchmark and the tests.
        self.batch_sizes: deque[int] = deque(maxlen=1000)

    async def vend(self, principal: Principal, request: VendRequest, request_id: str | None) -> VendAnswer:
        """Vend `request` for `principal` in the next batch; its answer, or the error that refused it."""
        waiting = _Waiting(request, request_id, self.loop.create_future())
        group = (str(principal.tenant_id), str(principal.id))
        self._queues.setdefault(group, (principal, []))[1].append(waiting)
        self._arrived.set()
        if self._writer is None or self._writer.done():
            self._writer = self.loop.create_task(self._write_batches())
        return await waiting.future

    async def _write_batches(self) -> None:
        """Write batches one after another while requests wait: one transaction at a time per process,
        so that what arrives during a write goes together in the next."""
        expected = 1
        while self._queues:
            await self._gather(expected)
            taken = self._take()
            if taken is None:
                continue
            await self._run(*taken)
            expected = len(taken[1])

    async def _gather(self, expected: int) -> None:
        """Wait, for at most the linger time, until as many requests wait as the last batch held. The
        callers of the last batch are busy reading their answers and sending their next requests; starting
        at once would write the first of them alone, and the rest after it."""
        deadline = self.loop.time() + self.linger_seconds
        while self._waiting() < expected and (left := deadline - self.loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _waiting(self) -> int:
        return sum(len(queue) for _, queue in self._queues.values())

    def _take(self) -> tuple[Principal, list[_Waiting]] | None:
        """The first group's waiting requests, up to a batch; a key already in the batch stays queued for
        the next one (it will replay the first). The group's rest goes to the back of the line, so that
        one busy API key cannot keep another waiting."""
        for group, (principal, queue) in list(self._queues.items()):
            batch: list[_Waiting] = []
            keys: set[str] = set()
            left: list[_Waiting] = []
            for waiting in queue:
                if waiting.future.done():  # the caller went away before its turn: nothing to write
                    continue
                if len(batch) < self.max_batch and waiting.request.idempotency_key not in keys:
                    keys.add(waiting.request.idempotency_key)
                    batch.append(waiting)
                else:
                    left.append(waiting)
            del self._queues[group]
            if left:
                self._queues[group] = (principal, left)
            if batch:
                return principal, batch
        return None

    async def _run(self, principal: Principal, batch: list[_Waiting]) -> None:
        self.batch_sizes.append(len(batch))
        requests = [(w.request, w.request_id) for w in batch]
        try:
            results: list[Result] = await anyio.to_thread.run_sync(self.write, principal, requests)
        except asyncio.CancelledError:  # the server is stopping; a retry replays whatever committed
            for waiting in batch:
                waiting.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it (a 500)
            results = [exc] * len(batch)
        for waiting, result in zip(batch, results, strict=True):
            _settle(waiting.future, result)

    def write(self, principal: Principal, requests: list[tuple[VendRequest, str | None]]) -> list[Result]:
        """Write a batch (in a worker thread). All or nothing; on failure, each request on its own."""
        try:
            results = self._write_together(principal, requests)
        except Exception as exc:  # noqa: BLE001 - rolled back, whatever it was: one at a time, as if alone
            if len(requests) == 1:
                return [exc]
            results = [self._write_alone(principal, one) for one in requests]
        deferred_after = zip(results, requests, strict=True)
        return [self._write_alone(principal, one) if r is None else r for r, one in deferred_after]

    def _write_alone(self, principal: Principal, one: tuple[VendRequest, str | None]) -> Result:
        try:
            (result,) = self._write_together(principal, [one])
        except Exception as exc:  # noqa: BLE001 - the caller's answer: a problem+json, or a 500 if not a domain error
            return exc
        assert result is not None  # one request is never deferred
        return result

    def _write_together(
        self, principal: Principal, requests: list[tuple[VendRequest, str | None]]
    ) -> list[Result | None]:
        """One transaction for the batch; None for a request deferred to after it."""
        with self.db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor) as uow:
            outcomes = do_vends(
                uow.session,
                [request for request, _ in requests],
                master_key=self.master_key,
                limits=self.limits,
                request_ids=[request_id for _, request_id in requests],
            )
            results: list[Result | None] = []
            for outcome in outcomes:
                if isinstance(outcome, VendOutcome):
                    body = vend_body(
                        uow.session, outcome.vend, customer=outcome.customer, meter=outcome.meter
                    )
                    results.append(VendAnswer(body, outcome.replayed))
                elif isinstance(outcome, Deferred):
                    results.append(None)
                else:
                    results.append(outcome)
            if any(isinstance(o, VendOutcome) and not o.replayed for o in outcomes):
                uow.because(f"vend through the API ({principal.label})").commit()
            return results


def _settle(future: asyncio.Future[VendAnswer], result: Result) -> None:
    if future.done():  # the caller went away (its request was cancelled); the vend stands, a retry replays it
        return
    if isinstance(result, VendAnswer):
        future.set_result(result)
    else:
        future.set_exception(result)


def batcher_for(state: Any, db: Database, master_key: bytes) -> VendBatcher:
    """The batcher of this process's running event loop, kept on the app's state."""
    batcher: VendBatcher | None = getattr(state, "vend_batcher", None)
    if batcher is None or batcher.loop is not asyncio.get_running_loop():
        batcher = VendBatcher(db, master_key)
        state.vend_batcher = batcher
    return batcher
