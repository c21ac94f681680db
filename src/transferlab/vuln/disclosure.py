"""Probably already disclosed?  A flagged record that names no CVE or GHSA id may still be about a vulnerability
that has an advisory: its text is compared with the advisories of its package by a pair scorer
(models/pairs.py), and when the best score passes a threshold chosen on validation data the report says
"probably already disclosed (ID, score)" instead of "early warning".

The default scorer is the frozen MiniLM bi-encoder (cosine of the two texts), with the threshold that maximised F1
on the validation CVEs of the VulCurator description-to-fix-commit benchmark (disclosure_default.json records the
figures and the command that chose it).  ``--pair-model DIR`` uses a scorer trained with TransferLab instead; its own
stored threshold applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .advisories import Advisory

DEFAULT = Path(__file__).with_name("disclosure_default.json")
TEXT_CHARS = 2000  # of a record or an advisory: the encoder reads 256 subwords; more text only costs time


def record_text(record: dict) -> str:
    return f"{record.get('title') or ''}\n{record.get('body') or ''}"[:TEXT_CHARS]


def advisory_text(adv: Advisory) -> str:
    return f"{adv.summary}\n{adv.details}"[:TEXT_CHARS]


def names_an_id(record: dict) -> bool:
    refs = record.get("refs") or {}
    return bool(refs.get("cve") or refs.get("ghsa"))


@dataclass
class DisclosureCheck:
    scorer: object  # a PairScorer, or a function that makes one (loaded only when a record needs comparing)
    threshold: float
    source: str

    @classmethod
    def default(cls) -> "DisclosureCheck":
        from ..encoders.zoo import resolve

        settings = json.loads(DEFAULT.read_text(encoding="utf-8"))
        resolve(settings["encoder"])  # fails here (ModelNotAvailableError), before any scoring, when it is missing

        def frozen_encoder():
            from ..models.pairs import PairScorer

            return PairScorer.frozen(settings["encoder"], max_length=settings.get("max_length", 256))

        return cls(frozen_encoder, float(settings["threshold"]), f"{settings['encoder']} cosine, threshold "
                   f"{settings['threshold']:.3f} ({settings['chosen_on']})")

    @classmethod
    def from_folder(cls, path: str | Path, *, trust_remote_code: bool = False) -> "DisclosureCheck":
        from ..models.pairs import PairScorer

        scorer = PairScorer.load(path, trust_remote_code=trust_remote_code)
        if scorer.threshold_ is None:
            raise ConfigError("this pair scorer has no threshold", where=str(path),
                              hint="choose one on validation pairs (PairScorer.choose_threshold) and save it again")
        return cls(scorer, scorer.threshold_, f"pair scorer {path} ({scorer.kind}), threshold {scorer.threshold_:.3f}")

    def best(self, record: dict, advisories: list[Advisory]) -> tuple[Advisory, float] | None:
        """The advisory this record most probably repeats, with its score, when the score passes the threshold."""
        if not advisories:
            return None
        if callable(self.scorer):
            self.scorer = self.scorer()
        text = record_text(record)
        j = int(self.scorer.rank([text], [advisory_text(a) for a in advisories])[0].argmax())
        # rank() orders by the scorer's raw score (a logit margin for a cross-encoder); the threshold was chosen on
        # predict_proba's scale, so the best pair is scored on that scale before the comparison.
        score = float(self.scorer.predict_proba([(text, advisory_text(advisories[j]))])[0])
        return (advisories[j], score) if score >= self.threshold else None
