"""Molmo2's multimodal processing: tokenizers, image crops, video frames, chat format, output formats."""

from molmo2_jax.processing.chat import (LONG_CAPTION_WEIGHTING, POINTING_WEIGHTING, SFT_LOSS_WEIGHTS, SFT_WEIGHTING,
                                        UNWEIGHTED, LossWeighting, TrainingTokens, loss_weighting,
                                        encode_training_example, render_chat)
from molmo2_jax.processing.encode import ExampleEncoder
from molmo2_jax.processing.errors import MediaError
from molmo2_jax.processing.formats import (format_count, format_points, format_tracks, parse_count, parse_points,
                                           parse_tracks)
from molmo2_jax.processing.images import ImageConfig, load_image, process_image
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.model_config import Molmo2TokenIds
from molmo2_jax.processing.tokenizer import (HFTokenizer, QwenTokenizer,
                                             SentencePieceTokenizer, Tokenizer, load_tokenizer,
                                             qwen_tokenizer_json, train_sentencepiece)
from molmo2_jax.processing.video import (VideoConfig, VideoFrames, load_video, process_video,
                                         sample_frame_times)

__all__ = [
    "ExampleEncoder", "HFTokenizer", "ImageConfig", "LONG_CAPTION_WEIGHTING", "LossWeighting", "MediaError",
    "Molmo2Processor", "Molmo2TokenIds", "POINTING_WEIGHTING", "QwenTokenizer", "SFT_LOSS_WEIGHTS", "SFT_WEIGHTING",
    "SentencePieceTokenizer", "Tokenizer", "TrainingTokens", "UNWEIGHTED", "VideoConfig",
    "VideoFrames", "encode_training_example", "format_count",
    "format_points", "format_tracks", "load_image", "load_tokenizer",
    "load_video", "loss_weighting", "parse_count", "parse_points", "parse_tracks", "process_image", "process_video",
    "qwen_tokenizer_json", "render_chat", "sample_frame_times", "train_sentencepiece",
]
