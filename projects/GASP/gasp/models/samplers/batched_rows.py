"""Random rows of a batch of variable-length per-sample tensors, drawn in a few kernels."""
from typing import Sequence

import torch


def host_ints_to_device(values: Sequence[int], device: torch.device) -> torch.Tensor:
    """(len(values),) int64 on ``device`` without making the host wait for the GPU: the
    values go through pinned memory and an asynchronous copy."""
    host = torch.tensor(list(values), dtype=torch.int64)
    if device.type != 'cuda':
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def draw_rows(counts: Sequence[int], num: int, device: torch.device,
              generator: torch.Generator = None) -> torch.Tensor:
    """(B, num) int64 rows of the concatenation of B blocks of ``counts`` rows, row ``[b, j]``
    uniform over block ``b`` (with replacement).

    ``randint(2**62) % count`` is uniform to within ``count / 2**62``. A block with no rows
    gets the index of its (empty) start, clamped to the concatenation; callers mask those.
    """
    sizes = [max(int(c), 1) for c in counts]
    starts = [0]
    for count in counts[:-1]:
        starts.append(starts[-1] + int(count))
    last = max(sum(int(c) for c in counts) - 1, 0)
    table = host_ints_to_device(sizes + starts, device).view(2, len(counts), 1)
    draws = torch.randint(2**62, (len(counts), num), generator=generator, device=device)
    return (table[1] + draws % table[0]).clamp_(max=last)
