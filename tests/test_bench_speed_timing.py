"""The speed bench's timing rule and its recorded command, without a model: a fake clock stands in for time, so a
burst of contention is injected exactly and the estimate is checked exactly (no timing assertion on this machine)."""

from pathlib import Path

import pytest

from transferlab.bench.speed import _command, _timed, _timed_side_by_side


class FakeMachine:
    """``fn`` costs 0.01 s per character of its batch; ``bursts`` add seconds to chosen calls (by call number)."""

    def __init__(self, bursts: dict[int, float] | None = None):
        self.now, self.calls, self.bursts, self.seen = 0.0, 0, bursts or {}, []

    def clock(self) -> float:
        return self.now

    def fn(self, batch: list[str]) -> None:
        self.calls += 1
        self.seen.append(list(batch))
        self.now += 0.01 * sum(map(len, batch)) + self.bursts.get(self.calls, 0.0)


TEXTS = ["x" * n for n in (5, 40, 12, 33, 7, 21, 18, 2, 50, 9)]
QUIET = len(TEXTS) / (0.01 * sum(map(len, TEXTS)))  # docs/s with no disturbance at all


def test_a_burst_of_contention_does_not_reach_the_estimate():
    # calls: 1 is the warm-up, then 3 passes of 3 batches (4, 4, 2 texts); bursts hit two batches of the first pass
    # and one of the third, never the same batch in every pass
    machine = FakeMachine(bursts={2: 5.0, 4: 1.0, 10: 3.0})
    assert _timed(machine.fn, TEXTS, batch_size=4, repeats=3, clock=machine.clock) == pytest.approx(QUIET)
    # one pass has no second chance: the burst is in the figure (the rule, not luck, removed it above)
    machine = FakeMachine(bursts={2: 5.0})
    assert _timed(machine.fn, TEXTS, batch_size=4, repeats=1, clock=machine.clock) < QUIET / 2


def test_batches_are_cut_from_the_texts_sorted_by_length():
    machine = FakeMachine()
    _timed(machine.fn, TEXTS, batch_size=4, repeats=2, clock=machine.clock)
    warm_up, passes = machine.seen[0], machine.seen[1:]
    assert warm_up == TEXTS[:16]
    assert len(passes) == 2 * 3 and passes[:3] == passes[3:]  # the same batches in every pass
    first = passes[:3]
    assert [len(b) for b in first] == [4, 4, 2]
    flat = [len(t) for b in first for t in b]
    assert flat == sorted(len(t) for t in TEXTS)  # every text once, shortest first


class SharedMachine:
    """Several runtimes on one fake machine: runtime ``r`` costs ``cost[r]`` s per character; between calls ``lo``
    and ``hi`` (a slow spell, by call number) every call takes ``factor`` times longer."""

    def __init__(self, cost: dict[str, float], spell=(0, 0), factor=1.0):
        self.now, self.calls, self.cost, self.spell, self.factor, self.log = 0.0, 0, cost, spell, factor, []

    def clock(self) -> float:
        return self.now

    def fn(self, name: str):
        def run(batch):
            self.calls += 1
            self.log.append((name, tuple(batch)))
            slow = self.factor if self.spell[0] <= self.calls <= self.spell[1] else 1.0
            self.now += slow * self.cost[name] * sum(map(len, batch))
        return run


def test_side_by_side_ratios_hold_through_a_slow_spell():
    cost = {"eager": 0.04, "fast": 0.01, "mid": 0.02}
    total = sum(map(len, TEXTS))
    # 3 warm-ups, then 3 passes of 3 batches x 3 runtimes = 9 calls a pass: the machine is 3x slower for the whole
    # first pass and half the second, as a shared VM can be for minutes
    machine = SharedMachine(cost, spell=(4, 16), factor=3.0)
    fns = {n: machine.fn(n) for n in cost}
    dps = _timed_side_by_side(fns, TEXTS, batch_size=4, repeats=3, clock=machine.clock)
    for name in cost:
        assert dps[name] == pytest.approx(len(TEXTS) / (cost[name] * total))
    assert dps["fast"] / dps["eager"] == pytest.approx(4.0)
    # timing one runtime after another, the spell lands on whichever ran then: the ratio is off (what this replaced)
    # (eager's warm-up and 9 timed calls are calls 1-10, all inside the spell; fast runs after it)
    machine = SharedMachine(cost, spell=(1, 10), factor=3.0)
    one_by_one = {n: _timed(machine.fn(n), TEXTS, batch_size=4, repeats=3, clock=machine.clock) for n in cost}
    assert one_by_one["fast"] / one_by_one["eager"] == pytest.approx(12.0)


def test_side_by_side_takes_turns_batch_by_batch_in_a_rotating_order():
    cost = {"a": 0.01, "b": 0.01, "c": 0.01}
    machine = SharedMachine(cost)
    _timed_side_by_side({n: machine.fn(n) for n in cost}, TEXTS, batch_size=4, repeats=1, clock=machine.clock)
    timed = machine.log[3:]  # after the three warm-ups
    assert len(timed) == 3 * 3
    for i in range(3):  # each batch runs on every runtime before the next batch starts
        turn = timed[3 * i:3 * i + 3]
        assert {name for name, _ in turn} == set(cost) and len({b for _, b in turn}) == 1
    assert [timed[3 * i][0] for i in range(3)] == ["a", "b", "c"]  # who goes first rotates


def test_the_recorded_command_keeps_every_option_that_shaped_the_run():
    out = Path("runs/speed")
    # before: the command dropped --max-train and --max-test, so the README's command trained another model
    assert (_command(out, None, ".venv-peers/bin/python", data=None, max_train=1000, max_test=3000, max_length=256,
                     epochs=1)
            == "transferlab bench speed --out runs/speed --peer-python PEER_PYTHON --max-train 1000 --max-test 3000")
    # a given model: the training options played no part and are left out; a custom data file is kept
    assert (_command(out, "runs/m", None, data="d.csv", max_train=1000, max_test=2000, max_length=128, epochs=2)
            == "transferlab bench speed --out runs/speed --model runs/m --data d.csv")
