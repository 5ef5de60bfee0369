"""Random model folders for scripts/bench-vs-llamacpp.sh, written with numpy
in the `transformers` layout (no torch needed):

  gpt2-small-random      GPT-2 small, GPT-2's vocabulary
  smollm2-135m-random    SmolLM2-135M's shape (Llama: 30 layers, width 576,
                         9 heads, 3 key/value heads, SwiGLU 1536, tied head)
                         with a byte-level BPE of GPT-2's first 49,152 tokens

Usage: python3 scripts/make_race_models.py OUT_DIR
Needs: pip install numpy safetensors tokenizers. GPT-2's vocabulary comes
from the tiktoken-rs crate's assets in cargo's registry (a `cargo fetch` in
this repository puts it there)."""
import glob, json, os, shutil, sys
import numpy as np
from safetensors.numpy import save_file
found = glob.glob(os.path.expanduser('~/.cargo/registry/src/*/tiktoken-rs-0.12.1/assets'))
if not found:
    sys.exit("GPT-2's vocabulary not found: run `cargo fetch` in this repository first")
assets = found[0]
os.makedirs(sys.argv[1] if len(sys.argv) > 1 else '.', exist_ok=True)
os.chdir(sys.argv[1] if len(sys.argv) > 1 else '.')
rng = np.random.default_rng(0)
normal = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float32)

out = 'gpt2-small-random'
if not os.path.exists(out):
    os.makedirs(out)
    c, v, L = 768, 50257, 12
    t = {'transformer.wte.weight': normal(v, c), 'transformer.wpe.weight': normal(1024, c),
         'transformer.ln_f.weight': np.ones(c, np.float32), 'transformer.ln_f.bias': np.zeros(c, np.float32)}
    for i in range(L):
        p = f'transformer.h.{i}.'
        t |= {p + 'ln_1.weight': np.ones(c, np.float32), p + 'ln_1.bias': np.zeros(c, np.float32),
              p + 'ln_2.weight': np.ones(c, np.float32), p + 'ln_2.bias': np.zeros(c, np.float32),
              p + 'attn.c_attn.weight': normal(c, 3 * c), p + 'attn.c_attn.bias': np.zeros(3 * c, np.float32),
              p + 'attn.c_proj.weight': normal(c, c), p + 'attn.c_proj.bias': np.zeros(c, np.float32),
              p + 'mlp.c_fc.weight': normal(c, 4 * c), p + 'mlp.c_fc.bias': np.zeros(4 * c, np.float32),
              p + 'mlp.c_proj.weight': normal(4 * c, c), p + 'mlp.c_proj.bias': np.zeros(c, np.float32)}
    save_file(t, f'{out}/model.safetensors', metadata={'format': 'pt'})
    json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": v, "n_positions": 1024,
               "n_embd": c, "n_layer": L, "n_head": 12, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
               "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": True},
              open(f'{out}/config.json', 'w'), indent=1)
    shutil.copy(f'{assets}/encoder.json', f'{out}/vocab.json')
    shutil.copy(f'{assets}/vocab.bpe', f'{out}/merges.txt')

out = 'smollm2-135m-random'
if not os.path.exists(out):
    os.makedirs(out)
    c, v, L, heads, kv, ff = 576, 49152, 30, 9, 3, 1536
    d = c // heads
    t = {'model.embed_tokens.weight': normal(v, c), 'model.norm.weight': np.ones(c, np.float32)}
    for i in range(L):
        p = f'model.layers.{i}.'
        t |= {p + 'input_layernorm.weight': np.ones(c, np.float32),
              p + 'post_attention_layernorm.weight': np.ones(c, np.float32),
              p + 'self_attn.q_proj.weight': normal(c, c), p + 'self_attn.k_proj.weight': normal(kv * d, c),
              p + 'self_attn.v_proj.weight': normal(kv * d, c), p + 'self_attn.o_proj.weight': normal(c, c),
              p + 'mlp.gate_proj.weight': normal(ff, c), p + 'mlp.up_proj.weight': normal(ff, c),
              p + 'mlp.down_proj.weight': normal(c, ff)}
    save_file(t, f'{out}/model.safetensors', metadata={'format': 'pt'})
    json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": v, "hidden_size": c,
               "intermediate_size": ff, "num_hidden_layers": L, "num_attention_heads": heads,
               "num_key_value_heads": kv, "max_position_embeddings": 2048, "rope_theta": 100000.0,
               "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "hidden_act": "silu",
               "bos_token_id": 0, "eos_token_id": 0, "attention_bias": False, "mlp_bias": False},
              open(f'{out}/config.json', 'w'), indent=1)
    enc = json.load(open(f'{assets}/encoder.json'))
    vocab = {tok: i for tok, i in enc.items() if i < v}
    merges = []
    for line in open(f'{assets}/vocab.bpe', encoding='utf-8').read().split('\n')[1:]:
        if line and all(x in vocab for x in (*line.split(' '), line.replace(' ', ''))):
            merges.append(tuple(line.split(' ')))
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(f'{out}/tokenizer.json')
    print(len(vocab), len(merges))
