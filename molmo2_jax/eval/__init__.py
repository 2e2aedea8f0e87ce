"""Molmo2 evaluation metrics: VQA / ANLS / multiple choice / counting, pointing P/R/F1, tracking accuracy and J&F."""

from molmo2_jax.eval.assignment import linear_sum_assignment, max_matching
from molmo2_jax.eval.metrics import summarize
from molmo2_jax.eval.pointing import (
    PointTarget,
    match_points,
    point_hits,
    pointing_counts,
    pointing_metrics,
    precision_recall_f1,
)
from molmo2_jax.eval.tracking import (
    average_point_tracking_accuracy,
    boundary_f_measure,
    boundary_map,
    dilate,
    j_and_f,
    jaccard,
    point_tracking_accuracy,
    point_tracking_counts,
    point_tracking_metrics,
    region_tracking_metrics,
)
from molmo2_jax.processing.formats import parse_count  # the one count parser, shared with generation
from molmo2_jax.eval.vqa import (
    anls,
    counting_accuracy,
    levenshtein,
    multiple_choice_accuracy,
    normalize_vqa_answer,
    select_mc_option,
    vqa_accuracy,
)

__all__ = [
    "PointTarget", "anls", "average_point_tracking_accuracy", "boundary_f_measure", "boundary_map",
    "counting_accuracy", "dilate", "j_and_f", "jaccard", "levenshtein", "linear_sum_assignment", "match_points",
    "max_matching", "multiple_choice_accuracy", "normalize_vqa_answer", "parse_count", "point_hits",
    "point_tracking_accuracy", "point_tracking_counts", "point_tracking_metrics", "pointing_counts",
    "pointing_metrics", "precision_recall_f1", "region_tracking_metrics", "select_mc_option", "summarize",
    "vqa_accuracy",
]
