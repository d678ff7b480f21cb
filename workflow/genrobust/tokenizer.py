"""The real 49,408-token CLIP BPE tokenizer of Stable Diffusion v1.5, rebuilt without a download.

open_clip bundles CLIP's merges file; the vocabulary follows from it (bytes, bytes + "</w>",
the kept merges, then the two special tokens), so prompts tokenize exactly as they do for
SD v1.5. The folder written here has the hub's layout (vocab.json + merges.txt + configs,
1.5 MB) and loads with `CLIPTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from pathlib import Path

from . import io

TOKENIZER_MAX_LENGTH = 77
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408
BOS_TOKEN_ID, EOS_TOKEN_ID = CLIP_VOCAB_SIZE - 2, CLIP_VOCAB_SIZE - 1


@functools.lru_cache(maxsize=1)
def clip_bpe() -> tuple[dict[str, int], tuple[str, ...]]:
    """The CLIP BPE vocabulary and merges, rebuilt from open_clip's bundled merges file."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = tuple(lines[1 : 49152 - 256 - 2 + 1])  # the merges CLIP kept (open_clip's slice)
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    assert len(tokens) == CLIP_VOCAB_SIZE
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer_files(folder: Path, **extra_config) -> None:
    """vocab.json, merges.txt and the configs, laid out like the SD v1.5 hub tokenizer folder."""
    vocab, merges = clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = dict(bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = dict(
        special,
        tokenizer_class="CLIPTokenizer",
        model_max_length=TOKENIZER_MAX_LENGTH,
        do_lower_case=True,
        errors="replace",
        add_prefix_space=False,
        **extra_config,
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_tokenizer(folder: str | os.PathLike):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder)


def build_tokenizer(out_dir: str | os.PathLike) -> Path:
    """CLIP BPE tokenizer folder (real CLIP vocabulary), loadable by CLIPTokenizer.from_pretrained."""
    with io.atomic_dir(out_dir) as tmp:
        write_tokenizer_files(tmp)
        load_tokenizer(tmp)  # fail here, not at generation time
    return Path(out_dir)
