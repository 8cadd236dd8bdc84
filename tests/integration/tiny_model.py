"""A tiny random-weight Llama chat model, built offline in seconds (about 0.4 M parameters).

Its text is meaningless (random weights), which is the point: a real vLLM engine that answers
garbage exercises the agent's parsing and fallback path. The tokenizer is a byte-level BPE (any
text encodes) trained on a few sentences, with a chat template; the Llama config has head_dim 64
(the CPU attention kernels reject 16). ``max_position_embeddings`` is large so that the agent's full
prompts fit (RoPE needs no trained positions).

Needs ``torch``, ``transformers`` and ``tokenizers`` (installed by scripts/setup_vllm_cpu.sh);
nothing is imported until ``build_tiny_llama`` runs.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "The agent allocates compute to every stage of the pipeline under a fixed budget.",
    "Retrieval selects the references; question answering reads them and writes the answer.",
    "More samples help until the score reaches a plateau; larger models cost more per sample.",
    'Reply with JSON: {"candidates": [{"retrieval": {"model": "Qwen2.5-7B", "samples": 4}}]}.',
    "Guidelines: prefer the smaller model when the scores are close, then balance the budget.",
    "Score, used budget, total budget, parameters, trials, insight, rationale, exploration.",
    "The quick brown fox jumps over the lazy dog 0123456789 times.",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_llama(folder: str | Path, vocab_size: int = 512, max_positions: int = 32768, seed: int = 0) -> Path:
    """Write a tokenizer and a random Llama (hidden 128, 2 layers, 2 heads of 64) into ``folder``.

    Reuses the folder when it already holds a built model. Returns the folder.
    """
    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "</s>", "<unk>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = max_positions
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=max_positions,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


if __name__ == "__main__":
    import sys

    print(build_tiny_llama(sys.argv[1] if len(sys.argv) > 1 else "tiny-llama"))
