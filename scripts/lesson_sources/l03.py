"""Lesson 3: Transformer 架构."""

CELLS = [
    (
        "md",
        r"""
# 第 3 课：Transformer 架构

2017 年，Vaswani 等人在论文 *Attention Is All You Need*（arXiv:1706.03762）中提出了 **Transformer**。
它完全基于**注意力机制**，抛弃了循环神经网络（RNN）逐词处理的方式，可以并行计算、更容易捕捉长距离依赖，
如今几乎所有大语言模型（GPT、LLaMA、Qwen、DeepSeek……）都建立在它之上。

**本课目标**：从零实现并可视化

1. 缩放点积**自注意力**与因果掩码；
2. **多头注意力**（并与 PyTorch 自带实现逐数值核对）；
3. **位置编码**（正弦位置编码与 RoPE）；
4. **层归一化**（LayerNorm 与 RMSNorm）；
5. 一个完整的 **Transformer 块**，并训练它完成一个小任务，画出学到的注意力图；
6. **混合专家模型（MoE）**：Top-k 路由、负载均衡辅助损失、专家利用率。
""",
    ),
    (
        "code",
        r"""
import math
import os

import numpy as np
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from mlworkshop.lessonkit import pick_device, use_chinese_font

SEED = 0
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)  # 模型很小：多人共享的服务器上单线程最快

use_chinese_font()
device = pick_device()
plt.rcParams["figure.dpi"] = 90

def show_attention(ax, weights, xlabels, ylabels, title):
    # 画一张注意力图：行 = 查询(query)，列 = 键(key)
    im = ax.imshow(weights, cmap="viridis", vmin=0)
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel("键 Key（被关注的词）")
    ax.set_ylabel("查询 Query")
    ax.set_title(title)
    return im
""",
    ),
    (
        "md",
        r"""
## 1. 自注意力（Self-Attention）

对于句子中的每个词，自注意力回答一个问题：**"为了理解我，我应该关注句子中的哪些词、关注多少？"**

每个词的向量 $x_i$ 经过三个线性变换，得到**查询** $q_i = x_i W^Q$、**键** $k_i = x_i W^K$、**值** $v_i = x_i W^V$。
查询与所有键做点积，得到相似度，经过 softmax 变成权重，再对值加权求和。写成矩阵形式：

$$
\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V
$$

- $Q, K \in \mathbb{R}^{n \times d_k}$，$V \in \mathbb{R}^{n \times d_v}$，$n$ 为序列长度；
- 注意力权重矩阵 $A = \mathrm{softmax}(QK^\top/\sqrt{d_k}) \in \mathbb{R}^{n\times n}$，每一行之和为 1；
- 计算量随序列长度 $n$ **平方**增长，这是长上下文模型的主要瓶颈。
""",
    ),
    (
        "code",
        r"""
def scaled_dot_product_attention(Q, K, V, mask=None):
    # Q: (..., n_q, d_k)  K: (..., n_k, d_k)  V: (..., n_k, d_v)
    # mask: 可广播到 (..., n_q, n_k) 的布尔张量，True 表示"不允许关注"
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ V, weights

tokens = ["我", "爱", "学习", "机器", "学习", "。"]
n, d_model = len(tokens), 16
torch.manual_seed(SEED)
X = torch.randn(n, d_model)                      # 假设这是 6 个词的词向量
W_q, W_k, W_v = (torch.randn(d_model, d_model) / math.sqrt(d_model) for _ in range(3))
out, attn = scaled_dot_product_attention(X @ W_q, X @ W_k, X @ W_v)
print("输出形状:", tuple(out.shape), " 注意力矩阵形状:", tuple(attn.shape))
print("每行权重之和:", attn.sum(-1).numpy().round(6))

# 与 PyTorch 内置实现核对
ref = F.scaled_dot_product_attention(X @ W_q, X @ W_k, X @ W_v)
assert torch.allclose(out, ref, atol=1e-5)
print("✓ 与 torch.nn.functional.scaled_dot_product_attention 的结果一致")
""",
    ),
    (
        "md",
        r"""
### 1.1 为什么要除以 $\sqrt{d_k}$？

若 $q$、$k$ 的各分量独立、均值为 0、方差为 1，则点积 $q\cdot k = \sum_{j=1}^{d_k} q_j k_j$ 的方差为 $d_k$。
维度越高，点积的数值越大，softmax 就越接近 one-hot（"饱和"），梯度几乎为 0，训练困难。
除以 $\sqrt{d_k}$ 让方差回到 1。下面用实验验证：
""",
    ),
    (
        "code",
        r"""
g = torch.Generator().manual_seed(SEED)
dims = [4, 16, 64, 256, 1024]
var_raw, var_scaled, ent_raw, ent_scaled = [], [], [], []
for d in dims:
    q = torch.randn(2000, 1, d, generator=g)
    k = torch.randn(2000, 10, d, generator=g)
    s = (q * k).sum(-1)                       # 每个查询与 10 个键的点积
    var_raw.append(s.var().item())
    var_scaled.append((s / math.sqrt(d)).var().item())
    entropy = lambda logits: -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean().item()
    ent_raw.append(entropy(s))
    ent_scaled.append(entropy(s / math.sqrt(d)))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].loglog(dims, var_raw, "o-", label="未缩放 q·k")
axes[0].loglog(dims, var_scaled, "s-", label="缩放后 q·k / √d_k")
axes[0].set_xlabel("维度 d_k")
axes[0].set_ylabel("点积的方差")
axes[0].set_title("点积的方差随维度线性增长")
axes[1].semilogx(dims, ent_raw, "o-", label="未缩放")
axes[1].semilogx(dims, ent_scaled, "s-", label="缩放后")
axes[1].axhline(math.log(10), color="gray", ls="--", label="均匀分布的熵 ln 10")
axes[1].set_xlabel("维度 d_k")
axes[1].set_ylabel("softmax 分布的熵")
axes[1].set_title("未缩放时 softmax 趋于 one-hot（熵→0）")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
### 1.2 因果掩码（Causal Mask）

GPT 这类**生成式**模型逐词生成文本，预测第 $i$ 个词时不能"偷看"后面的词。做法是在 softmax 之前，
把位置 $j > i$ 的分数设为 $-\infty$（softmax 后权重为 0），得到一个**下三角**的注意力矩阵：

$$
\mathrm{scores}_{ij} = \begin{cases} q_i \cdot k_j / \sqrt{d_k} & j \le i \\ -\infty & j > i \end{cases}
$$
""",
    ),
    (
        "code",
        r"""
causal = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
_, attn_causal = scaled_dot_product_attention(X @ W_q, X @ W_k, X @ W_v, mask=causal)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
show_attention(axes[0], attn.numpy(), tokens, tokens, "双向自注意力（如 BERT 编码器）")
im = show_attention(axes[1], attn_causal.numpy(), tokens, tokens, "因果自注意力（如 GPT 解码器）")
fig.colorbar(im, ax=axes, fraction=0.025)
plt.show()
print("注意：这里的权重矩阵是随机初始化的，所以注意力模式没有语义；第 5 节训练后的模型才会学到有意义的模式。")
""",
    ),
    (
        "md",
        r"""
## 2. 多头注意力（Multi-Head Attention）

一组 $W^Q, W^K, W^V$ 只能学到一种"关注方式"。多头注意力把 $d_{\text{model}}$ 维拆成 $h$ 个头，每个头维度为
$d_k = d_{\text{model}}/h$，各自独立做注意力，最后拼接起来再做一次线性变换：

$$
\begin{aligned}
\mathrm{head}_i &= \mathrm{Attention}(X W_i^Q,\; X W_i^K,\; X W_i^V) \\
\mathrm{MultiHead}(X) &= \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O
\end{aligned}
$$

不同的头可以分别关注语法关系、指代关系、相邻位置等。实现时并不真的循环 $h$ 次，而是把张量变形为
`(batch, heads, seq, d_k)` 一次算完。
""",
    ),
    (
        "code",
        r"""
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0
        self.h, self.d_k = n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.last_attn = None  # 保存最近一次的注意力权重，便于画图

    def split(self, x):   # (B, n, d_model) -> (B, h, n, d_k)
        B, n, _ = x.shape
        return x.view(B, n, self.h, self.d_k).transpose(1, 2)

    def forward(self, x, mask=None):
        B, n, d = x.shape
        Q, K, V = self.split(self.W_q(x)), self.split(self.W_k(x)), self.split(self.W_v(x))
        out, attn = scaled_dot_product_attention(Q, K, V, mask)
        self.last_attn = attn.detach()
        out = out.transpose(1, 2).reshape(B, n, d)   # 拼接各头
        return self.W_o(out)

torch.manual_seed(SEED)
mha = MultiHeadAttention(d_model=16, n_heads=4)
x = X.unsqueeze(0)                                   # (1, 6, 16)
y_ours = mha(x)

# 把同样的权重拷贝进 PyTorch 自带的 nn.MultiheadAttention，结果应当完全一致
ref = nn.MultiheadAttention(16, 4, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.W_q.weight, mha.W_k.weight, mha.W_v.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.W_q.bias, mha.W_k.bias, mha.W_v.bias]))
    ref.out_proj.weight.copy_(mha.W_o.weight)
    ref.out_proj.bias.copy_(mha.W_o.bias)
y_ref, attn_ref = ref(x, x, x, average_attn_weights=False)
assert torch.allclose(y_ours, y_ref, atol=1e-5) and torch.allclose(mha.last_attn, attn_ref, atol=1e-5)
print("✓ 手写多头注意力与 nn.MultiheadAttention 的输出和注意力权重一致")

fig, axes = plt.subplots(1, 4, figsize=(16, 4))
for i, ax in enumerate(axes):
    show_attention(ax, mha.last_attn[0, i].numpy(), tokens, tokens, f"第 {i + 1} 个头")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 3. 位置编码

注意力本身对词的顺序"视而不见"：把输入的词打乱，每个词得到的输出只是跟着换了位置（**置换等变**）。
"我爱你"和"你爱我"的含义却完全不同，所以必须把位置信息加进去。

### 3.1 正弦位置编码（原始 Transformer）

$$
PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_{\text{model}}}}\right), \qquad
PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_{\text{model}}}}\right)
$$

不同维度对应不同频率（波长从 $2\pi$ 到 $10000\cdot 2\pi$ 呈几何级数），像一组"多精度的时钟"。它直接**加**到词向量上。
""",
    ),
    (
        "code",
        r"""
def sinusoidal_pe(n_pos, d_model):
    pos = torch.arange(n_pos).unsqueeze(1).float()
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2).float() / d_model)
    pe = torch.zeros(n_pos, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe

# 先验证"置换等变"：打乱输入顺序，输出只是跟着换位置
perm = torch.tensor([3, 0, 5, 1, 4, 2])
with torch.no_grad():
    assert torch.allclose(mha(x[:, perm]), mha(x)[:, perm], atol=1e-5)
print("✓ 没有位置编码时，自注意力对输入顺序是置换等变的")

pe = sinusoidal_pe(100, 64)
sim = pe @ pe.T
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
im = axes[0].imshow(pe.T, aspect="auto", cmap="RdBu_r")
axes[0].set_xlabel("位置 pos")
axes[0].set_ylabel("维度 i")
axes[0].set_title("正弦位置编码（64 维，100 个位置）")
fig.colorbar(im, ax=axes[0])
im = axes[1].imshow(sim, cmap="viridis")
axes[1].set_xlabel("位置 j")
axes[1].set_ylabel("位置 i")
axes[1].set_title("位置编码的点积相似度：只取决于距离 |i-j|")
fig.colorbar(im, ax=axes[1])
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
### 3.2 旋转位置编码 RoPE

LLaMA、Qwen 等现代大模型使用**旋转位置编码**（RoPE，Su 等，*RoFormer*，arXiv:2104.09864）。它不把位置加到词向量上，
而是把查询和键的每两个维度看成一个复数/二维向量，按位置 $m$ 旋转角度 $m\theta_i$：

$$
\begin{pmatrix} q'_{2i} \\ q'_{2i+1} \end{pmatrix} =
\begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
\begin{pmatrix} q_{2i} \\ q_{2i+1} \end{pmatrix}, \qquad \theta_i = 10000^{-2i/d}
$$

旋转后，位置 $m$ 的查询与位置 $n$ 的键的点积**只依赖相对位置 $m-n$**。下面数值验证这一性质：
""",
    ),
    (
        "code",
        r"""
def rope(x, pos, base=10000.0):
    # x: (..., d)，d 为偶数；pos: 位置（整数或张量）
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2).float() / d)
    angle = torch.as_tensor(pos, dtype=torch.float32).unsqueeze(-1) * theta
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out

g = torch.Generator().manual_seed(SEED)
q, k = torch.randn(64, generator=g), torch.randn(64, generator=g)
for m_pos, n_pos in [(5, 2), (13, 10), (103, 100)]:
    dot = (rope(q, m_pos) * rope(k, n_pos)).sum().item()
    print(f"位置 m={m_pos:3d}, n={n_pos:3d}（m-n=3）: q·k = {dot:+.5f}")
print(f"旋转不改变向量长度: |q| = {q.norm():.4f}, |RoPE(q)| = {rope(q, 50).norm():.4f}")

rel = range(0, 60)
plt.figure(figsize=(7, 3.5))
plt.plot(rel, [(rope(q, r) * rope(q, 0)).sum().item() for r in rel])
plt.xlabel("相对距离 m - n")
plt.ylabel("RoPE(q, m) · RoPE(q, n)")
plt.title("同一向量在不同相对距离上的注意力分数")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 4. 层归一化

深层网络中，每层输入的分布会不断变化，训练不稳定。**层归一化**（LayerNorm，Ba 等，arXiv:1607.06450）对**每个词向量自身**
的各个维度做标准化（与 BatchNorm 不同，它不依赖 batch 中的其他样本，适合变长序列）：

$$
\mathrm{LayerNorm}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
\mu = \frac{1}{d}\sum_{j=1}^{d} x_j,\quad \sigma^2 = \frac{1}{d}\sum_{j=1}^{d}(x_j-\mu)^2
$$

LLaMA、Qwen 等模型使用更简单的 **RMSNorm**（Zhang & Sennrich，arXiv:1910.07467），省去减均值和 $\beta$：

$$
\mathrm{RMSNorm}(x) = \gamma \odot \frac{x}{\sqrt{\frac{1}{d}\sum_j x_j^2 + \epsilon}}
$$
""",
    ),
    (
        "code",
        r"""
class MyLayerNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.gamma, self.beta, self.eps = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d)), eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return self.gamma * (x - mu) / torch.sqrt(var + self.eps) + self.beta

class MyRMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.gamma, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.gamma * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

g = torch.Generator().manual_seed(SEED)
h = 3.0 + 2.5 * torch.randn(4, 10, 64, generator=g)    # 均值 3、标准差 2.5 的"激活值"
assert torch.allclose(MyLayerNorm(64)(h), nn.LayerNorm(64)(h), atol=1e-5)
assert torch.allclose(MyRMSNorm(64)(h), nn.RMSNorm(64, eps=1e-6)(h), atol=1e-5)
print("✓ 手写 LayerNorm / RMSNorm 与 PyTorch 实现一致")

with torch.no_grad():
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), sharey=True)
    for ax, (name, t) in zip(axes, [("归一化之前", h), ("LayerNorm 之后", MyLayerNorm(64)(h)),
                                    ("RMSNorm 之后", MyRMSNorm(64)(h))]):
        ax.hist(t.flatten().numpy(), bins=60, color="tab:blue", alpha=0.8)
        ax.set_title(f"{name}\n均值 {t.mean():.2f}，标准差 {t.std():.2f}")
        ax.set_xlabel("数值")
    axes[0].set_ylabel("频数")
    plt.tight_layout()
    plt.show()
""",
    ),
    (
        "md",
        r"""
## 5. 组装一个 Transformer 块

一个（Pre-LN 形式的）Transformer 块由两个子层组成，每个子层都带**残差连接**：

$$
\begin{aligned}
h &= x + \mathrm{MultiHead}(\mathrm{LN}(x)) \\
y &= h + \mathrm{FFN}(\mathrm{LN}(h)), \qquad \mathrm{FFN}(z) = W_2\,\mathrm{GELU}(W_1 z + b_1) + b_2
\end{aligned}
$$

- **残差连接**让梯度可以直接流过很多层；
- 原论文把 LayerNorm 放在残差相加之后（Post-LN），而 GPT-2 之后的大多数模型放在子层之前（**Pre-LN**），训练更稳定
  （Xiong 等，arXiv:2002.04745）；
- FFN 的隐藏层通常是 $4 d_{\text{model}}$；LLaMA 使用 SwiGLU 变体。

每个块的参数量约为 $4d^2$（注意力的 $W^Q,W^K,W^V,W^O$）$+\,2 \cdot d \cdot d_{ff}$（FFN）。
""",
    ),
    (
        "code",
        r"""
class TransformerBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        x = x + self.drop(self.attn(self.ln1(x), mask))
        x = x + self.drop(self.ffn(self.ln2(x)))
        return x

block = TransformerBlock(d_model=512, n_heads=8, d_ff=2048)
counted = sum(p.numel() for p in block.parameters())
formula = 4 * 512 * 512 + 2 * 512 * 2048
print(f"d=512, d_ff=2048 的块：实际参数量 {counted:,}；公式 4d² + 2·d·d_ff = {formula:,}（差额为偏置和 LayerNorm 参数）")
""",
    ),
    (
        "md",
        r"""
### 5.1 训练一个小 Transformer：把序列倒过来

任务：输入 8 个数字（0–9），输出它们的**逆序**。例如输入 `3 1 4 1 5 9 2 6`，输出 `6 2 9 5 1 4 1 3`。
第 $i$ 个输出位置必须从第 $7-i$ 个输入位置"取"数字——这恰好需要注意力机制根据**位置**去寻找信息，
因此也离不开位置编码。模型：词嵌入 + 正弦位置编码 + 1 个 Transformer 块（2 个注意力头，$d_{\text{model}}=32$）+ 线性输出层。
""",
    ),
    (
        "code",
        r"""
class TinyTransformer(nn.Module):
    def __init__(self, vocab=10, seq_len=8, d_model=32, n_heads=2, n_layers=1):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.register_buffer("pe", sinusoidal_pe(seq_len, d_model))
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, 4 * d_model) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx):
        x = self.embed(idx) * math.sqrt(self.embed.embedding_dim) + self.pe
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))

SEQ = 8
torch.manual_seed(SEED)
tiny = TinyTransformer(seq_len=SEQ).to(device)
opt = torch.optim.Adam(tiny.parameters(), lr=3e-3)
g = torch.Generator().manual_seed(SEED)
losses = []
for step in range(600):
    src = torch.randint(0, 10, (128, SEQ), generator=g).to(device)
    tgt = src.flip(1)
    loss = F.cross_entropy(tiny(src).reshape(-1, 10), tgt.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

tiny.eval()
with torch.no_grad():
    test_src = torch.randint(0, 10, (1000, SEQ), generator=g).to(device)
    pred = tiny(test_src).argmax(-1)
    acc = (pred == test_src.flip(1)).float().mean().item()
    seq_acc = (pred == test_src.flip(1)).all(1).float().mean().item()
print(f"逐位准确率 {acc:.3f}，整条序列完全正确的比例 {seq_acc:.3f}")
example = test_src[:1]
print("输入:", example[0].tolist(), " 模型输出:", tiny(example).argmax(-1)[0].tolist())
""",
    ),
    (
        "code",
        r"""
with torch.no_grad():
    tiny(example)
labels_in = [f"{t}\n(位{i})" for i, t in enumerate(example[0].tolist())]
labels_out = [f"输出{i}" for i in range(SEQ)]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
axes[0].plot(losses)
axes[0].set_yscale("log")
axes[0].set_xlabel("训练步数")
axes[0].set_ylabel("交叉熵损失")
axes[0].set_title("训练损失")
for head in range(2):
    show_attention(axes[1 + head], tiny.blocks[0].attn.last_attn[0, head].cpu().numpy(),
                   labels_in, labels_out, f"第 {head + 1} 个注意力头")
    axes[1 + head].tick_params(labelsize=8)
plt.tight_layout()
plt.show()
print("看：注意力呈现出\"反对角线\"——第 i 个输出位置主要关注第 7-i 个输入位置。")
""",
    ),
    (
        "md",
        r"""
## 6. 混合专家模型（Mixture of Experts, MoE）

模型越大能力越强，但计算量也越大。**MoE** 的思路是：把 FFN 换成 $E$ 个并列的"专家"（各自是一个 FFN），
每个词只交给其中 $k$ 个专家处理（**稀疏激活**）。这样总参数量可以很大，而每个词的计算量只相当于 $k$ 个专家。
（Shazeer 等，arXiv:1701.06538；Switch Transformer，Fedus 等，arXiv:2101.03961。）

**路由（Top-k gating）**：路由器是一个线性层，为每个词 $x$ 计算各专家的概率，选出概率最高的 $k$ 个并重新归一化：

$$
p = \mathrm{softmax}(W_r x) \in \mathbb{R}^E, \qquad
\mathcal{T} = \mathrm{TopK}(p, k), \qquad
y = \sum_{i \in \mathcal{T}} \frac{p_i}{\sum_{j\in\mathcal{T}} p_j}\, E_i(x)
$$

**负载均衡**：若不加约束，路由器容易"偏心"——少数专家被频繁选中、越练越好、于是更常被选中，其余专家闲置。
Switch Transformer 引入辅助损失（$T$ 个词，$f_i$ 为分给专家 $i$ 的词的比例，$P_i$ 为路由器给专家 $i$ 的平均概率）：

$$
\mathcal{L}_{\text{aux}} = E \cdot \sum_{i=1}^{E} f_i \, P_i, \qquad
f_i = \frac{1}{kT}\sum_{t=1}^{T} \mathbb{1}[\,i \in \mathcal{T}_t\,], \qquad
P_i = \frac{1}{T}\sum_{t=1}^{T} p_i(x_t)
$$

当负载完全均匀时 $\mathcal{L}_{\text{aux}} = 1$（最小值）。总损失为 $\mathcal{L} = \mathcal{L}_{\text{task}} + \alpha\,\mathcal{L}_{\text{aux}}$。

真实模型中的例子：Mixtral 8x7B 每层 8 个专家、每个词选 2 个（Top-2），总参数约 47B，每个词只激活约 13B
（*Mixtral of Experts*，arXiv:2401.04088）；DeepSeek-V3 总参数 671B，每个词激活 37B（*DeepSeek-V3 Technical Report*，arXiv:2412.19437）。
""",
    ),
    (
        "code",
        r"""
class MoELayer(nn.Module):
    def __init__(self, d_model, n_experts=8, k=2, d_hidden=32):
        super().__init__()
        self.E, self.k = n_experts, k
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_model))
            for _ in range(n_experts)
        )

    def forward(self, x):                       # x: (T, d_model)，T 个词
        probs = self.router(x).softmax(-1)      # (T, E)
        top_p, top_i = probs.topk(self.k, dim=-1)
        gates = top_p / top_p.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(self.E):                 # 每个专家只处理分给它的词
            tok, slot = (top_i == e).nonzero(as_tuple=True)
            if len(tok):
                out.index_add_(0, tok, gates[tok, slot, None] * self.experts[e](x[tok]))
        counts = torch.bincount(top_i.flatten(), minlength=self.E).float()
        f = counts / top_i.numel()              # f_i：分给每个专家的比例
        P = probs.mean(0)                       # P_i：平均路由概率
        aux = self.E * (f * P).sum()
        return out, aux, f, top_i
""",
    ),
    (
        "md",
        r"""
### 6.1 实验：有无负载均衡损失的专家利用率

构造一个合成任务：输入来自 8 个簇，每个簇有自己的目标函数 $y = \tanh(A_c x)$。分别用 $\alpha = 0$（不加辅助损失）
和 $\alpha = 0.05$ 训练同一个 MoE 层（8 个专家，Top-2），比较每个专家分到的词的比例。
""",
    ),
    (
        "code",
        r"""
def make_task(seed=123, C=8, d=16):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(C, d, generator=g) * 2
    A = torch.randn(C, d, d, generator=g) / math.sqrt(d)
    return centers, A

centers, A_maps = make_task()
centers, A_maps = centers.to(device), A_maps.to(device)

def batch(g, T=256):
    c = torch.randint(0, 8, (T,), generator=g).to(device)
    x = centers[c] + 0.5 * torch.randn(T, 16, generator=g).to(device)
    y = torch.tanh(torch.einsum("tij,tj->ti", A_maps[c], x))
    return x, y, c

results = {}
for alpha in [0.0, 0.05]:
    torch.manual_seed(1)
    moe = MoELayer(16).to(device)
    opt = torch.optim.Adam(moe.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(SEED)
    hist = {"task": [], "aux": []}
    for step in range(300):
        x, y, _ = batch(g)
        out, aux, f, _ = moe(x)
        task_loss = F.mse_loss(out, y)
        (task_loss + alpha * aux).backward()
        opt.step()
        opt.zero_grad()
        hist["task"].append(task_loss.item())
        hist["aux"].append(aux.item())
    with torch.no_grad():
        x, y, c = batch(torch.Generator().manual_seed(99), T=4000)
        out, aux, f, top_i = moe(x)
        routing = torch.zeros(8, 8)
        for slot in range(2):
            routing.index_put_((c.cpu(), top_i[:, slot].cpu()), torch.ones(len(c)), accumulate=True)
    results[alpha] = dict(hist=hist, f=f.cpu().numpy(), routing=routing.numpy(),
                          mse=F.mse_loss(out, y).item(), aux=aux.item())
    print(f"α = {alpha:<5}: 测试 MSE {results[alpha]['mse']:.4f}，辅助损失 {results[alpha]['aux']:.3f}，"
          f"专家负载 = {np.round(results[alpha]['f'] * 100, 1)} %")
""",
    ),
    (
        "code",
        r"""
fig, axes = plt.subplots(2, 3, figsize=(16, 8))
for row, alpha in enumerate(results):
    r = results[alpha]
    name = "不加负载均衡 (α=0)" if alpha == 0 else f"加负载均衡 (α={alpha})"
    axes[row, 0].bar(range(8), r["f"] * 100, color="tab:red" if alpha == 0 else "tab:green")
    axes[row, 0].axhline(100 / 8, color="k", ls="--", label="理想均匀负载 12.5%")
    axes[row, 0].set_xlabel("专家编号")
    axes[row, 0].set_ylabel("分到的词的比例 (%)")
    axes[row, 0].set_ylim(0, max(25, 100 * max(results[a]["f"].max() for a in results) + 2))
    axes[row, 0].set_title(f"{name}：专家利用率")
    axes[row, 0].legend()
    im = axes[row, 1].imshow(r["routing"] / r["routing"].sum(1, keepdims=True), cmap="magma")
    axes[row, 1].set_xlabel("专家编号")
    axes[row, 1].set_ylabel("输入所属的簇")
    axes[row, 1].set_title(f"{name}：路由矩阵")
    fig.colorbar(im, ax=axes[row, 1], fraction=0.046)
    axes[row, 2].plot(r["hist"]["task"], label="任务损失 MSE")
    axes[row, 2].plot(r["hist"]["aux"], label="辅助损失 L_aux")
    axes[row, 2].set_yscale("log")
    axes[row, 2].set_xlabel("训练步数")
    axes[row, 2].set_title(f"{name}：损失曲线")
    axes[row, 2].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
可以看到：不加辅助损失时，有的专家分到的词远多于平均值，有的几乎闲置（在大规模训练中甚至会出现"专家坍缩"）；
加上负载均衡损失后，各专家的负载接近 12.5%，而任务损失几乎不受影响。
在分布式训练中，专家分布在不同的 GPU/NPU 上，负载均衡直接决定了硬件利用率。
（DeepSeek-V3 还提出了不依赖辅助损失、通过动态调整路由偏置来均衡负载的方法。）

## 小结

| 组件 | 作用 | 公式要点 |
|---|---|---|
| 自注意力 | 每个词从全句中按相关性汇集信息 | $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$ |
| 因果掩码 | 生成时不能看到未来的词 | 上三角置 $-\infty$ |
| 多头注意力 | 并行学习多种关注模式 | 拆头 → 注意力 → 拼接 → $W^O$ |
| 位置编码 | 注入顺序信息 | 正弦编码（相加）/ RoPE（旋转 $Q,K$） |
| 层归一化 | 稳定训练 | LayerNorm / RMSNorm |
| 残差 + FFN | 深层网络可训练、逐位置非线性变换 | $x + f(\mathrm{LN}(x))$ |
| MoE | 参数多、计算少 | Top-k 路由 + 负载均衡损失 |

## 练习

1. 去掉 `TinyTransformer` 中的位置编码（`x = self.embed(idx)`），重新训练倒序任务，准确率会怎样？为什么？
2. 把倒序任务改为**排序**任务（`tgt = src.sort(1).values`），注意力图会变成什么样？
3. 在 MoE 实验中把 $k$ 改为 1（Switch Transformer 的做法），比较负载和损失。
4. 计算一个 $d_{\text{model}}=4096$、$d_{ff}=11008$、32 层的模型中所有块的注意力与 FFN 参数量（提示：这与 LLaMA-2-7B 的结构相同；LLaMA 的 FFN 有 3 个矩阵）。

## 参考文献

- A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762.
- J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization", arXiv:1607.06450.
- B. Zhang, R. Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019, arXiv:1910.07467.
- R. Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020, arXiv:2002.04745.
- J. Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", arXiv:2104.09864.
- N. Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer", ICLR 2017, arXiv:1701.06538.
- W. Fedus, B. Zoph, N. Shazeer, "Switch Transformers: Scaling to Trillion Parameter Models with Simple and Efficient Sparsity", JMLR 2022, arXiv:2101.03961.
- A. Q. Jiang et al., "Mixtral of Experts", arXiv:2401.04088.
- DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437.
""",
    ),
]
