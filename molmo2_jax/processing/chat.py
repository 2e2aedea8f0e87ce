"""Molmo2's chat format and its training encoding: prompts, loss masks, loss weights, message trees.

Prompts follow the released chat template: media first (`<|image|>`, or `Image 1<|image|>Image
2<|image|>...` for several images, then one `<|video|>` per video), then
`<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n{a}` turns; the processor prepends the BOS
token `<|im_end|>`. An answer's closing `<|im_end|>` is emitted by the next user turn.

Training examples are (input, target) pairs already shifted by one. A *message tree* encodes one
image/video once with K conversations ("branches") after it: the shared prefix has branch id -1,
branch k's tokens have id k and attend only to the prefix and themselves; positions restart after
the prefix in every branch. Loss weights: `loss_weighting` reads the one table `SFT_LOSS_WEIGHTS`
(allenai's `MessageWeight` rules, see there); `branch_weights` applies a rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from molmo2_jax.processing.tokenizer import IMAGE_PROMPT, VIDEO_PROMPT, Tokenizer

Message = Mapping[str, Any]  # {"role": "user"|"assistant", "content": str | list of parts}
SHARED_BRANCH = -1

# Styles the released template writes without a "style: " prefix (its DEMO_STYLES).
PLAIN_STYLES = frozenset({
    "point_count", "pointing", "cosyn_point", "user_qa", "long_caption", "short_caption",
    "video_long_caption", "video_short_caption", "video_point_track_per_frame",
    "video_point_track_start_end", "video_point_track_all_frames",
    "video_single_point_track_start_end", "video_transcript", "video_clip_caption_start_end",
    "video_clip_caption_start_end_in_seconds", "video_clip_transcript_start_end",
    "video_clip_transcript_start_end_in_seconds", "video_frame_caption_timestamp",
    "video_frame_caption_timestamp_in_seconds", "correction_qa", "text_sft", "video_point",
    "video_point_count", "video_count", "video_count_point", "multi_image_pointing",
    "multi_image_counting", "multi_image_point_then_count", "multi_image_count_then_point", "demo",
    "a_okvqa_mc", "ai2_diagram_no_letter", "ai2_diagram", "science_qa", "multi_image_mc",
    "multi_image_mc_exp", "mantis_instruct_mc", "video_multiple_choice",
    "video_multiple_choice_count_without_pointing", "video_multiple_choice_multiple_correct",
    "video_multiple_choice_w_subtitle",
})


@dataclasses.dataclass(frozen=True)
class LossWeighting:
    """How an example's answer tokens are weighted in the loss (allenai's `MessageWeight`)."""

    root_length: bool = True  # x 2/sqrt(n), n = loss tokens of the branch
    root_branches: bool = True  # / sqrt(K), K = branches sharing the media (`root_subsegments`)
    weight: float | None = None  # flat factor


# The rules and where allenai/molmo2 sets them:
#   launch_scripts/sft.py: `loss_token_weighting = "root_subsegments_root_tokens"` for every SFT set,
#   `point_weight = MessageWeight(weight=0.2, root_length=False, root_subsegments=False)` on the
#   tracking, video_pointing and image_pointing sets, `cap_weight` (the same with 0.1) on
#   vixmo3_top_level_captions_min_3; launch_scripts/pretrain.py leaves `loss_token_weighting` None (1).
SFT_WEIGHTING = LossWeighting()
POINTING_WEIGHTING = LossWeighting(root_length=False, root_branches=False, weight=0.2)
LONG_CAPTION_WEIGHTING = LossWeighting(root_length=False, root_branches=False, weight=0.1)
UNWEIGHTED = LossWeighting(root_length=False, root_branches=False)

# The one loss-weight table: task kind (data_pipelines.schema.Task) or dataset name -> rule; every
# other SFT example gets SFT_WEIGHTING. Rows name the allenai sets they stand for.
SFT_LOSS_WEIGHTS: Mapping[str, LossWeighting] = {
    "pointing": POINTING_WEIGHTING,            # pixmo_points_train, pixmo_points_high_freq_train, cosyn_point
    "counting": POINTING_WEIGHTING,            # pixmo_count_train
    "pixmo_multi_points": POINTING_WEIGHTING,  # image_pointing, though its task is multi_image
    "video_pointing": POINTING_WEIGHTING,      # vixmo_points_minmax_*, academic_points_clip_63s_2fps
    "tracking": POINTING_WEIGHTING,            # every TRACKING_MIXTURE set
    "vixmo3_top_level_captions_min_3": LONG_CAPTION_WEIGHTING,  # only this set: other video captions are SFT
}
# Mixtures trained with pre-training weights (1 everywhere): stage 1 and the synthetic demo.
PRETRAINING_MIXTURES = frozenset({"stage1", "synthetic"})


def loss_weighting(task: str, dataset: str = "", mixture: str = "") -> LossWeighting:
    """The loss rule of one example: by mixture (pre-training), then dataset, then task (`SFT_LOSS_WEIGHTS`)."""
    if mixture in PRETRAINING_MIXTURES:
        return UNWEIGHTED
    return SFT_LOSS_WEIGHTS.get(dataset) or SFT_LOSS_WEIGHTS.get(task, SFT_WEIGHTING)


def branch_weights(loss_mask: Sequence[float], weighting: LossWeighting, num_branches: int) -> np.ndarray:
    """One branch's per-token loss weights from its 0/1 mask: x 2/sqrt(n), / sqrt(K), x flat weight."""
    w = np.asarray(loss_mask, np.float64)
    if weighting.root_length:
        w *= 2 / math.sqrt(w.sum())
    if weighting.root_branches:
        w /= math.sqrt(num_branches)
    if weighting.weight is not None:
        w *= weighting.weight
    return w


