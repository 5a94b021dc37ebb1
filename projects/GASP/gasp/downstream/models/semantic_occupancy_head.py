"""4D semantic occupancy: an implicit decoder answering the class at (x, y, z, t) queries."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module()
class SemanticOccupancyHead(BaseModule):
    """GASP's implicit field with one ``semantics`` head of ``num_classes`` logits.

    Reads ``semantic_queries`` (Q, 4) and ``semantic_labels`` (Q,) of each data sample
    (:class:`SemanticOccupancyTargets`); :meth:`predict` writes ``pred_semantic_labels`` (Q,)
    (argmax class) and ``pred_semantic_logits`` (Q, C).

    Args:
        num_classes: C (free, static and the class groups).
        decoder: :class:`ImplicitOccupancyDecoder` config; its ``heads`` are set here.
        class_weight: cross-entropy weight per class (None: equal).
        loss_weight: scale of the loss.
    """

    def __init__(self,
                 num_classes: int,
                 decoder: dict,
                 class_weight: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        decoder = dict(decoder, heads=dict(semantics=num_classes), planar_heads=())
        self.decoder = MODELS.build(decoder)
        self.num_classes = num_classes
        self.register_buffer(
            'class_weight',
            None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32),
            persistent=False)
        self.loss_weight = loss_weight

    def forward(self, bev: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W') features, (B, Q, 4) queries -> (B, Q, num_classes) logits."""
        return self.decoder(bev, queries, head='semantics')

    def loss(self, bev: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        queries = torch.stack([s.semantic_queries for s in data_samples])
        labels = torch.stack([s.semantic_labels for s in data_samples]).long()
        logits = self(bev, queries).float()
        loss = F.cross_entropy(
            logits.reshape(-1, self.num_classes), labels.reshape(-1), weight=self.class_weight)
        return dict(loss_semantic_occupancy=loss * self.loss_weight)

    @torch.no_grad()
    def predict(self, bev: torch.Tensor, data_samples: List) -> None:
        queries = torch.stack([s.semantic_queries for s in data_samples])
        logits = self(bev, queries).float()
        for sample, logit in zip(data_samples, logits):
            sample.set_field(logit, 'pred_semantic_logits')
            sample.set_field(logit.argmax(-1), 'pred_semantic_labels')
