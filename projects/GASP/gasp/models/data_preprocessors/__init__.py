from .gasp_data_preprocessor import GASPDataPreprocessor

__all__ = ['GASPDataPreprocessor']
