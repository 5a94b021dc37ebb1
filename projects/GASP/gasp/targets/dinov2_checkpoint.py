"""Load official DINOv2 checkpoints (``dinov2_vits14_pretrain.pth`` etc.) into
:class:`~gasp.targets.dinov2_vit.DINOv2ViT`, offline.

The official file is a plain state dict with the names of facebookresearch/dinov2's
``DinoVisionTransformer``; :func:`convert_dinov2_keys` renames them to mmpretrain's:

==============================  ==================================
official                        mmpretrain
==============================  ==================================
``patch_embed.proj.*``          ``patch_embed.projection.*``
``blocks.N.norm1.*``            ``layers.N.ln1.*``
``blocks.N.attn.qkv.*``         ``layers.N.attn.qkv.*``
``blocks.N.attn.proj.*``        ``layers.N.attn.proj.*``
``blocks.N.ls1.gamma``          ``layers.N.attn.gamma1.weight``
``blocks.N.norm2.*``            ``layers.N.ln2.*``
``blocks.N.mlp.fc1.*``          ``layers.N.ffn.layers.0.0.*``
``blocks.N.mlp.fc2.*``          ``layers.N.ffn.layers.1.*``
``blocks.N.mlp.w12.*`` / w3     ``layers.N.ffn.w12.*`` / w3 (ViT-g)
``blocks.N.ls2.gamma``          ``layers.N.ffn.gamma2.weight``
``norm.*``                      ``ln1.*``
``cls_token``, ``pos_embed``,   unchanged
``register_tokens``,
``mask_token``
==============================  ==================================

Training checkpoints with chunked blocks (``blocks.<chunk>.<N>.``) and ``teacher.backbone.``
prefixes are accepted too.
"""
import hashlib
import re
from pathlib import Path
from typing import Dict

import torch

from ..datasets.errors import AV2DataError

_BLOCK_RULES = (
    ('norm1.', 'ln1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ls1.gamma', 'attn.gamma1.weight'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('mlp.w12.', 'ffn.w12.'),
    ('mlp.w3.', 'ffn.w3.'),
    ('ls2.gamma', 'ffn.gamma2.weight'),
)
_TOP_RULES = (
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('norm.', 'ln1.'),
)
_UNCHANGED = ('cls_token', 'pos_embed', 'register_tokens', 'mask_token')
_BLOCK = re.compile(r'^blocks\.(?:\d+\.)?(\d+)\.(.*)$')


def file_sha256(path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file (identifies the weights in cache manifests)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The backbone state dict of a plain or wrapped (``model``/``teacher``) checkpoint."""
    state = checkpoint
    for key in ('state_dict', 'model', 'teacher'):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    prefixes = ('backbone.', 'module.')
    out = {}
    for name, value in state.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
        out[name] = value
    return out


def convert_dinov2_keys(official: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an official DINOv2 state dict to :class:`DINOv2ViT` names.

    Raises:
        KeyError: a key that no rule knows (not a DINOv2 ViT checkpoint).
    """
    converted = {}
    for name, value in official.items():
        match = _BLOCK.match(name)
        if match:
            index, rest = match.groups()
            new = next((f'layers.{index}.{dst}{rest[len(src):]}'
                        for src, dst in _BLOCK_RULES if rest.startswith(src)), None)
        elif name in _UNCHANGED:
            new = name
        else:
            new = next((dst + name[len(src):] for src, dst in _TOP_RULES if name.startswith(src)),
                       None)
        if new is None:
            if name.startswith('head.') or name.startswith('dino_head') or name.startswith(
                    'ibot_head'):
                continue  # heads are not part of the backbone
            raise KeyError(f'unexpected key {name!r} in a DINOv2 checkpoint')
        converted[new] = value
    return converted


def load_dinov2_checkpoint(model: torch.nn.Module, path) -> str:
    """Load an official DINOv2 ``.pth`` file into ``model`` (strictly) without network.

    Args:
        model: a :class:`DINOv2ViT` of the checkpoint's architecture.
        path: local checkpoint file.

    Returns:
        The SHA-256 of the file.

    Raises:
        AV2DataError: the file is missing, or keys / shapes do not match the architecture
            (the message lists them and names the ``--backbone`` to pick).
    """
    path = Path(path)
    if not path.is_file():
        raise AV2DataError(
            'DINOv2 weights file not found',
            path=str(path),
            fix='download the official checkpoint (e.g. '
            'dinov2_vits14_pretrain.pth) on a machine with network and pass '
            'its local path with --weights.')
    state = convert_dinov2_keys(
        unwrap_state_dict(torch.load(path, map_location='cpu', weights_only=True)))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong_shape:
        raise AV2DataError(
            f'checkpoint does not fit the chosen DINOv2 architecture: missing {missing[:5]}, '
            f'unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]}',
            path=str(path),
            fix='choose the --backbone that matches the file (e.g. dinov2_vitb14 for '
            'dinov2_vitb14_pretrain.pth, *_reg for the register variants).')
    model.load_state_dict(state, strict=True)
    return file_sha256(path)
