"""Lesson 2: 神经网络与深度学习."""

CELLS = [
    (
        "md",
        r"""
# 第 2 课：神经网络与深度学习

**本课目标**

1. 从生物神经元到人工神经元：理解**感知机**的原理和局限（XOR 问题）；
2. 认识常用的**激活函数**及其导数；
3. 用 NumPy **手写前向传播与反向传播**，并与 PyTorch 的自动求导（autograd）**逐项核对**；
4. 用 PyTorch 训练卷积神经网络完成**手写数字识别**：画出训练曲线、混淆矩阵和识别错误的样本。

> 数据说明：如果 `datasets/mnist/` 中有真实的 MNIST IDX 文件，本课会使用它；否则使用 scikit-learn 自带的
> 8×8 手写数字数据集（`load_digits`）。运行时会明确打印使用的是哪一个。**全程无需联网。**
""",
    ),
    (
        "code",
        r"""
import os
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from mlworkshop.lessonkit import load_handwritten_digits, pick_device, use_chinese_font

SEED = 0
np.random.seed(SEED)
torch.manual_seed(SEED)
# 本课的模型都很小：在多人共享的服务器上，CPU 单线程反而最快（线程之间不互相争抢）。
torch.set_num_threads(1)

use_chinese_font()
device = pick_device()
plt.rcParams["figure.dpi"] = 90
""",
    ),
    (
        "md",
        r"""
## 1. 神经元与感知机

生物神经元通过树突接收信号，当累积的刺激超过阈值时，沿轴突发出脉冲。人工神经元是对它的数学抽象：

$$
z = \sum_{j=1}^{d} w_j x_j + b = \mathbf{w}^\top \mathbf{x} + b, \qquad y = f(z)
$$

其中 $\mathbf{w}$ 是**权重**，$b$ 是**偏置**，$f$ 是**激活函数**。

Rosenblatt（1958）提出的**感知机**使用阶跃函数 $f(z) = \mathbb{1}[z > 0]$，学习规则非常简单：对每个样本，

$$
\mathbf{w} \leftarrow \mathbf{w} + \eta\,(y - \hat y)\,\mathbf{x}, \qquad b \leftarrow b + \eta\,(y - \hat y)
$$

即：预测错了才更新，把决策边界往正确的方向推。若数据**线性可分**，感知机保证在有限步内收敛。
""",
    ),
    (
        "code",
        r"""
class Perceptron:
    def __init__(self, dim, lr=0.1):
        self.w = np.zeros(dim)
        self.b = 0.0
        self.lr = lr

    def predict(self, X):
        return (X @ self.w + self.b > 0).astype(int)

    def fit(self, X, y, epochs=20):
        errors = []
        for _ in range(epochs):
            n_err = 0
            for xi, yi in zip(X, y):
                delta = yi - self.predict(xi[None, :])[0]
                if delta != 0:
                    self.w += self.lr * delta * xi
                    self.b += self.lr * delta
                    n_err += 1
            errors.append(n_err)
        return errors

g = np.random.default_rng(SEED)
# 线性可分的数据：两团点
X_lin = np.vstack([g.normal([-1.5, -1.0], 0.6, (50, 2)), g.normal([1.5, 1.0], 0.6, (50, 2))])
y_lin = np.array([0] * 50 + [1] * 50)
# XOR 数据：对角的两团点同属一类
X_xor = np.vstack([g.normal(c, 0.25, (25, 2)) for c in [(-1, -1), (1, 1), (-1, 1), (1, -1)]])
y_xor = np.array([0] * 50 + [1] * 50)

def draw_boundary(ax, predict, X, y, title):
    xx, yy = np.meshgrid(np.linspace(-3.5, 3.5, 200), np.linspace(-3.5, 3.5, 200))
    zz = predict(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    ax.contourf(xx, yy, zz, alpha=0.25, cmap="coolwarm", levels=[-0.5, 0.5, 1.5])
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=15, edgecolor="k", linewidth=0.3)
    ax.set_title(title)

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
p1 = Perceptron(2)
err1 = p1.fit(X_lin, y_lin)
p2 = Perceptron(2)
err2 = p2.fit(X_xor, y_xor)
draw_boundary(axes[0], p1.predict, X_lin, y_lin, "线性可分数据：感知机成功")
draw_boundary(axes[1], p2.predict, X_xor, y_xor, "XOR 数据：一条直线无法分开")
axes[2].plot(err1, "o-", label="线性可分数据")
axes[2].plot(err2, "s-", label="XOR 数据")
axes[2].set_xlabel("训练轮数 epoch")
axes[2].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[2].set_ylabel("本轮分错的样本数")
axes[2].set_title("感知机的训练过程")
axes[2].legend()
plt.tight_layout()
plt.show()
print(f"线性可分数据上的准确率: {(p1.predict(X_lin) == y_lin).mean():.2f}")
print(f"XOR 数据上的准确率:     {(p2.predict(X_xor) == y_xor).mean():.2f}（单层感知机做不到）")
""",
    ),
    (
        "md",
        r"""
Minsky 和 Papert 在《Perceptrons》（1969）中指出单层感知机无法解决 XOR 这类**线性不可分**问题。
解决办法是**叠加多层**并使用**非线性**激活函数——这就是**多层感知机（MLP）**，也是深度学习的起点。
而训练多层网络需要**反向传播**算法（Rumelhart, Hinton & Williams, 1986）。

## 2. 激活函数

如果没有非线性激活函数，多层线性变换叠加起来仍然只是一个线性变换：$W_2(W_1 x) = (W_2 W_1)x$。常见的激活函数：

| 名称 | 公式 | 导数 | 特点 |
|---|---|---|---|
| Sigmoid | $\sigma(z)=\frac{1}{1+e^{-z}}$ | $\sigma(z)(1-\sigma(z))$ | 输出在 (0,1)；两端饱和，梯度消失 |
| Tanh | $\tanh(z)$ | $1-\tanh^2(z)$ | 输出在 (-1,1)，以 0 为中心 |
| ReLU | $\max(0,z)$ | $\mathbb{1}[z>0]$ | 计算简单，缓解梯度消失；最常用 |
| Leaky ReLU | $\max(\alpha z, z)$ | $1$ 或 $\alpha$ | 负半轴保留小梯度 |
| GELU | $z\,\Phi(z)$ | — | Transformer（BERT、GPT）中常用 |

下面用 PyTorch 的自动求导直接画出各函数的导数。
""",
    ),
    (
        "code",
        r"""
z = torch.linspace(-4, 4, 400, requires_grad=True)
acts = {
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "ReLU": torch.relu,
    "Leaky ReLU (α=0.1)": lambda t: F.leaky_relu(t, 0.1),
    "GELU": F.gelu,
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name, fn in acts.items():
    out = fn(z)
    (grad,) = torch.autograd.grad(out.sum(), z)
    axes[0].plot(z.detach(), out.detach(), label=name)
    axes[1].plot(z.detach(), grad, label=name)
axes[0].set_title("激活函数 f(z)")
axes[1].set_title("导数 f'(z)（由 autograd 计算）")
for ax in axes:
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("z")
    ax.legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 3. 反向传播：用 NumPy 手写

考虑一个两层网络（一个隐藏层），输入 $X \in \mathbb{R}^{n\times d}$，类别数 $C$，标签的 one-hot 矩阵为 $Y$：

$$
\begin{aligned}
H &= X W_1 + b_1, & A &= \tanh(H) \\
Z &= A W_2 + b_2, & P &= \mathrm{softmax}(Z), \quad P_{ic} = \frac{e^{Z_{ic}}}{\sum_{k} e^{Z_{ik}}} \\
\mathcal{L} &= -\frac{1}{n}\sum_{i=1}^{n}\sum_{c=1}^{C} Y_{ic}\log P_{ic} & &\text{（交叉熵损失）}
\end{aligned}
$$

反向传播就是从损失出发，沿计算图反复使用**链式法则**：

$$
\begin{aligned}
\frac{\partial \mathcal{L}}{\partial Z} &= \frac{1}{n}(P - Y) \quad\text{（softmax 与交叉熵合并后的简洁结果）}\\
\frac{\partial \mathcal{L}}{\partial W_2} &= A^\top \frac{\partial \mathcal{L}}{\partial Z}, \qquad
\frac{\partial \mathcal{L}}{\partial b_2} = \sum_i \Big(\frac{\partial \mathcal{L}}{\partial Z}\Big)_{i,:} \\
\frac{\partial \mathcal{L}}{\partial A} &= \frac{\partial \mathcal{L}}{\partial Z} W_2^\top, \qquad
\frac{\partial \mathcal{L}}{\partial H} = \frac{\partial \mathcal{L}}{\partial A} \odot (1 - A^2) \\
\frac{\partial \mathcal{L}}{\partial W_1} &= X^\top \frac{\partial \mathcal{L}}{\partial H}, \qquad
\frac{\partial \mathcal{L}}{\partial b_1} = \sum_i \Big(\frac{\partial \mathcal{L}}{\partial H}\Big)_{i,:}
\end{aligned}
$$

其中 $\odot$ 表示逐元素相乘，$1-A^2$ 是 $\tanh$ 的导数。
""",
    ),
    (
        "code",
        r"""
def softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)   # 减去最大值，防止 exp 溢出（数值稳定）
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)

def forward_backward(params, X, y):
    # 返回损失和各参数的梯度（手写反向传播）
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = X.shape[0]
    # ---- 前向传播 ----
    H = X @ W1 + b1
    A = np.tanh(H)
    Z = A @ W2 + b2
    P = softmax(Z)
    Y = np.eye(W2.shape[1])[y]
    loss = -np.sum(Y * np.log(P)) / n
    # ---- 反向传播 ----
    dZ = (P - Y) / n
    grads = {"W2": A.T @ dZ, "b2": dZ.sum(axis=0)}
    dA = dZ @ W2.T
    dH = dA * (1 - A ** 2)
    grads["W1"] = X.T @ dH
    grads["b1"] = dH.sum(axis=0)
    return loss, grads

def init_params(d, hidden, classes, seed=SEED):
    g = np.random.default_rng(seed)
    return {
        "W1": g.normal(0, 1 / np.sqrt(d), (d, hidden)),
        "b1": np.zeros(hidden),
        "W2": g.normal(0, 1 / np.sqrt(hidden), (hidden, classes)),
        "b2": np.zeros(classes),
    }
""",
    ),
    (
        "md",
        r"""
### 3.1 与 PyTorch autograd 核对

手写梯度最容易出错。我们用**同样的参数**在 PyTorch 中算一遍（`float64` 精度），让 autograd 自动求梯度，
然后用 `np.allclose` 逐项比较。两者必须一致，否则说明公式或代码有错。
""",
    ),
    (
        "code",
        r"""
g = np.random.default_rng(1)
X_chk = g.normal(size=(16, 5))
y_chk = g.integers(0, 3, size=16)
params = init_params(5, 7, 3)
loss_np, grads_np = forward_backward(params, X_chk, y_chk)

tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
Xt = torch.tensor(X_chk, dtype=torch.float64)
logits = torch.tanh(Xt @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"]
loss_t = F.cross_entropy(logits, torch.tensor(y_chk))
loss_t.backward()

print(f"损失  NumPy: {loss_np:.10f}   PyTorch: {loss_t.item():.10f}")
assert np.allclose(loss_np, loss_t.item(), rtol=1e-10, atol=1e-12)
for k in ["W1", "b1", "W2", "b2"]:
    diff = np.abs(grads_np[k] - tp[k].grad.numpy()).max()
    print(f"{k:>2s} 的梯度：最大绝对误差 = {diff:.2e}")
    assert np.allclose(grads_np[k], tp[k].grad.numpy(), rtol=1e-8, atol=1e-10), k
print("✓ 手写反向传播与 autograd 的结果一致")
""",
    ),
    (
        "md",
        r"""
### 3.2 数值梯度检验

另一种检验方法不依赖任何框架：用**中心差分**近似导数，
$\frac{\partial \mathcal{L}}{\partial \theta} \approx \frac{\mathcal{L}(\theta+\epsilon) - \mathcal{L}(\theta-\epsilon)}{2\epsilon}$。
它很慢（每个参数要算两次前向传播），只用来抽查。
""",
    ),
    (
        "code",
        r"""
eps = 1e-6
g = np.random.default_rng(2)
for k in ["W1", "W2"]:
    for _ in range(3):
        idx = tuple(int(g.integers(0, s)) for s in params[k].shape)
        old = params[k][idx]
        params[k][idx] = old + eps
        lp, _ = forward_backward(params, X_chk, y_chk)
        params[k][idx] = old - eps
        lm, _ = forward_backward(params, X_chk, y_chk)
        params[k][idx] = old
        numeric = (lp - lm) / (2 * eps)
        print(f"{k}{list(idx)}: 解析梯度 {grads_np[k][idx]:+.8f}  数值梯度 {numeric:+.8f}")
        assert abs(numeric - grads_np[k][idx]) < 1e-6
""",
    ),
    (
        "md",
        r"""
### 3.3 用手写的网络解决非线性问题

有了梯度，就可以用**梯度下降**训练：$\theta \leftarrow \theta - \eta \nabla_\theta \mathcal{L}$。
下面用手写网络分类 scikit-learn 生成的"双月牙"数据（`make_moons`，由代码生成，无需下载）和上面的 XOR 数据，
单层感知机解决不了的问题，一个隐藏层就能解决。
""",
    ),
    (
        "code",
        r"""
from sklearn.datasets import make_moons

def train_numpy_mlp(X, y, hidden=16, lr=0.5, steps=2000):
    params = init_params(X.shape[1], hidden, 2)
    losses = []
    for _ in range(steps):
        loss, grads = forward_backward(params, X, y)
        for k in params:
            params[k] -= lr * grads[k]
        losses.append(loss)
    predict = lambda Q: softmax(np.tanh(Q @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]).argmax(1)
    return predict, losses

X_moon, y_moon = make_moons(n_samples=300, noise=0.2, random_state=SEED)
X_moon = (X_moon - X_moon.mean(0)) / X_moon.std(0) * 1.3
pred_moon, loss_moon = train_numpy_mlp(X_moon, y_moon)
pred_xor, loss_xor = train_numpy_mlp(X_xor, y_xor)

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
draw_boundary(axes[0], pred_moon, X_moon, y_moon,
              f"双月牙：准确率 {(pred_moon(X_moon) == y_moon).mean():.2f}")
draw_boundary(axes[1], pred_xor, X_xor, y_xor,
              f"XOR：准确率 {(pred_xor(X_xor) == y_xor).mean():.2f}")
axes[2].plot(loss_moon, label="双月牙")
axes[2].plot(loss_xor, label="XOR")
axes[2].set_xlabel("迭代次数")
axes[2].set_ylabel("交叉熵损失")
axes[2].set_title("手写 MLP 的训练损失")
axes[2].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 4. 用 PyTorch 识别手写数字

手写数字识别是深度学习的"Hello World"。**MNIST**（LeCun 等，1998）包含 60 000 张训练图像和 10 000 张测试图像，
每张为 28×28 的灰度图。它以 **IDX** 格式发布：文件头是"魔数"（前两个字节为 0，第三个字节是数据类型，第四个字节是维数），
随后是每一维的大小（大端序 32 位整数），再往后是原始像素。

本课按以下顺序查找 MNIST 的四个文件（`train-images-idx3-ubyte`、`train-labels-idx1-ubyte`、`t10k-images-idx3-ubyte`、
`t10k-labels-idx1-ubyte`，也可以是 `.gz` 压缩版）：

1. 环境变量 `MLWORKSHOP_DATASETS` 所指目录下的 `mnist/`；
2. 相对本 notebook 的 `../../datasets/mnist/`（即站点的 `content/datasets/mnist/`）；
3. 家目录下的 `~/datasets/mnist/`。

如果都找不到，就使用 scikit-learn 自带的 **8×8 手写数字**（1797 张，来自 UCI 数据集），图像小，但足以演示完整流程。
在 CPU 上使用真实 MNIST 时，为了控制运行时间，只随机抽取一部分训练样本。
""",
    ),
    (
        "code",
        r"""
on_cpu = device.type == "cpu"
data = load_handwritten_digits(
    Path.cwd(),
    max_train=10000 if on_cpu else None,   # CPU 上只取一部分 MNIST，GPU/NPU 上用全部
    max_test=2000 if on_cpu else None,
    seed=SEED,
)
H_img, W_img = data.image_shape
USING_MNIST = data.source == "mnist"
print("本课使用:", "真实 MNIST" if USING_MNIST else "scikit-learn 8×8 digits")
print("各类别训练样本数:", np.bincount(data.y_train, minlength=10))

fig, axes = plt.subplots(2, 10, figsize=(12, 3.2))
for ax, img, label in zip(axes.ravel(), data.x_train[:20], data.y_train[:20]):
    ax.imshow(img, cmap="gray_r")
    ax.set_title(f"标签 {label}", fontsize=9)
    ax.axis("off")
fig.suptitle(f"训练样本示例（{H_img}×{W_img} 像素）")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
### 4.1 卷积神经网络

全连接网络把图像拉平成向量，丢掉了像素之间的空间关系。**卷积层**用一个小的卷积核在图像上滑动：

$$
(X * K)_{i,j} = \sum_{u}\sum_{v} X_{i+u,\,j+v}\, K_{u,v}
$$

它具有**局部连接**和**权重共享**两个特点，参数少、能提取边缘、笔画等局部特征。**池化层**（如 2×2 最大池化）
降低分辨率，使特征对小的平移更鲁棒。下面的网络为：
`卷积(16) → ReLU → 池化 → 卷积(32) → ReLU → 池化 → 全连接(64) → Dropout → 全连接(10)`，
全连接层的输入大小根据图像尺寸（8×8 或 28×28）自动计算。
""",
    ),
    (
        "code",
        r"""
class DigitCNN(nn.Module):
    def __init__(self, image_shape, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, *image_shape)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(n_flat, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, n_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))

mean, std = data.x_train.mean(), data.x_train.std()
def to_tensor(x):
    return torch.tensor((x - mean) / std, dtype=torch.float32).unsqueeze(1)  # (n, 1, H, W)

Xtr, Ytr = to_tensor(data.x_train).to(device), torch.tensor(data.y_train).to(device)
Xte, Yte = to_tensor(data.x_test).to(device), torch.tensor(data.y_test).to(device)

torch.manual_seed(SEED)
model = DigitCNN(data.image_shape).to(device)
n_params = sum(p.numel() for p in model.parameters())
print(model)
print(f"参数量: {n_params:,}")
""",
    ),
    (
        "md",
        r"""
### 4.2 训练

使用 **Adam** 优化器和交叉熵损失，小批量（mini-batch）训练。每个 epoch 结束后在测试集上评估一次，记录损失和准确率。
（严格来说应另留验证集来调参；这里为了简洁直接看测试集曲线。）
""",
    ),
    (
        "code",
        r"""
import time

EPOCHS = (3 if on_cpu else 5) if USING_MNIST else 20
BATCH = 64
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
gen = torch.Generator().manual_seed(SEED)

@torch.no_grad()
def evaluate(X, Y):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(X), 1024):
        out = model(X[i:i + 1024])
        loss += F.cross_entropy(out, Y[i:i + 1024], reduction="sum").item()
        correct += (out.argmax(1) == Y[i:i + 1024]).sum().item()
    return loss / len(X), correct / len(X)

history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
start = time.time()
for epoch in range(1, EPOCHS + 1):
    model.train()
    perm = torch.randperm(len(Xtr), generator=gen).to(device)
    for i in range(0, len(Xtr), BATCH):
        idx = perm[i:i + BATCH]
        loss = F.cross_entropy(model(Xtr[idx]), Ytr[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tr_loss, tr_acc = evaluate(Xtr, Ytr)
    te_loss, te_acc = evaluate(Xte, Yte)
    for k, v in zip(history, [tr_loss, tr_acc, te_loss, te_acc]):
        history[k].append(v)
    if epoch == 1 or epoch % max(1, EPOCHS // 5) == 0 or epoch == EPOCHS:
        print(f"epoch {epoch:2d}: 训练损失 {tr_loss:.4f} 训练准确率 {tr_acc:.4f} | "
              f"测试损失 {te_loss:.4f} 测试准确率 {te_acc:.4f}")
print(f"在 {device} 上训练 {EPOCHS} 个 epoch，用时 {time.time() - start:.1f} 秒")
""",
    ),
    (
        "code",
        r"""
epochs = range(1, EPOCHS + 1)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(epochs, history["train_loss"], "o-", label="训练集")
axes[0].plot(epochs, history["test_loss"], "s-", label="测试集")
axes[0].set_title("损失曲线")
axes[0].set_ylabel("交叉熵损失")
axes[1].plot(epochs, np.array(history["train_acc"]) * 100, "o-", label="训练集")
axes[1].plot(epochs, np.array(history["test_acc"]) * 100, "s-", label="测试集")
axes[1].set_title("准确率曲线")
axes[1].set_ylabel("准确率 (%)")
for ax in axes:
    ax.set_xlabel("训练轮数 epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend()
fig.suptitle("训练曲线（" + ("MNIST" if USING_MNIST else "sklearn 8×8 digits") + "）")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
### 4.3 混淆矩阵与错误样本

混淆矩阵第 $i$ 行第 $j$ 列表示"真实为 $i$、被预测为 $j$"的样本数。对角线以外的格子告诉我们模型容易把哪些数字混淆。
""",
    ),
    (
        "code",
        r"""
model.eval()
with torch.no_grad():
    logits_te = torch.cat([model(Xte[i:i + 1024]) for i in range(0, len(Xte), 1024)])
probs_te = logits_te.softmax(1).cpu().numpy()
pred_te = probs_te.argmax(1)
true_te = data.y_test

cm = np.zeros((10, 10), dtype=int)
np.add.at(cm, (true_te, pred_te), 1)
print(f"测试准确率: {(pred_te == true_te).mean():.4f}")
print("各数字的召回率:", np.round(cm.diagonal() / cm.sum(1), 3))

fig, ax = plt.subplots(figsize=(6.5, 5.5))
im = ax.imshow(cm, cmap="Blues")
for i in range(10):
    for j in range(10):
        if cm[i, j]:
            ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
ax.set_xticks(range(10))
ax.set_yticks(range(10))
ax.set_xlabel("预测的数字")
ax.set_ylabel("真实的数字")
ax.set_title("测试集混淆矩阵")
fig.colorbar(im, ax=ax, fraction=0.046)
plt.show()
""",
    ),
    (
        "code",
        r"""
wrong = np.flatnonzero(pred_te != true_te)
print(f"测试集中识别错误的样本: {len(wrong)} / {len(true_te)}")
# 按模型的"自信程度"排序：最自信的错误最值得研究
wrong = wrong[np.argsort(-probs_te[wrong].max(1))][:12]
if len(wrong):
    fig, axes = plt.subplots(1, len(wrong), figsize=(1.3 * len(wrong) + 1, 2.2), squeeze=False)
    for ax, i in zip(axes[0], wrong):
        ax.imshow(data.x_test[i], cmap="gray_r")
        ax.set_title(f"真实 {true_te[i]}\n预测 {pred_te[i]} ({probs_te[i].max():.0%})", fontsize=9)
        ax.axis("off")
    fig.suptitle("识别错误的样本（按模型置信度从高到低）")
    plt.tight_layout()
    plt.show()
""",
    ),
    (
        "md",
        r"""
### 4.4 卷积核学到了什么？

第一层卷积核直接作用在像素上，可以画出来看看：它们往往像边缘、笔画方向的检测器。
""",
    ),
    (
        "code",
        r"""
kernels = model.features[0].weight.detach().cpu().numpy()[:, 0]
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for ax, k in zip(axes.ravel(), kernels):
    ax.imshow(k, cmap="RdBu_r", vmin=-np.abs(kernels).max(), vmax=np.abs(kernels).max())
    ax.axis("off")
fig.suptitle("第一层的 16 个 3×3 卷积核（红正蓝负）")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 小结

- 人工神经元 = 加权求和 + 非线性激活；单层感知机只能解决线性可分问题；
- 多层网络 + 非线性激活可以逼近复杂函数；训练依靠**反向传播**（链式法则）+ **梯度下降**；
- 手写的梯度必须检验：与 autograd 对比，或用数值梯度抽查；
- 卷积神经网络利用图像的空间结构，用很少的参数取得很高的识别准确率。

## 练习

1. 把第 3 节网络中的 $\tanh$ 换成 ReLU，写出 $\partial\mathcal{L}/\partial H$ 的新公式，修改代码并重新通过 autograd 核对。
2. 去掉 `DigitCNN` 中的卷积层，只用全连接网络（`nn.Flatten()` + `nn.Linear`），参数量和准确率如何变化？
3. 把学习率改成 `2e-1` 或 `2e-5`，训练曲线会怎样？
4. 如果你的服务器上有 MNIST（放在 `datasets/mnist/`），重新运行本课，比较 28×28 与 8×8 图像上的准确率。

## 参考资料

- F. Rosenblatt, "The Perceptron: A Probabilistic Model for Information Storage and Organization in the Brain", *Psychological Review*, 1958.
- M. Minsky, S. Papert, *Perceptrons*, MIT Press, 1969.
- D. E. Rumelhart, G. E. Hinton, R. J. Williams, "Learning representations by back-propagating errors", *Nature* 323, 1986.
- Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-Based Learning Applied to Document Recognition", *Proc. IEEE*, 1998（MNIST 与 IDX 格式）。
- D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980.
- D. Hendrycks, K. Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415.
- scikit-learn `load_digits`：UCI "Optical Recognition of Handwritten Digits" 数据集的 8×8 版本。
""",
    ),
]
