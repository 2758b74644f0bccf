"""Scoring and translating: sacreBLEU metrics with their signatures, and batched, length-sorted generation."""
