"""aemg.model: the AEMG model (token encoder, embeddings, VQ codebook, Transformer) and configs."""
from .config import ModelConfig, PretrainConfig, TrainConfig, load_config, preset
from .network import AEMG

__all__ = ["AEMG", "ModelConfig", "PretrainConfig", "TrainConfig", "load_config", "preset"]
