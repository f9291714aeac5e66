"""Lesson 4: 主流大语言模型."""

CELLS = [
    (
        "md",
        r"""
# 第 4 课：主流大语言模型

**本课目标**

1. 了解大语言模型（LLM）是什么、怎样训练出来的；
2. 认识主流模型家族：**GPT**、**LLaMA**、**Qwen**、**DeepSeek**，以及**推理模型**、**代码模型**、**多模态模型**；
3. 动手：**分词（tokenization）**、在随课附带的唐诗语料上**从零训练一个字符级小 GPT**、体会**温度**与 **top-k 采样**；
4. 学会**估算显存**：模型权重（FP32/FP16/INT8/INT4）+ KV 缓存，并据此**选择模型**。

> 本课所有可运行的部分都**不需要下载任何模型权重**，也不需要联网。语料 `tang_poems.txt` 随课附带（47 首唐诗，公有领域）。
> 关于真实模型的参数量、发布时间、许可证、上下文长度，均以其论文、模型卡或官方发布说明为准，出处列在文末。
> 这个领域变化很快：本课只写入了确定的事实，最新信息请以官方模型卡为准。
""",
    ),
    (
        "code",
        r"""
import math
import os
import time
from collections import Counter

import numpy as np
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from mlworkshop.lessonkit import lesson_file, pick_device, use_chinese_font

SEED = 0
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)  # 模型很小：多人共享的服务器上单线程最快

use_chinese_font()
device = pick_device()
plt.rcParams["figure.dpi"] = 90
""",
    ),
    (
        "md",
        r"""
## 1. 什么是大语言模型？

今天的主流 LLM 几乎都是 **仅解码器（decoder-only）的 Transformer**（见第 3 课），训练目标极其简单——**预测下一个 token**：

$$
\mathcal{L}(\theta) = -\sum_{t=1}^{T} \log p_\theta\!\left(x_t \mid x_{<t}\right)
$$

一个聊天模型通常经过三个阶段：

1. **预训练**：在数万亿 token 的文本上做下一个 token 预测，获得语言能力和世界知识（自监督学习）；
2. **监督微调（SFT）**：用人工编写的"指令-回答"对训练，让模型学会遵循指令；
3. **偏好对齐**：如 **RLHF**（基于人类反馈的强化学习，InstructGPT，arXiv:2203.02155）或 DPO，让回答更有用、更安全。

推理模型（第 3 节）在此基础上再用**强化学习**训练长链条的思考过程。
""",
    ),
    (
        "md",
        r"""
## 2. 主流模型家族

### 2.1 GPT 系列（OpenAI）

| 模型 | 发布 | 参数量 | 上下文 | 说明 |
|---|---|---|---|---|
| GPT（GPT-1） | 2018 | 约 1.17 亿 | 512 | 提出"生成式预训练 + 微调"范式 |
| GPT-2 | 2019 | 最大 15 亿（1.5B） | 1024 | 展示零样本能力；权重公开 |
| GPT-3 | 2020 | 1750 亿（175B） | 2048 | 少样本（in-context）学习；仅通过 API 提供 |
| InstructGPT | 2022 | — | — | SFT + RLHF，ChatGPT（2022 年 11 月）的技术基础 |
| GPT-4 | 2023 年 3 月 | 未公开 | — | 技术报告未公开架构与参数量；支持图像输入 |
| GPT-4o | 2024 年 5 月 | 未公开 | — | 原生多模态（文本、图像、音频） |
| o1 | 2024 年 9 月 | 未公开 | — | 推理模型：回答前先进行长时间"思考" |

GPT 系列奠定了"**规模扩展**"的路线：同样的架构，更多的参数、数据和算力带来更强的能力。

### 2.2 LLaMA 系列（Meta）

| 模型 | 发布 | 参数量 | 上下文 | 许可证 |
|---|---|---|---|---|
| LLaMA | 2023 年 2 月 | 7B / 13B / 33B / 65B | 2048 | 仅限非商业研究 |
| Llama 2 | 2023 年 7 月 | 7B / 13B / 70B | 4096 | Llama 2 Community License（允许商用，有附加条款） |
| Code Llama | 2023 年 8 月 | 7B / 13B / 34B（2024 年 1 月加入 70B） | — | 同 Llama 2 |
| Llama 3 | 2024 年 4 月 | 8B / 70B | 8K | Meta Llama 3 Community License |
| Llama 3.1 | 2024 年 7 月 | 8B / 70B / 405B | 128K | Llama 3.1 Community License |
| Llama 3.2 | 2024 年 9 月 | 1B / 3B（文本），11B / 90B（视觉） | — | Llama 3.2 Community License |
| Llama 4 | 2025 年 4 月 | MoE 架构 | — | Llama 4 Community License |

LLaMA 的架构要点：Pre-LN 的 **RMSNorm**、**SwiGLU** 激活的 FFN、**RoPE** 旋转位置编码；Llama 2 70B 起使用
**分组查询注意力（GQA）**——多个查询头共享一组键/值头，大幅缩小 KV 缓存（第 5 节会算到）。
开放权重的 LLaMA 带动了整个开源生态（微调、量化、本地部署）。

### 2.3 Qwen 通义千问系列（阿里巴巴）

| 模型 | 发布 | 参数量 | 许可证 / 说明 |
|---|---|---|---|
| Qwen | 2023 年 | 7B、14B 等 | 首个系列，技术报告 arXiv:2309.16609 |
| Qwen2 | 2024 年 6 月 | 0.5B / 1.5B / 7B / 57B-A14B（MoE）/ 72B | arXiv:2407.10671 |
| Qwen2.5 | 2024 年 9 月 | 0.5B / 1.5B / 3B / 7B / 14B / 32B / 72B | 除 3B 与 72B 使用各自的许可证外，均为 **Apache-2.0** |
| Qwen2.5-Coder | 2024 年 | 0.5B – 32B | 代码模型 |
| Qwen2.5-VL | 2025 年 | 3B、7B、72B 等 | 视觉-语言模型 |
| QwQ-32B | 2025 年 3 月 | 32B | 推理模型，Apache-2.0 |
| Qwen3 | 2025 年 4 月 | 稠密 0.6B – 32B，MoE 30B-A3B、235B-A22B | Apache-2.0，可在"思考/非思考"模式间切换 |

（"A14B"、"A22B"表示 MoE 模型每个 token 激活的参数量。）Qwen 的词表约 15 万个 token，对中文的编码效率高；
中文能力强、尺寸齐全（从可以跑在笔记本上的 0.5B 到 72B），是中文场景下最常用的开源模型之一。
Qwen2.5 模型卡：0.5B–3B 支持 32K 上下文，7B 及以上最长支持 128K（超过 32K 需按模型卡说明启用 YaRN）。

### 2.4 DeepSeek（深度求索）

- **DeepSeek-V3**（2024 年 12 月）：MoE 模型，总参数 **671B**，每个 token 激活 **37B**，上下文 128K；
  使用多头潜在注意力（MLA）压缩 KV 缓存（arXiv:2412.19437）。
- **DeepSeek-R1**（2025 年 1 月）：在 V3 基础上用强化学习训练的推理模型，同样 671B 总参数 / 37B 激活，**MIT 许可证**（见下节）。
""",
    ),
    (
        "md",
        r"""
## 3. 推理模型、代码模型与多模态模型

### 3.1 推理模型（Reasoning Models）

推理模型在给出最终答案之前，先生成一段很长的**思维链（Chain of Thought）**：分解问题、尝试、检查、纠错。
"想得越久，答得越好"——这被称为**测试时计算扩展（test-time scaling）**。

- **OpenAI o1**（2024 年 9 月）：首个广为人知的推理模型，未公开技术细节；
- **DeepSeek-R1**（2025 年 1 月，arXiv:2501.12948）：671B 总参数 / 37B 激活的 MoE，**MIT 许可证**，开放权重。
  其中 **R1-Zero** 直接在基础模型上做大规模强化学习（GRPO 算法，出自 DeepSeekMath，arXiv:2402.03300），
  不经过 SFT，就自发出现了反思、验证等行为；R1 则先用少量"冷启动"数据微调再做强化学习。
  DeepSeek 还把 R1 的推理能力**蒸馏**到基于 Qwen2.5 和 Llama 的小模型（1.5B – 70B）上；
- **QwQ-32B**（Qwen，2025 年 3 月，Apache-2.0）：32B 的稠密推理模型，单机即可部署；
- **Qwen3**（2025 年 4 月）：同一个模型支持"思考模式"和"非思考模式"。

推理模型的输出通常形如：

```
<think>
题目问的是……先算……不对，应该……验证一下：……
</think>
最终答案：……
```

强化学习的奖励可以是**可自动验证的**：数学题对照标准答案、代码题运行单元测试——不需要人工打分，所以可以大规模训练。

### 3.2 代码模型

| 模型 | 说明 |
|---|---|
| Codex（2021，arXiv:2107.03374） | GitHub Copilot 最初的模型；论文提出了 HumanEval 评测集 |
| StarCoder（2023，arXiv:2305.06161） | BigCode 项目，15.5B，训练数据来自许可宽松的代码 |
| Code Llama（2023，arXiv:2308.12950） | 在 Llama 2 上继续训练代码 |
| DeepSeek-Coder（论文 arXiv:2401.14196） | 1.3B / 6.7B / 33B |
| Qwen2.5-Coder（2024，arXiv:2409.12186） | 0.5B – 32B |

代码模型常用 **pass@k** 评测：生成 $k$ 个程序，至少有一个通过全部单元测试的概率。
它们通常还支持**中间填充（FIM）**：给出光标前后的代码，补全中间部分，这正是 IDE 补全的工作方式。

### 3.3 多模态模型

多模态模型同时理解（或生成）文本、图像、音频、视频。一种常见的视觉-语言模型结构：

$$
\text{图像} \xrightarrow{\text{视觉编码器 (ViT)}} \text{图像特征} \xrightarrow{\text{投影层}} \text{"视觉 token"} \;\oplus\; \text{文本 token} \xrightarrow{\text{LLM}} \text{回答}
$$

- **CLIP**（OpenAI，2021，arXiv:2103.00020）：用图文对做对比学习，把图像和文本映射到同一空间，许多视觉编码器由此而来；
- **LLaVA**（2023，*Visual Instruction Tuning*，arXiv:2304.08485）：CLIP 视觉编码器 + 投影层 + LLaMA 系语言模型；
- **Qwen-VL / Qwen2-VL / Qwen2.5-VL**（arXiv:2308.12966、arXiv:2409.12191）：中文能力强的开源视觉-语言模型；
- **Llama 3.2 Vision**（11B / 90B）、**GPT-4o**（原生多模态）；
- 语音：**Whisper**（OpenAI，2022，arXiv:2212.04356）语音识别模型，开源。
""",
    ),
    (
        "md",
        r"""
## 4. 动手：分词（Tokenization）

模型并不直接处理文字，而是处理 **token 的编号**。最简单的方案是**字符级**：每个汉字一个 token。
下面读取随课附带的唐诗语料，建立字符级词表。
""",
    ),
    (
        "code",
        r"""
# 语料随课附带；若只把 notebook 复制到了别处，就从安装包里找到它
text = lesson_file("tang_poems.txt", "04-llm-overview").read_text(encoding="utf-8")
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for ch, i in stoi.items()}
encode = lambda s: [stoi[c] for c in s]
decode = lambda ids: "".join(itos[i] for i in ids)

print(f"语料共 {len(text)} 个字符，{text.count('《')} 首诗，字符级词表大小 {len(chars)}")
print(text[:60])
sample = "床前明月光"
print(f"\n'{sample}' 编码为 {encode(sample)}，解码回 '{decode(encode(sample))}'")

freq = Counter(c for c in text if c not in "，。？\n《》")
top = freq.most_common(20)
plt.figure(figsize=(10, 3.5))
plt.bar([c for c, _ in top], [n for _, n in top])
plt.title("唐诗语料中出现最多的 20 个字")
plt.ylabel("出现次数")
plt.show()
""",
    ),
    (
        "md",
        r"""
### 4.1 子词分词：BPE

真实的 LLM 使用**子词（subword）**分词，最常见的是 **BPE（字节对编码）**：从单个字符（或字节）出发，
反复把语料中**出现最频繁的相邻 token 对**合并成一个新 token。常见的词（如"明月"、"春风"）会变成一个 token，
罕见的字仍可拆成更小的单位，因此**不会遇到词表外的字**。

- GPT-2 使用字节级 BPE，词表 50257；Llama 3 的词表约 12.8 万；Qwen 的词表约 15 万。
- 词表越大、中文词越多，同一段中文需要的 token 越少：推理更快、能放进上下文的内容更多。
- 在 UTF-8 中，一个常用汉字占 3 个字节：若分词器对中文覆盖不好，一个汉字可能要用多个 token 表示。

下面在唐诗语料上从零训练一个迷你 BPE：
""",
    ),
    (
        "code",
        r"""
print("'明' 的 UTF-8 字节:", list("明".encode("utf-8")))

def train_bpe(corpus_lines, n_merges):
    seqs = [list(line) for line in corpus_lines]
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for s in seqs:
            pairs.update(zip(s, s[1:]))
        if not pairs:
            break
        (a, b), count = pairs.most_common(1)[0]
        if count < 2:
            break
        merges.append((a, b, count))
        new_seqs = []
        for s in seqs:                        # 把所有相邻的 (a, b) 替换成新 token "ab"
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            new_seqs.append(out)
        seqs = new_seqs
    return merges, seqs

lines = [l for l in text.splitlines() if l and not l.startswith("《")]
merges, tokenized = train_bpe(lines, n_merges=80)
print(f"学到 {len(merges)} 条合并规则，前 20 条：")
print("  ".join(f"{a}+{b}→{a + b}({n})" for a, b, n in merges[:20]))
n_chars = sum(len(l) for l in lines)
n_tokens = sum(len(s) for s in tokenized)
print(f"\n字符级: {n_chars} 个 token；BPE 后: {n_tokens} 个 token（压缩到 {n_tokens / n_chars:.0%}）")
for s in tokenized[:4]:
    print(" | ".join(s))
""",
    ),
    (
        "md",
        r"""
## 5. 动手：从零训练一个字符级小 GPT

下面实现一个迷你 GPT：词嵌入 + 可学习的位置嵌入 + 若干个带**因果掩码**的 Transformer 块 + 输出层（与第 3 课的结构相同）。
它在 CPU 上几十秒就能训练完。语料只有两千多个字，模型主要是在"背诵并重新组合"诗句——
真正的 LLM 在数万亿 token 上训练，原理却完全相同。
""",
    ),
    (
        "code",
        r"""
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)   # 因果掩码
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

class Block(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

class TinyGPT(nn.Module):
    def __init__(self, vocab_size, block_size=32, d_model=64, n_heads=4, n_layers=2):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, n_heads) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight          # 输入、输出嵌入共享权重（GPT-2 的做法）
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):                               # GPT-2 的初始化：权重 ~ N(0, 0.02²)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
        return self.head(self.ln_f(self.blocks(x)))     # (B, T, vocab) 的 logits

data = torch.tensor(encode(text), dtype=torch.long)
torch.manual_seed(SEED)
gpt = TinyGPT(len(chars)).to(device)
print(f"TinyGPT 参数量: {sum(p.numel() for p in gpt.parameters()):,}")
""",
    ),
    (
        "code",
        r"""
BLOCK, BATCH, STEPS = gpt.block_size, 16, 400
opt = torch.optim.AdamW(gpt.parameters(), lr=3e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(SEED)

def get_batch():
    ix = torch.randint(0, len(data) - BLOCK - 1, (BATCH,), generator=g)
    x = torch.stack([data[i:i + BLOCK] for i in ix])
    y = torch.stack([data[i + 1:i + BLOCK + 1] for i in ix])   # 目标 = 输入右移一位
    return x.to(device), y.to(device)

losses = []
start = time.time()
gpt.train()
for step in range(STEPS):
    lr = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / STEPS))  # 余弦学习率衰减
    for group in opt.param_groups:
        group["lr"] = lr
    x, y = get_batch()
    loss = F.cross_entropy(gpt(x).reshape(-1, len(chars)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if step % 100 == 0 or step == STEPS - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  困惑度 {math.exp(loss.item()):8.1f}")
print(f"在 {device} 上训练 {STEPS} 步，用时 {time.time() - start:.1f} 秒")
print(f"参考：均匀随机猜测的损失 = ln({len(chars)}) = {math.log(len(chars)):.2f}")

plt.figure(figsize=(7, 3.5))
plt.plot(losses, alpha=0.4, label="每步损失")
plt.plot(np.convolve(losses, np.ones(20) / 20, mode="valid"), label="滑动平均")
plt.axhline(math.log(len(chars)), color="gray", ls="--", label="随机猜测")
plt.xlabel("训练步数")
plt.ylabel("交叉熵损失")
plt.title("字符级 GPT 在唐诗语料上的训练损失")
plt.legend()
plt.show()
""",
    ),
    (
        "md",
        r"""
**困惑度（perplexity）** $= e^{\mathcal{L}}$，可以理解为"模型平均在多少个候选字之间犹豫"。

## 6. 动手：温度与 top-k 采样

模型每一步输出的是下一个 token 的 logits $z$。生成文本时要从中**采样**：

- **温度** $T$：$p_i = \dfrac{e^{z_i/T}}{\sum_j e^{z_j/T}}$。$T<1$ 让分布更"尖"（更保守、更重复），$T>1$ 让分布更"平"（更多样、也更容易胡言乱语），
  $T\to 0$ 即**贪心解码**（总选概率最大的）；
- **top-k**：只保留概率最高的 $k$ 个候选，其余置零后重新归一化，避免采到极不可能的 token；
- （另有 **top-p / nucleus** 采样：保留累计概率达到 $p$ 的最小候选集合。）
""",
    ),
    (
        "code",
        r"""
@torch.no_grad()
def next_token_probs(prompt, temperature=1.0, top_k=None):
    gpt.eval()
    idx = torch.tensor([encode(prompt)[-gpt.block_size:]], device=device)
    logits = gpt(idx)[0, -1].float().cpu() / max(temperature, 1e-6)
    if top_k is not None:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits.softmax(-1)

prompt = "《春"   # 语料中以"春"开头的诗题有好几首：下一个字有多种可能
settings = [(0.5, None), (1.0, None), (1.5, None), (1.0, 5)]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
base_top = torch.topk(next_token_probs(prompt), 12).indices
for ax, (T, k) in zip(axes, settings):
    p = next_token_probs(prompt, T, k)
    ax.bar([itos[int(i)] for i in base_top], p[base_top].numpy(), color="tab:purple")
    ax.set_title(f"温度 T={T}" + (f"，top-k={k}" if k else ""))
    ax.set_xlabel("候选的下一个字")
axes[0].set_ylabel("概率")
fig.suptitle(f"提示语「{prompt}」之后，下一个字的概率分布（概率最高的 12 个候选）")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "code",
        r"""
@torch.no_grad()
def generate(prompt, max_new_tokens=60, temperature=1.0, top_k=None, seed=SEED):
    gen = torch.Generator().manual_seed(seed)   # 在 CPU 上采样，结果可复现
    out = prompt
    for _ in range(max_new_tokens):
        p = next_token_probs(out, temperature, top_k)
        out += itos[int(torch.multinomial(p, 1, generator=gen))]
    return out

for T, k in [(0.01, None), (0.8, None), (1.0, 10), (1.6, None)]:
    name = "贪心 (T≈0)" if T < 0.1 else f"T={T}" + (f", top-k={k}" if k else "")
    print(f"===== {name} =====")
    print(generate("《春", temperature=T, top_k=k))
    print()
""",
    ),
    (
        "md",
        r"""
观察：低温度时模型几乎原样背出训练语料里的诗句；温度越高，新组合越多，但也越容易不通顺。
实际的聊天模型常用 $T \approx 0.6\text{–}1.0$ 配合 top-p 采样；写代码、做数学时常用较低的温度。

## 7. 动手：显存估算

部署模型前，最重要的问题是"**显存够不够**"。推理时显存主要由两部分组成：

**① 模型权重**：$\text{权重显存} = \text{参数量} \times \text{每个参数的字节数}$

| 精度 | 每个参数的字节数 | 7B 模型权重 |
|---|---|---|
| FP32 | 4 | 28 GB |
| FP16 / BF16 | 2 | 14 GB |
| INT8 | 1 | 7 GB |
| INT4 | 0.5 | 3.5 GB |

**② KV 缓存**：生成时，每一层都要缓存之前所有 token 的键和值，避免重复计算：

$$
\text{KV 缓存} = 2 \times n_{\text{layers}} \times n_{\text{kv\_heads}} \times d_{\text{head}} \times L_{\text{seq}} \times B \times \text{字节数}
$$

（2 表示 K 和 V 各一份。）它随**上下文长度** $L_{\text{seq}}$ 和**并发数** $B$ 线性增长，长上下文时可能比权重还大。
GQA 通过减少 $n_{\text{kv\_heads}}$ 来缩小它。此外还要留出激活值、框架和 CUDA 上下文等开销（经验上再加 10%–20%）。

**训练**需要的显存多得多：用 Adam 做混合精度全参数训练时，每个参数约需 16 字节（FP16 权重与梯度各 2 字节、FP32 主权重 4 字节、
Adam 的两个状态各 4 字节，见 ZeRO 论文），还不含激活值。因此常用 **LoRA**（arXiv:2106.09685）只训练少量低秩参数，
或 **QLoRA**（arXiv:2305.14314，在 4-bit 量化的模型上做 LoRA，论文中在单张 48GB GPU 上微调了 65B 模型）。

👉 **修改下面单元格中的变量**，估算你关心的模型（默认值是 Llama 2 7B 的结构）：
""",
    ),
    (
        "code",
        r"""
# ======== 可以修改的变量 ========
params_billion = 7.0      # 参数量（单位：十亿，B）
n_layers       = 32       # 层数
n_kv_heads     = 32       # 键/值头的数量（MHA 时等于注意力头数；GQA 时更少）
head_dim       = 128      # 每个头的维度
seq_len        = 4096     # 上下文长度（token 数）
batch          = 1        # 同时处理的序列数（并发请求数）
kv_bytes       = 2        # KV 缓存每个数的字节数：FP16/BF16 = 2，FP8/INT8 = 1
overhead       = 0.15     # 额外开销比例（激活值、框架等）的粗略估计
# ================================

GB = 1e9   # 这里用 1 GB = 10^9 字节
BYTES_PER_PARAM = {"FP32": 4, "FP16/BF16": 2, "INT8": 1, "INT4": 0.5}

def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, kv_bytes):
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch * kv_bytes

kv = kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, kv_bytes)
print(f"KV 缓存: 2 × {n_layers} × {n_kv_heads} × {head_dim} × {seq_len} × {batch} × {kv_bytes} 字节 = {kv / GB:.2f} GB")
print(f"（每个 token 占 {kv / (seq_len * batch) / 1024:.0f} KB）\n")
print(f"{'权重精度':<10}{'权重':>10}{'+ KV 缓存':>12}{'+ 开销（总计）':>16}")
for name, b in BYTES_PER_PARAM.items():
    w = params_billion * 1e9 * b
    total = (w + kv) * (1 + overhead)
    print(f"{name:<12}{w / GB:>8.1f} GB{(w + kv) / GB:>10.1f} GB{total / GB:>14.1f} GB")
