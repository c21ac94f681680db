"""The CRF against brute force: every tag path of short sequences is enumerated and scored by hand."""

from __future__ import annotations

import itertools

import pytest
import torch

from transferlab.errors import DataError
from transferlab.heads.crf import CRF, iob2_allowed

IOB2_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _crf(num_tags: int, seed: int = 0, allowed=None) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(num_tags, allowed=allowed).double()
    with torch.no_grad():  # larger than the default init, so that transitions matter in every comparison
        for p in (crf.start, crf.end, crf.transitions):
            p.normal_(0, 1.0)
    return crf


def _path_score(crf: CRF, em: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """The textbook sum, written independently of the module's vectorised code."""
    start = crf.start + crf.start_penalty
    trans = crf.transitions + crf.transition_penalty
    score = start[path[0]] + em[0, path[0]]
    for t in range(1, len(path)):
        score = score + trans[path[t - 1], path[t]] + em[t, path[t]]
    return score + crf.end[path[-1]]


def _brute(crf: CRF, em: torch.Tensor) -> tuple[torch.Tensor, dict[tuple[int, ...], torch.Tensor]]:
    paths = itertools.product(range(crf.num_tags), repeat=em.size(0))
    scores = {p: _path_score(crf, em, p) for p in paths}
    return torch.logsumexp(torch.stack(list(scores.values())), 0), scores


def _padded_batch(num_tags: int, lengths: list[int], seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    em = torch.randn(len(lengths), width, num_tags, generator=gen, dtype=torch.float64) * 2
    tags = torch.randint(0, num_tags, (len(lengths), width), generator=gen)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tags = tags.masked_fill(~mask, -100)  # what a data collator leaves in padding
    return em, tags, mask


@pytest.mark.parametrize("num_tags", [3, 4])
def test_log_partition_nll_and_viterbi_match_brute_force(num_tags):
    crf = _crf(num_tags)
    lengths = [3, 1, 4, 2]
    em, tags, mask = _padded_batch(num_tags, lengths)
    losses = crf.nll(em, tags, mask, reduction="none")
    decoded = crf.decode(em, mask)
    for b, n in enumerate(lengths):
        log_z, scores = _brute(crf, em[b, :n])
        assert torch.allclose(crf._log_partition(em[b : b + 1, :n], mask[b : b + 1, :n])[0], log_z)
        gold = tuple(tags[b, :n].tolist())
        assert torch.allclose(losses[b], log_z - scores[gold])
        assert decoded[b] == list(max(scores, key=lambda p: scores[p].item()))
        assert len(decoded[b]) == n
    assert torch.allclose(crf.nll(em, tags, mask, reduction="sum"), losses.sum())
    assert torch.allclose(crf.nll(em, tags, mask), losses.mean())


def test_padding_gives_the_same_nll_and_paths_as_each_sequence_alone():
    crf = _crf(4, seed=3)
    lengths = [4, 2, 1, 3]
    em, tags, mask = _padded_batch(4, lengths, seed=5)
    em[~mask] = 1e4  # padding must not leak into any sum, however large it is
    together = crf.nll(em, tags, mask, reduction="none")
    paths = crf.decode(em, mask)
    for b, n in enumerate(lengths):
        alone = crf.nll(em[b : b + 1, :n], tags[b : b + 1, :n], mask[b : b + 1, :n], reduction="none")
        assert torch.allclose(together[b], alone[0])
        assert paths[b] == crf.decode(em[b : b + 1, :n], mask[b : b + 1, :n])[0]


def test_mask_with_holes_equals_the_compacted_sequence():
    """First-sub-word labelling: off positions in the middle are skipped, not scored."""
    crf = _crf(3, seed=7)
    em, tags, _ = _padded_batch(3, [5], seed=2)
    mask = torch.tensor([[True, False, True, True, False]])
    keep = mask[0]
    compact_em, compact_tags = em[:, keep], tags[:, keep]
    full = torch.ones(1, 3, dtype=torch.bool)
    assert torch.allclose(crf.nll(em, tags, mask), crf.nll(compact_em, compact_tags, full))
    assert crf.decode(em, mask) == crf.decode(compact_em, full)


def test_iob2_allowed_encodes_the_rules():
    start, trans = iob2_allowed(IOB2_TAGS)
    idx = {t: i for i, t in enumerate(IOB2_TAGS)}
    assert start.tolist() == [True, True, False, True, False]
    assert trans[idx["B-PER"], idx["I-PER"]] and trans[idx["I-PER"], idx["I-PER"]]
    assert not trans[idx["O"], idx["I-PER"]]
    assert not trans[idx["B-LOC"], idx["I-PER"]] and not trans[idx["I-LOC"], idx["I-PER"]]
    assert trans[idx["I-PER"], idx["B-LOC"]] and trans[idx["I-LOC"], idx["O"]]
    with pytest.raises(DataError, match="'PER'"):
        iob2_allowed(["O", "PER"])


def _illegal(path: list[int]) -> bool:
    names = [IOB2_TAGS[i] for i in path]
    for prev, cur in zip(["O"] + names, names):
        if cur.startswith("I-") and prev not in ("B-" + cur[2:], cur):
            return True
    return False


def test_constraints_keep_decode_legal_even_when_emissions_favour_illegal_paths():
    idx = {t: i for i, t in enumerate(IOB2_TAGS)}
    em = torch.zeros(3, 4, len(IOB2_TAGS))
    em[0, :, idx["I-PER"]] = 50.0  # I-PER everywhere: illegal at the start
    em[1, 0, idx["O"]] = 50.0
    em[1, 1, idx["I-LOC"]] = 50.0  # O I-LOC: illegal
    em[2, 0, idx["B-PER"]] = 50.0
    em[2, 1:, idx["I-LOC"]] = 50.0  # B-PER I-LOC: illegal type change
    mask = torch.ones(3, 4, dtype=torch.bool)
    free = CRF(len(IOB2_TAGS))
    assert any(_illegal(p) for p in free.decode(em, mask))  # without constraints the emissions win

    crf = CRF(len(IOB2_TAGS), allowed=iob2_allowed(IOB2_TAGS))
    for path in crf.decode(em, mask):
        assert not _illegal(path), [IOB2_TAGS[i] for i in path]

    gen = torch.Generator().manual_seed(0)
    noisy = torch.randn(64, 6, len(IOB2_TAGS), generator=gen) * 20
    lengths = torch.randint(1, 7, (64,), generator=gen)
    noisy_mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    assert not any(_illegal(p) for p in crf.decode(noisy, noisy_mask))


def test_constraints_apply_in_the_likelihood_too():
    crf = _crf(len(IOB2_TAGS), allowed=iob2_allowed(IOB2_TAGS))
    em = torch.zeros(1, 2, len(IOB2_TAGS), dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    legal = crf.nll(em, torch.tensor([[1, 2]]), mask)  # B-PER I-PER
    illegal = crf.nll(em, torch.tensor([[0, 2]]), mask)  # O I-PER
    assert illegal - legal > 9000
    log_z, _ = _brute(crf, em[0])
    assert torch.allclose(crf._log_partition(em, mask)[0], log_z)


def test_gradients_flow_to_emissions_and_parameters():
    crf = CRF(4)
    em, tags, mask = _padded_batch(4, [3, 1, 2], seed=4)
    em = em.float().requires_grad_(True)
    loss = crf.nll(em, tags, mask)
    loss.backward()
    assert loss.item() > 0  # a probability below one
    for grad in (em.grad, crf.start.grad, crf.end.grad, crf.transitions.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert (em.grad[~mask] == 0).all()  # padding gets no gradient


def test_large_emissions_stay_finite():
    crf = CRF(3)
    em = torch.full((2, 50, 3), 300.0)
    em[:, :, 1] = -300.0
    mask = torch.ones(2, 50, dtype=torch.bool)
    loss = crf.nll(em, torch.zeros(2, 50, dtype=torch.long), mask)
    assert torch.isfinite(loss)


def test_half_precision_emissions_are_upcast():
    crf = _crf(3).float()
    em, tags, mask = _padded_batch(3, [3, 2], seed=9)
    ref = crf.nll(em.float(), tags, mask)
    assert torch.allclose(crf.nll(em.to(torch.bfloat16), tags, mask), ref, atol=0.1)
    assert crf.nll(em.to(torch.bfloat16), tags, mask).dtype == torch.float32


def test_caller_bugs_are_value_errors():
    crf = CRF(3)
    em = torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="first position"):
        crf.nll(em, torch.zeros(2, 3, dtype=torch.long), torch.tensor([[True] * 3, [False, True, True]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        crf.nll(em, torch.full((2, 3), 3), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        crf.decode(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reduction"):
        crf.nll(em, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool), reduction="avg")


def test_empty_batch():
    crf = CRF(3)
    em, mask = torch.zeros(0, 0, 3), torch.zeros(0, 0, dtype=torch.bool)
    assert crf.decode(em, mask) == []
    assert crf.nll(em, torch.zeros(0, 0, dtype=torch.long), mask).item() == 0.0


def test_constraints_survive_state_dict_round_trip():
    crf = CRF(len(IOB2_TAGS), allowed=iob2_allowed(IOB2_TAGS))
    fresh = CRF(len(IOB2_TAGS))
    fresh.load_state_dict(crf.state_dict())
    assert torch.equal(fresh.transition_penalty, crf.transition_penalty)
    assert (fresh.start_penalty < 0).sum() == 2


@pytest.mark.parametrize("with_crf", [True, False], ids=["crf", "cross-entropy"])
def test_validation_losses_in_padded_chunks_equal_one_sentence_at_a_time(with_crf):
    import numpy as np
    from torch import nn

    from transferlab.tasks.tokens import TokenClassification

    task = TokenClassification(IOB2_TAGS)
    module = nn.Module()
    module.crf = CRF(len(IOB2_TAGS), allowed=iob2_allowed(IOB2_TAGS)) if with_crf else None
    module.proj = nn.Linear(2, 2)  # something with parameters, so the task finds the device
    rng = np.random.default_rng(0)
    lengths = [1, 7, 3, 12, 5]
    outputs = [rng.normal(size=(n, len(IOB2_TAGS))).astype(np.float32) for n in lengths]
    ids = [np.array([0] + [1, 2] * ((n - 1) // 2) + [0] * ((n - 1) % 2)) for n in lengths]
    with torch.no_grad():
        one_by_one = [float(task.loss(torch.as_tensor(o)[None], torch.as_tensor(t)[None], module))
                      for o, t in zip(outputs, ids)]
    np.testing.assert_allclose(task.sentence_losses(outputs, ids, module, chunk=2), one_by_one, rtol=1e-5)
