"""Synthetic telegrams: counts, handwriting, scan degradations, manual-entry errors, datasets.

Modules: :mod:`~pipeline.synth.counts` (plausible counts obeying the sum rule),
:mod:`~pipeline.synth.handwriting` (digit bank and writers), :mod:`~pipeline.synth.degrade`
(scan presets and the page transform), :mod:`~pipeline.synth.manual` (data-entry errors),
:mod:`~pipeline.synth.writer` (one telegram, and the ``escrutinio synth`` dataset files).
"""

from pipeline.synth.counts import MesaCounts, generate_counts
from pipeline.synth.degrade import QUALITIES, ScanParams, degrade, sample_scan_params
from pipeline.synth.handwriting import DigitBank, WriterStyle, load_digit_bank, sample_writer
from pipeline.synth.manual import ManualError, inject_manual_errors
from pipeline.synth.writer import (
    SynthConfig,
    SyntheticTelegram,
    generate_telegram,
    telegram_rng,
    write_dataset,
)

__all__ = [
    "QUALITIES",
    "DigitBank",
    "ManualError",
    "MesaCounts",
    "ScanParams",
    "SynthConfig",
    "SyntheticTelegram",
    "WriterStyle",
    "degrade",
    "generate_counts",
    "generate_telegram",
    "inject_manual_errors",
    "load_digit_bank",
    "sample_scan_params",
    "sample_writer",
    "telegram_rng",
    "write_dataset",
]
