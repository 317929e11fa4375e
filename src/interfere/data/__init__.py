"""The sequence layout (the DESIGN §3 contract) and the on-device batch generator."""

from interfere.data.layout import VOCAB, Encoded, SequenceLayout
from interfere.data.stream import Batch, BatchStream, DataConfig

__all__ = ["VOCAB", "Batch", "BatchStream", "DataConfig", "Encoded", "SequenceLayout"]