""",
    ),
    (
        "md",
        r"""
### 7.1 从结构算参数量，并比较几个真实模型

参数量也可以由模型结构算出来。LLaMA/Qwen 类模型每层包含：注意力的 $W^Q, W^O$（各 $d^2$）和 $W^K, W^V$（各 $d \times n_{kv} d_{head}$），
SwiGLU FFN 的三个矩阵（各 $d \times d_{ff}$），外加输入嵌入与输出层（各 $V \times d$）。下面的结构参数取自各模型的论文/模型卡
（忽略 RMSNorm 和少量偏置，误差不到 0.1%）：
""",
    ),
    (
        "code",
        r"""
# 结构参数：层数、隐藏维度 d、FFN 维度、注意力头数、KV 头数、词表大小、上下文长度
CONFIGS = {
    "Llama-2-7B":    dict(layers=32,  d=4096,  ffn=11008, heads=32,  kv_heads=32, vocab=32000,  ctx=4096),
    "Llama-3-8B":    dict(layers=32,  d=4096,  ffn=14336, heads=32,  kv_heads=8,  vocab=128256, ctx=8192),
    "Qwen2.5-7B":    dict(layers=28,  d=3584,  ffn=18944, heads=28,  kv_heads=4,  vocab=152064, ctx=131072),
    "Llama-2-70B":   dict(layers=80,  d=8192,  ffn=28672, heads=64,  kv_heads=8,  vocab=32000,  ctx=4096),
    "Qwen2.5-72B":   dict(layers=80,  d=8192,  ffn=29568, heads=64,  kv_heads=8,  vocab=152064, ctx=131072),
    "Llama-3.1-405B": dict(layers=126, d=16384, ffn=53248, heads=128, kv_heads=8,  vocab=128256, ctx=131072),
}

