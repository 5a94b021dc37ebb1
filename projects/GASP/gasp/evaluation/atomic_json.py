"""Write JSON so that a crash leaves either the old file or the new one, never half of one."""
import gzip
import json
import os
import tempfile
from pathlib import Path


def dump_json_atomic(obj, path, indent=None) -> Path:
    """Write ``obj`` as JSON to ``path`` (gzip-compressed when it ends in ``.gz``).

    The data goes to a temporary file in the same folder, is flushed to disk and then renamed
    over ``path``. ``indent`` as in :func:`json.dumps` (None: compact, for large ray files).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as raw:
            data = json.dumps(obj, indent=indent).encode()
            if path.suffix == '.gz':
                with gzip.GzipFile(fileobj=raw, mode='wb') as f:
                    f.write(data)
            else:
                raw.write(data)
            raw.flush()
            os.fsync(raw.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_json(path):
    """Read a JSON file written by :func:`dump_json_atomic` (plain or ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rt') as f:
        return json.load(f)
