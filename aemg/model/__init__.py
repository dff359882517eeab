"""aemg.model: the AEMG model (token encoder, embeddings, VQ codebook, Transformer) and configs."""
from .network import AEMG
from .config import ModelConfig, PretrainConfig, TrainConfig, load_config, preset

__all__ = ["AEMG", "ModelConfig", "PretrainConfig", "TrainConfig", "load_config", "preset"]