def count_params(c):
    head_dim = c["d"] // c["heads"]
    attn = 2 * c["d"] * c["d"] + 2 * c["d"] * c["kv_heads"] * head_dim
    ffn = 3 * c["d"] * c["ffn"]
    return c["layers"] * (attn + ffn) + 2 * c["vocab"] * c["d"]

print(f"{'模型':<16}{'算得参数量':>10}{'FP16 权重':>11}{'INT4 权重':>11}{'满上下文 KV(FP16)':>18}{'每 token KV':>12}")
for name, c in CONFIGS.items():
    n = count_params(c)
    hd = c["d"] // c["heads"]
    kv_full = kv_cache_bytes(c["layers"], c["kv_heads"], hd, c["ctx"], 1, 2)
    per_tok = kv_cache_bytes(c["layers"], c["kv_heads"], hd, 1, 1, 2)
    print(f"{name:<16}{n / 1e9:>9.2f}B{n * 2 / GB:>9.0f} GB{n * 0.5 / GB:>9.0f} GB"
          f"{kv_full / GB:>12.1f} GB ({c['ctx'] // 1024}K){per_tok / 1024:>9.0f} KB")
""",
    ),
    (
        "code",
        r"""
ctx = np.array([1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072])
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
for name in ["Llama-2-7B", "Llama-3-8B", "Qwen2.5-7B", "Llama-2-70B"]:
    c = CONFIGS[name]
    kv_gb = [kv_cache_bytes(c["layers"], c["kv_heads"], c["d"] // c["heads"], L, 1, 2) / GB for L in ctx]
    axes[0].plot(ctx, kv_gb, "o-", label=f"{name}（{c['kv_heads']} 个 KV 头）")
axes[0].set_xscale("log", base=2)
axes[0].set_yscale("log")
axes[0].set_xticks(ctx, [f"{L // 1024}K" for L in ctx])
axes[0].set_xlabel("上下文长度")
axes[0].set_ylabel("KV 缓存 (GB，FP16，batch=1)")
axes[0].set_title("KV 缓存随上下文长度线性增长；GQA 大幅减小它")
axes[0].legend(fontsize=8)

names = list(CONFIGS)
x = np.arange(len(names))
for i, (prec, b) in enumerate(BYTES_PER_PARAM.items()):
    axes[1].bar(x + (i - 1.5) * 0.2, [count_params(CONFIGS[n]) * b / GB for n in names], 0.2, label=prec)
for mem, ls in [(24, ":"), (80, "--"), (141, "-.")]:
    axes[1].axhline(mem, color="black", ls=ls, lw=0.9, label=f"单卡 {mem} GB 显存")
axes[1].set_yscale("log")
axes[1].set_xticks(x, names, rotation=20)
axes[1].set_ylabel("权重显存 (GB，对数坐标)")
axes[1].set_title("不同精度下的权重显存")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 8. 模型选型指南

选择模型时，从下面几个维度逐一考虑：

| 维度 | 要问的问题 | 建议 |
|---|---|---|
| **规模** | 任务有多难？ | 分类、抽取、简单问答：0.5B–8B 往往够用；复杂推理、写作：32B–72B 或推理模型；先用小模型做基线 |
| **硬件** | 有多少显存？ | 用第 7 节公式估算：权重 + KV 缓存 + 开销；显存不够就用 INT8/INT4 量化或更小的模型 |
| **许可证** | 能否商用？有什么限制？ | Apache-2.0、MIT 最宽松（如 Qwen2.5 多数尺寸、QwQ-32B、DeepSeek-R1）；Llama 系列使用自己的社区许可证，需阅读条款；部分模型仅限研究 |
| **语言** | 主要处理中文吗？ | 中文任务优先考虑 Qwen、DeepSeek 等中文语料充足、词表对中文友好的模型 |
| **上下文长度** | 需要一次读入多长的文档？ | 长文档、RAG、代码库需要 32K–128K；但上下文越长 KV 缓存越大、速度越慢 |
| **任务类型** | 对话、代码、数学、看图？ | 代码选 Coder 系列；数学/逻辑选推理模型（R1、QwQ、Qwen3 思考模式）；看图选 VL 模型 |
| **延迟与成本** | 需要实时响应吗？ | 推理模型会输出很长的思考过程，延迟高；MoE 模型激活参数少、速度快，但仍需装下全部权重 |

下面这个小函数按"权重 × (1 + 开销) + KV 缓存 ≤ 显存"粗略判断一台机器能以什么精度运行哪些模型：
""",
    ),
    (
        "code",
        r"""
def what_fits(gpu_mem_gb, seq_len=8192, batch=1, overhead=0.15):
    print(f"显存 {gpu_mem_gb} GB、上下文 {seq_len}、并发 {batch}：")
    for name, c in CONFIGS.items():
        n = count_params(c)
        kv = kv_cache_bytes(c["layers"], c["kv_heads"], c["d"] // c["heads"], min(seq_len, c["ctx"]), batch, 2)
        ok = [p for p, b in BYTES_PER_PARAM.items() if (n * b * (1 + overhead) + kv) / GB <= gpu_mem_gb]
        print(f"  {name:<16} {'可以用 ' + '、'.join(ok) if ok else '放不下（需要多卡或更小的模型）'}")

what_fits(24)
what_fits(80)
""",
    ),
    (
        "md",
        r"""
## 小结

- LLM = 在海量文本上做"预测下一个 token"的 decoder-only Transformer，再经过指令微调和偏好对齐；
- GPT 开创了规模扩展的路线；LLaMA 推动了开放权重生态；Qwen 与 DeepSeek 在中文和开源领域表现突出；
- 推理模型用强化学习训练长思维链；代码模型和多模态模型在同样的架构上扩展了数据和输入；
- 分词决定了"一段文字等于多少 token"；温度和 top-k 控制生成的多样性；
- 显存 ≈ 参数量 × 字节数 + KV 缓存 + 开销——部署前先算一算。

## 练习

1. 把 `TinyGPT` 的层数改为 1 或 6、把 `STEPS` 加倍，损失和生成质量如何变化？
2. 用第 4.1 节的 BPE 分词结果（而不是字符）训练 TinyGPT，需要改哪些代码？
3. 在第 7 节中把变量改成 Llama 3 8B 的结构（`n_kv_heads = 8`，`seq_len = 8192`），KV 缓存是多少？为什么比 Llama 2 7B 在 4096 上下文时还小？
4. 你的服务器有一张 24 GB 的卡，要为 30 名学生提供一个中文问答助手，每人上下文 4K。你会选择哪个模型、什么精度？算一算 KV 缓存。

## 参考资料（本课所列模型事实的出处）

**GPT 系列**
- A. Radford et al., "Improving Language Understanding by Generative Pre-Training", OpenAI, 2018（GPT-1）。
- A. Radford et al., "Language Models are Unsupervised Multitask Learners", OpenAI, 2019（GPT-2）。
- T. Brown et al., "Language Models are Few-Shot Learners", arXiv:2005.14165, 2020（GPT-3，175B，上下文 2048）。
- L. Ouyang et al., "Training language models to follow instructions with human feedback", arXiv:2203.02155（InstructGPT / RLHF）。
- OpenAI, "Introducing ChatGPT"（2022-11）；"GPT-4 Technical Report", arXiv:2303.08774；"Hello GPT-4o"（2024-05）；"Learning to Reason with LLMs"（o1，2024-09）。

**LLaMA 系列**
- H. Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", arXiv:2302.13971。
- H. Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", arXiv:2307.09288；Llama 2 模型卡与 Community License。
- B. Rozière et al., "Code Llama: Open Foundation Models for Code", arXiv:2308.12950。
- Meta, "Introducing Meta Llama 3"（2024-04）及 Meta-Llama-3-8B 模型卡。
- Llama Team, "The Llama 3 Herd of Models", arXiv:2407.21783（Llama 3.1，405B，128K）；Llama 3.2 与 Llama 4 的官方发布说明和模型卡。

**Qwen 系列**
- J. Bai et al., "Qwen Technical Report", arXiv:2309.16609；"Qwen2 Technical Report", arXiv:2407.10671。
- Qwen Team, "Qwen2.5 Technical Report", arXiv:2412.15115；Qwen2.5-7B / Qwen2.5-72B 模型卡（结构、上下文长度、许可证）。
- "Qwen2.5-Coder Technical Report", arXiv:2409.12186；Qwen2.5-VL 模型卡与技术报告。
- Qwen Team, QwQ-32B 模型卡与发布说明（2025-03）；Qwen3 发布说明与模型卡（2025-04）。

**DeepSeek**
- DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437。
- DeepSeek-AI, "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning", arXiv:2501.12948；DeepSeek-R1 模型卡（MIT 许可证）。
- Z. Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models", arXiv:2402.03300（GRPO）。
- D. Guo et al., "DeepSeek-Coder: When the Large Language Model Meets Programming", arXiv:2401.14196。

**代码与多模态**
- M. Chen et al., "Evaluating Large Language Models Trained on Code", arXiv:2107.03374（Codex，HumanEval）。
- R. Li et al., "StarCoder: may the source be with you!", arXiv:2305.06161。
- A. Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", arXiv:2103.00020（CLIP）。
- H. Liu et al., "Visual Instruction Tuning", arXiv:2304.08485（LLaVA）。
- J. Bai et al., "Qwen-VL", arXiv:2308.12966；P. Wang et al., "Qwen2-VL", arXiv:2409.12191。
- A. Radford et al., "Robust Speech Recognition via Large-Scale Weak Supervision", arXiv:2212.04356（Whisper）。

**训练与部署**
- S. Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", arXiv:1910.02054（每参数 16 字节）。
- E. J. Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685。
- T. Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", arXiv:2305.14314。
- J. Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints", arXiv:2305.13245。
- R. Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units", arXiv:1508.07909（BPE）。

**语料**：`tang_poems.txt` 收录李白、杜甫、王维等唐代诗人的 47 首诗，原作已属公有领域。
""",
    ),
]
