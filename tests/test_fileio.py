"""Crash-safe writers: a failure at any point leaves the old file and no temporary files."""
import numpy as np
import pytest

from gasp import fileio


def test_writers_round_trip(tmp_path):
    assert fileio.atomic_write_bytes(tmp_path / 'a.bin', b'abc').read_bytes() == b'abc'
    obj = dict(rays=[[1.0, 2.5], [3.0, -4.0]], name='x')
    for name in ('b.json', 'b.json.gz'):
        assert fileio.load_json(fileio.dump_json_atomic(obj, tmp_path / name)) == obj
    arrays = fileio.save_npz_atomic(tmp_path / 'c.npz', depth=np.arange(5, dtype=np.float16))
    np.testing.assert_array_equal(np.load(arrays)['depth'], np.arange(5, dtype=np.float16))
    import pickle
    with open(fileio.save_pickle_atomic(tmp_path / 'd.pkl', obj), 'rb') as f:
        assert pickle.load(f) == obj
    # the usual permissions (mkstemp alone would leave 0600)
    assert (tmp_path / 'a.bin').stat().st_mode & 0o644 == 0o644


@pytest.mark.parametrize('fail_at', ['write', 'replace'])
def test_failure_keeps_the_old_file(tmp_path, monkeypatch, fail_at):
    target = tmp_path / 'sub' / 'infos.pkl'
    fileio.save_pickle_atomic(target, {'version': 1})

    def boom(*args, **kwargs):
        raise OSError('disk full')

    if fail_at == 'replace':
        monkeypatch.setattr(fileio.os, 'replace', boom)
        with pytest.raises(OSError, match='disk full'):
            fileio.save_pickle_atomic(target, {'version': 2})
    else:
        with pytest.raises(OSError, match='disk full'):
            with fileio.atomic_open(target) as f:
                f.write(b'half of a new file')
                boom()
    import pickle
    assert pickle.loads(target.read_bytes()) == {'version': 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ['infos.pkl']


def test_atomic_open_refuses_read_modes(tmp_path):
    with pytest.raises(ValueError, match='writes only'):
        with fileio.atomic_open(tmp_path / 'a', 'rb'):
            pass
