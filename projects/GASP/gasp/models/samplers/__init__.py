from .ego_query_sampler import EgoQuerySampler
from .occupancy_query_sampler import OccupancyQuerySampler

__all__ = ['EgoQuerySampler', 'OccupancyQuerySampler']
