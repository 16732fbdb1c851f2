"""Promotion waves in the hub: the promoter that moves wave refs as ``fleet.yaml`` and
``fleet.core.promotion.decide`` say, and records every action in Git."""

from hub.promotion.promoter import Promoter, PromotionHost, PromotionRefused

__all__ = ["Promoter", "PromotionHost", "PromotionRefused"]
