"""Small building blocks shared by GASP's model parts."""
from .fourier_embedding import FourierEmbedding
from .residual_mlp_block import ResidualMLPBlock

__all__ = ['FourierEmbedding', 'ResidualMLPBlock']
