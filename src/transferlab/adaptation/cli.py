"""``transferlab adapt ...``: adaptation methods that make a new encoder (thin: parse, read, call, print)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..cli_common import err, escape, friendly
from ..errors import ConfigError

adapt_app = typer.Typer(no_args_is_help=True, help="Adapt a pretrained encoder to your text before training on it "
                        "(domain-adaptive pretraining); the result is an encoder folder that --encoder accepts.")


def aligned(values: list[str], n: int, flag: str) -> list[str]:
    """One value for every --data, or one value for all of them."""
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ConfigError(f"{len(values)} {flag} values for {n} --data sources",
                          hint=f"give one {flag} for all sources, or one per --data, in the same order")
    return values


def read_texts(sources: list[str], text_cols: list[str], splits: list[str], parts: list[str], *,
               skip_bad_rows: bool, seed: int) -> tuple[list[str], list[dict]]:
    """The texts of the chosen parts of each source (several columns joined by a newline), and what was read."""
    from ..data.loading import needed_columns
    from ..data.readers import read_examples
    from ..data.splits import SPLITS, split_examples
    from ..encoders.zoo import sha256_file

    texts: list[str] = []
    record = []
    n = len(sources)
    for path, cols, split, chosen in zip(sources, aligned(text_cols, n, "--text-col"), aligned(splits, n, "--split"),
                                         aligned(parts, n, "--parts")):
        columns = [c.strip() for c in cols.split(",") if c.strip()]
        wanted = [p.strip() for p in chosen.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in SPLITS]
        if not columns or not wanted or unknown:
            raise ConfigError(f"--text-col {cols!r} / --parts {chosen!r} for {path} name nothing usable",
                              hint=f"columns like body or title,body; parts from {', '.join(SPLITS)}")
        examples, report = read_examples(path, text_col=columns[0], label_col=None,
                                         keep_cols=sorted(set(columns[1:]) | set(needed_columns(split))),
                                         skip_bad_rows=skip_bad_rows, allow_empty_text=True)
        if report.skipped:
            err.print(f"[yellow]warning:[/] {escape(report.summary())}", highlight=False, soft_wrap=True)
        split_parts = split_examples(examples, split, seed=seed)
        got, empty = 0, 0
        for part in wanted:
            ex = split_parts[part]
            for i, first in enumerate(ex.texts):
                text = "\n".join(s for s in [first, *(str(ex.columns[c][i] or "") for c in columns[1:])] if s.strip())
                if text.strip():
                    texts.append(text)
                    got += 1
                else:
                    empty += 1
        entry = {"source": str(path), "text_col": columns, "split": split, "parts": wanted, "n_texts": got,
                 "n_empty_skipped": empty, "n_bad_rows_skipped": len(report.skipped)}
        if Path(path).is_file():
            entry["sha256"] = sha256_file(Path(path))
        record.append(entry)
        err.print(escape(f"{path}: {got} text(s) from {', '.join(wanted)} ({split} split)"
                         + (f", {empty} empty skipped" if empty else "")), highlight=False)
    return texts, record


@adapt_app.command("mlm")
@friendly
def mlm_cmd(
    encoder: str = typer.Option(..., help="a transformer: minilm, mpnet, a local folder or a hub id"),
    data: List[str] = typer.Option(..., "--data", help="unlabelled text: CSV/TSV/JSONL or a dataset; repeatable"),
    text_col: List[str] = typer.Option(["text"], "--text-col", help="column(s) holding the text; several joined by "
                                       "a newline (title,body); one for all --data or one per --data"),
    split: List[str] = typer.Option(["none"], help="split spec of each source (as in `train`: seed, time:COL:D1,D2,"
                                    " column:COL, none...); one for all or one per --data"),
    parts: List[str] = typer.Option(["train"], help="which parts of the split to read (train, validation, test; "
                                    "comma-separated); never give the text you will test on"),
    out_dir: Path = typer.Option(..., "--out", help="new folder for the adapted encoder"),
    epochs: int = typer.Option(1), batch_size: int = typer.Option(16), lr: float = typer.Option(5e-5),
    max_length: int = typer.Option(256, help="subword tokens per window; longer texts are cut into several"),
    mlm_probability: float = typer.Option(0.15, help="share of tokens (whole words) chosen for prediction"),
    whole_word: bool = typer.Option(True, "--whole-word/--subword", help="mask whole words or single subwords"),
    validation_fraction: float = typer.Option(0.05, help="share of the texts held out to measure perplexity"),
    max_texts: Optional[int] = typer.Option(None, help="use at most this many texts (a random draw)"),
    patience: Optional[int] = typer.Option(None, help="stop after this many epochs without a lower validation loss"),
    seed: int = typer.Option(13), device: str = typer.Option("auto"),
    precision: str = typer.Option("auto", help="auto (bf16 on a GPU that has it) | fp32 | bf16 | fp16"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="skip rows that do not parse, and report them"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="let the encoder run code shipped "
                                           "with it (only for a folder you trust)"),
):
    """Continue masked-language-model training of ENCODER on your text (domain-adaptive pretraining)."""
    import numpy as np

    from .dapt import adapt_mlm

    texts, sources = read_texts(data, text_col, split, parts, skip_bad_rows=skip_bad_rows, seed=seed)
    if max_texts is not None and len(texts) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False))
        texts = [texts[i] for i in keep]
        sources.append({"max_texts": max_texts})
    record = adapt_mlm(encoder, texts, out_dir, validation_fraction=validation_fraction, epochs=epochs,
                       batch_size=batch_size, lr=lr, max_length=max_length, probability=mlm_probability,
                       whole_word=whole_word, patience=patience, seed=seed, device=device, precision=precision,
                       sources=sources, trust_remote_code=trust_remote_code)
    v = record["validation"]
    change = (f"; validation perplexity {v['before']['perplexity']:.1f} -> {v['after']['perplexity']:.1f}"
              if v["before"] and v["after"] else "")
    err.print(escape(f"adapted {encoder} on {record['data']['n_texts']} text(s) ({record['data']['n_windows']} "
                     f"window(s)) in {record['seconds']:.0f}s{change}; MLM head: {record['base']['head']}; saved to "
                     f"{out_dir} (use it as --encoder {out_dir})"), highlight=False, soft_wrap=True)
