"""One error type for bad input data, with the place it was found and what to do."""
from typing import Optional


class AV2DataError(RuntimeError):
    """Raised when an AV2-format file or info entry cannot be used.

    The message always names what is wrong, where (log, file, timestamp) and what to do.
    """

    def __init__(self,
                 problem: str,
                 *,
                 log_id: Optional[str] = None,
                 path: Optional[str] = None,
                 timestamp_ns: Optional[int] = None,
                 fix: str = 're-download or regenerate this log, or move it out of the data '
                 'root and re-run tools/create_data.py.'):
        where = [
            f'log {log_id}' if log_id else None, f'file {path}' if path else None,
            f'timestamp_ns {timestamp_ns}' if timestamp_ns is not None else None
        ]
        where = ', '.join(w for w in where if w)
        super().__init__(
            f'{problem} ({where}). What to do: {fix}' if where else f'{problem}. What to do: {fix}')
        self.log_id = log_id
        self.path = path
        self.timestamp_ns = timestamp_ns