@dataclasses.dataclass
class TrainingTokens:
    """A training example's text side, shifted: predict `target_ids[t]` after `input_ids[: t + 1]`."""

    input_ids: np.ndarray  # [T] int32
    target_ids: np.ndarray  # [T] int32
    loss_weights: np.ndarray  # [T] float32, 0 = no loss
    branch_ids: np.ndarray  # [T] int32, -1 = shared prefix, k = branch k

    @property
    def position_ids(self) -> np.ndarray:
        """[T] int32 message-tree positions (`branch_positions`)."""
        return branch_positions(self.branch_ids)


def branch_positions(branch_ids: np.ndarray) -> np.ndarray:
    """Message-tree positions: each token's index among the tokens it sees (the shared prefix, then its branch)."""
    shared = branch_ids == SHARED_BRANCH
    shared_before = np.cumsum(shared) - shared
    pos = np.where(shared, shared_before, 0).astype(np.int32)
    for b in np.unique(branch_ids[~shared]):
        m = branch_ids == b
        pos[m] = shared_before[m] + np.arange(m.sum())
    return pos


def message_text(content: str | Sequence[Mapping[str, Any]]) -> str:
    """A message's text: its text parts joined by spaces, with a 'style: ' prefix for rare styles."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text":
            continue
        style = part.get("style")
        texts.append(f"{style}: {part['text']}" if style and style not in PLAIN_STYLES
                     else part["text"])
    return " ".join(texts)


def count_media(messages: Sequence[Message]) -> tuple[int, int]:
    """(images, videos) referenced by the messages' content parts."""
    n_img = n_vid = 0
    for m in messages:
        if isinstance(m["content"], str):
            continue
        for part in m["content"]:
            if part.get("type") == "image" or "image" in part or "image_url" in part:
                n_img += 1
            elif part.get("type") == "video" or "video" in part or "video_url" in part:
                n_vid += 1
    return n_img, n_vid


def media_prefix(num_images: int, num_videos: int) -> str:
    """Media placeholders that open a Molmo2 prompt."""
    if num_images == 1:
        images = IMAGE_PROMPT
    else:
        images = "".join(f"Image {i + 1}{IMAGE_PROMPT}" for i in range(num_images))
    return images + VIDEO_PROMPT * num_videos


