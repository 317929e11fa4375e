"""The sequence layout (the contract of docs/design.md) and the on-device batch generator."""

from interfere.data.layout import VOCAB, Encoded, SequenceLayout
from interfere.data.stream import Batch, BatchStream, DataConfig

__all__ = ["VOCAB", "Batch", "BatchStream", "DataConfig", "Encoded", "SequenceLayout"]
