"""Downstream semantic classes: groups of AV2's 30 annotation categories."""
from typing import Dict, Sequence

import numpy as np
from av2.datasets.sensor.constants import AnnotationCategories

#: Default groups (vehicle / pedestrian / cyclist, SPEC s. 5); other categories are ignored.
AV2_CLASS_GROUPS: Dict[str, Sequence[str]] = dict(
    vehicle=('REGULAR_VEHICLE', 'LARGE_VEHICLE', 'BUS', 'BOX_TRUCK', 'TRUCK', 'TRUCK_CAB',
             'VEHICULAR_TRAILER', 'SCHOOL_BUS', 'ARTICULATED_BUS', 'RAILED_VEHICLE',
             'MESSAGE_BOARD_TRAILER', 'TRAFFIC_LIGHT_TRAILER'),
    pedestrian=('PEDESTRIAN', 'STROLLER', 'WHEELCHAIR', 'OFFICIAL_SIGNALER'),
    cyclist=('BICYCLE', 'BICYCLIST', 'MOTORCYCLE', 'MOTORCYCLIST', 'WHEELED_DEVICE',
             'WHEELED_RIDER'),
)


def check_class_groups(class_groups: Dict[str, Sequence[str]]) -> Dict[str, tuple]:
    """Validate a ``name -> AV2 categories`` mapping against av2's category list.

    Raises:
        ValueError: an unknown category, or one category in two groups.
    """
    known = {c.value for c in AnnotationCategories}
    seen = {}
    for name, categories in class_groups.items():
        for category in categories:
            if category not in known:
                raise ValueError(f'class group {name!r}: {category!r} is not an AV2 annotation '
                                 f'category; choose from {sorted(known)}')
            if category in seen:
                raise ValueError(f'AV2 category {category!r} is in class groups {seen[category]!r} '
                                 f'and {name!r}; give each category one group')
            seen[category] = name
    return {name: tuple(categories) for name, categories in class_groups.items()}


def category_to_class(categories: np.ndarray, class_groups: Dict[str, Sequence[str]]) -> np.ndarray:
    """(N,) class index (order of ``class_groups``) of each category name, -1 when ignored."""
    lookup = {c: k for k, cats in enumerate(class_groups.values()) for c in cats}
    return np.array([lookup.get(str(c), -1) for c in categories], dtype=np.int64)