def _split_subtitle(messages: Sequence[Message]) -> tuple[str, Sequence[Message]]:
    """A leading 'subtitle' message's text (written after the media) and the conversation."""
    if messages and messages[0]["role"].lower() == "subtitle":
        return message_text(messages[0]["content"]), messages[1:]
    return "", messages


def _turns(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(role, text) per message, checking roles alternate user/assistant starting with the user."""
    turns = []
    for k, m in enumerate(messages):
        role = m["role"].lower()
        if role != ("user" if k % 2 == 0 else "assistant"):
            raise ValueError("conversation roles must alternate user/assistant/user/..., "
                             f"message {k} has role {m['role']!r}")
        turns.append((role, message_text(m["content"])))
    return turns


def render_chat(messages: Sequence[Message], num_images: int | None = None,
                num_videos: int | None = None, add_generation_prompt: bool = True) -> str:
    """The prompt string of Molmo2's chat template (without BOS; the processor adds it)."""
    counted = count_media(messages)
    n_img = counted[0] if num_images is None else num_images
    n_vid = counted[1] if num_videos is None else num_videos
    subtitle, conversation = _split_subtitle(messages)
    out = [media_prefix(n_img, n_vid), subtitle]
    for k, (role, text) in enumerate(_turns(conversation)):
        if role == "user":
            out.append(("<|im_end|>\n" if k else "") + f"<|im_start|>user\n{text}<|im_end|>\n")
        else:
            out.append(f"<|im_start|>assistant\n{text}")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def _branch_tokens(tok: Tokenizer, messages: Sequence[Message]) -> tuple[list[int], list[float]]:
    """Token ids and 0/1 loss mask of one conversation ending with an answer (its EOS excluded)."""
    turns = _turns(messages)
    if not turns or turns[-1][0] != "assistant":
        raise ValueError("a training conversation must end with an assistant message")
    ids: list[int] = []
    mask: list[float] = []
    for k, (role, text) in enumerate(turns):
        if role == "user":
            if k:  # the previous answer's EOS has a loss; the newline opens this turn
                ids.append(tok.eos_token_id)
                mask.append(1.0)
            piece = ("\n" if k else "") + f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
            new, loss = tok.encode(piece), 0.0
        else:
            new, loss = tok.encode(text), 1.0
        ids.extend(new)
        mask.extend([loss] * len(new))
    return ids, mask


def encode_training_example(tok: Tokenizer, branches: Sequence[Sequence[Message]],
                            num_images: int = 0, num_videos: int = 0,
                            weighting: LossWeighting = SFT_WEIGHTING) -> TrainingTokens:
    """BOS + media placeholders shared once, then each conversation as a branch, shifted for training.

    A single conversation is one branch. Each branch's last target is EOS (`<|im_end|>`), weighted
    like its answer. Media placeholders stay as `<|image|>`/`<|video|>` ids for the processor to
    expand into vision tokens.
    """
    if not branches:
        raise ValueError("need at least one conversation")
    subtitles = {_split_subtitle(b)[0] for b in branches}
    if len(subtitles) > 1:
        raise ValueError("all branches of a message tree must share the same subtitle")
    prefix = [tok.bos_token_id] + tok.encode(media_prefix(num_images, num_videos) + subtitles.pop())
    encoded = [_branch_tokens(tok, _split_subtitle(b)[1]) for b in branches]

    inputs, targets, weights, branch_ids = [], [], [], []
    first = encoded[0][0]
    inputs += prefix
    targets += prefix[1:] + first[:1]
    weights += [0.0] * len(prefix)
    branch_ids += [SHARED_BRANCH] * len(prefix)
    k = len(encoded)
    for b, (ids, mask) in enumerate(encoded):
        w = branch_weights(mask[1:] + [1.0], weighting, k)  # target-aligned; the final EOS has a loss
        inputs += ids
        targets += ids[1:] + [tok.eos_token_id]
        weights += w.tolist()
        branch_ids += [b] * len(ids)
    return TrainingTokens(
        np.asarray(inputs, np.int32), np.asarray(targets, np.int32),
        np.asarray(weights, np.float32), np.asarray(branch_ids, np.int32),
    )
