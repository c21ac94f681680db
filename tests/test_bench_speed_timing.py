"""The speed bench's timing rule and its recorded command, without a model: a fake clock stands in for time, so a
burst of contention is injected exactly and the estimate is checked exactly (no timing assertion on this machine)."""

from pathlib import Path

import pytest

from transferlab.bench.speed import _command, _timed


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


def test_the_recorded_command_keeps_every_option_that_shaped_the_run():
    out = Path("runs/speed")
    # before: the command dropped --max-train and --max-test, so the README's command trained another model
    assert (_command(out, None, ".venv-peers/bin/python", data=None, max_train=1000, max_test=3000, max_length=256,
                     epochs=1)
            == "transferlab bench speed --out runs/speed --peer-python PEER_PYTHON --max-train 1000 --max-test 3000")
    # a given model: the training options played no part and are left out; a custom data file is kept
    assert (_command(out, "runs/m", None, data="d.csv", max_train=1000, max_test=2000, max_length=128, epochs=2)
            == "transferlab bench speed --out runs/speed --model runs/m --data d.csv")
