"""Export: a run's model (or its other parts) from a checkpoint or an exported state dict,
as a state dict, a whole pickled module or ONNX; also reads the sources that embed uses."""

from lt_train._export._export import export

__all__ = ["export"]
