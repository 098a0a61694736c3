"""The meter simulator: live `SimulatedMeter`s whose clocks run with the wall clock (optionally faster),
with a household cooking on each, saved to disk between runs.

A simulated meter's state belongs to the meter, not to the platform: like a real meter it keeps its own
registers, TID memory and key, here in one JSON file per meter under the state directory (written owner-
only, because the file holds the meter's decoder key, as a real meter's secure memory does).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from citygas.meters.fleet import CookingSession, Household, cooking_sessions, day_factor, make_household
from citygas.meters.model import SimulatedMeter

IST = timedelta(hours=5, minutes=30)


def _ist_day(moment: datetime) -> date:
    return (moment.astimezone(UTC) + IST).date()


def _ist_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - IST


def _rng(*parts: object) -> random.Random:
    """A generator seeded from the parts, so a household behaves the same across restarts (not security)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311


@dataclass
class MeterRuntime:
    """One simulated meter and the household that uses it."""

    key: str
    meter: SimulatedMeter
    household: Household
    parameter_counter: int = 0  # the last authorised settings counter the meter accepted
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sessions_on(self, day: date) -> tuple[CookingSession, ...]:
        # The same household cooks the same way on the same day, however often the simulator restarts.
        return cooking_sessions(self.household, day_factor(day), _rng(self.key, day.isoformat()))

    def run_until(self, to: datetime) -> None:
        """Live the household's day(s) up to `to`: the meter draws gas during each cooking session."""
        while self.meter.now < to:
            day = _ist_day(self.meter.now)
            midnight = _ist_midnight(day)
            day_end = min(to, midnight + timedelta(days=1))
            for session in self.sessions_on(day):
                start = midnight + timedelta(seconds=session.starts_after_midnight)
                end = start + timedelta(seconds=session.seconds)
                lo, hi = max(start, self.meter.now), min(end, day_end)
                if hi <= lo:
                    continue
                if lo > self.meter.now:
                    self.meter.advance_clock(lo)
                # The share of the session's litres that falls in [lo, hi).
                done_before = session.litres * int((lo - start).total_seconds()) // session.seconds
                done_after = session.litres * int((hi - start).total_seconds()) // session.seconds
                seconds = int((hi - lo).total_seconds())
                if seconds > 0:
                    self.meter.consume(done_after - done_before, seconds)
            if day_end > self.meter.now:
                self.meter.advance_clock(day_end)


class SimulatorHub:
    """The live simulated meters of this process. `speed` > 1 runs the meters' time faster than the wall
    clock (for demos: a day of cooking in minutes)."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        master_key: bytes,
        speed: float = 1.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.master_key = master_key  # to key new simulated meters as a factory would
        self.speed = speed
        self._now = now or (lambda: datetime.now(UTC))
        self._real_epoch = self._now()
        self._runtimes: dict[str, MeterRuntime] = {}
        self._lock = threading.Lock()
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def sim_now(self) -> datetime:
        elapsed = self._now() - self._real_epoch
        return (self._real_epoch + elapsed * self.speed).replace(microsecond=0)

    def get(self, key: str) -> MeterRuntime | None:
        with self._lock:
            runtime = self._runtimes.get(key)
        if runtime is None:
            runtime = self._load(key)
        return runtime

    def add(self, key: str, meter: SimulatedMeter) -> MeterRuntime:
        runtime = MeterRuntime(key, meter, make_household(_rng("household", key)))
        with self._lock:
            self._runtimes.setdefault(key, runtime)
            runtime = self._runtimes[key]
        self.save(runtime)
        return runtime

    def catch_up(self, runtime: MeterRuntime) -> None:
        """Bring a meter's clock to the simulated now, living the household's use on the way."""
        target = self.sim_now()
        if target > runtime.meter.now:
            runtime.run_until(target)

    def tick(self) -> None:
        for runtime in list(self._runtimes.values()):
            with runtime.lock:
                self.catch_up(runtime)

    def save(self, runtime: MeterRuntime) -> None:
        if self.state_dir is None:
            return
        path = self._path(runtime.key)
        tmp = path.with_suffix(".tmp")
        body = json.dumps(
            {"meter": runtime.meter.to_dict(), "parameter_counter": runtime.parameter_counter},
            separators=(",", ":"),
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        tmp.replace(path)

    def save_all(self) -> None:
        for runtime in list(self._runtimes.values()):
            with runtime.lock:
                self.save(runtime)

    def _path(self, key: str) -> Path:
        assert self.state_dir is not None
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in key)
        return self.state_dir / f"{safe}.json"

    def _load(self, key: str) -> MeterRuntime | None:
        if self.state_dir is None or not self._path(key).exists():
            return None
        data = json.loads(self._path(key).read_text(encoding="utf-8"))
        meter = SimulatedMeter.from_dict(data["meter"])
        runtime = MeterRuntime(
            key,
            meter,
            make_household(_rng("household", key)),
            parameter_counter=int(data.get("parameter_counter", 0)),
        )
        with self._lock:
            self._runtimes.setdefault(key, runtime)
            return self._runtimes[key]
