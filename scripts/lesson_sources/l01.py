"""Lesson 1: 机器学习基础."""

CELLS = [
    (
        "md",
        r"""
# 第 1 课：机器学习基础

**本课目标**

1. 理解什么是机器学习，以及它的三大类型：监督学习、无监督学习、强化学习；
2. 区分**分类**与**回归**问题；
3. 学会划分**训练集 / 测试集**，理解为什么不能在训练数据上评估模型；
4. 认识**过拟合**与**欠拟合**，以及模型复杂度的权衡；
5. 掌握常用的**评估指标**（准确率、精确率、召回率、F1、混淆矩阵、ROC/AUC）和**交叉验证**；
6. 用 scikit-learn 在自带数据集上动手实践，并用 PyTorch 在 GPU / NPU / CPU 上跑一个最小的梯度下降例子。

> 本课所有数据都来自 scikit-learn 自带的数据集（`load_iris`、`load_wine`、`load_breast_cancer`）或由代码生成，**无需联网**。
""",
    ),
    (
        "md",
        r"""
## 0. 环境准备

下面的单元格完成三件事：

- 固定随机种子，保证每次运行结果一致；
- 为 matplotlib 设置中文字体（否则图中的中文会变成方框）；
- 选择计算设备：优先 `cuda`（NVIDIA GPU），其次 `npu`（华为昇腾，需要 `torch_npu`），最后 `cpu`。
""",
    ),
    (
        "code",
        r"""
import numpy as np
import matplotlib.pyplot as plt
import torch

from mlworkshop.lessonkit import pick_device, use_chinese_font

SEED = 42
rng = np.random.default_rng(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)

use_chinese_font()
device = pick_device()
plt.rcParams["figure.dpi"] = 90
""",
    ),
    (
        "md",
        r"""
## 1. 什么是机器学习？

Tom Mitchell（1997）给出过一个经典定义：

> 如果一个计算机程序在任务 $T$ 上、以性能度量 $P$ 衡量的表现，随着经验 $E$ 的增加而提高，
> 我们就说它从经验 $E$ 中**学习**。

例如：任务 $T$ = 识别垃圾邮件，经验 $E$ = 大量已标注的邮件，性能 $P$ = 分类准确率。

传统编程是"人写规则 → 程序根据规则算出答案"；机器学习则是"给出**数据和答案** → 算法自己**学出规则**（模型）"。
形式化地说，我们希望从数据中找到一个函数 $f_\theta$（$\theta$ 为参数），使它在**没见过的新数据**上也表现良好：

$$
\theta^* = \arg\min_\theta \; \frac{1}{n}\sum_{i=1}^{n} \mathcal{L}\big(f_\theta(x_i),\, y_i\big)
$$

其中 $\mathcal{L}$ 是**损失函数**，衡量预测 $f_\theta(x_i)$ 与真实答案 $y_i$ 的差距。
""",
    ),
    (
        "md",
        r"""
## 2. 机器学习的三大类型

| 类型 | 数据 | 目标 | 典型算法 | 例子 |
|---|---|---|---|---|
| **监督学习** | 输入 $x$ + 标签 $y$ | 学习 $x \mapsto y$ 的映射 | 线性/逻辑回归、决策树、SVM、神经网络 | 房价预测、图像分类 |
| **无监督学习** | 只有输入 $x$ | 发现数据中的结构 | K-Means 聚类、PCA 降维 | 用户分群、数据可视化 |
| **强化学习** | 智能体与环境交互得到的**奖励** | 学习使累计奖励最大的策略 | Q-learning、策略梯度 | 下棋、机器人控制 |

此外还有**半监督学习**（少量标签 + 大量无标签数据）和**自监督学习**（从数据本身构造标签，例如"预测下一个词"——这正是大语言模型的预训练方式，见第 4 课）。
""",
    ),
    (
        "md",
        r"""
## 3. 分类与回归

监督学习按标签的类型分为两类：

- **分类（classification）**：标签是离散的类别，例如"鸢尾花属于哪个品种"、"邮件是否为垃圾邮件"；
- **回归（regression）**：标签是连续的数值，例如"房价是多少"、"明天的气温"。

下面左图是鸢尾花数据集（iris）的两个特征，颜色表示类别（分类问题）；右图是一个带噪声的连续函数（回归问题）。
""",
    ),
    (
        "code",
        r"""
from sklearn.datasets import load_iris

iris = load_iris()
X_iris, y_iris = iris.data, iris.target
names_zh = ["山鸢尾 setosa", "变色鸢尾 versicolor", "维吉尼亚鸢尾 virginica"]
print("iris 数据形状:", X_iris.shape, " 类别:", [str(n) for n in iris.target_names])

x_reg = np.sort(rng.uniform(0, 6, 60))
y_reg = np.sin(x_reg) + 0.25 * rng.normal(size=x_reg.shape)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for k in range(3):
    m = y_iris == k
    axes[0].scatter(X_iris[m, 2], X_iris[m, 3], label=names_zh[k], s=18)
axes[0].set_xlabel("花瓣长度 (cm)")
axes[0].set_ylabel("花瓣宽度 (cm)")
axes[0].set_title("分类：预测离散的类别")
axes[0].legend()
axes[1].scatter(x_reg, y_reg, s=15, color="tab:orange", label="观测数据")
axes[1].plot(x_reg, np.sin(x_reg), "k--", label="真实函数 sin(x)")
axes[1].set_title("回归：预测连续的数值")
axes[1].set_xlabel("输入 x")
axes[1].set_ylabel("输出 y")
axes[1].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 4. 训练集与测试集

模型的目标是**泛化**：在新数据上表现好。如果用训练时见过的数据来评估，就像"用考试原题来复习再考同一张卷子"，
分数会虚高。因此我们把数据划分为：

- **训练集**：用来拟合模型参数；
- **测试集**：训练过程中完全不碰，只在最后评估一次；
- （可选）**验证集**：用来挑选超参数，例如 KNN 的 $k$、多项式的阶数。

`train_test_split` 中的 `stratify=y` 让各类别在训练集和测试集中的比例保持一致（**分层抽样**）。
""",
    ),
    (
        "code",
        r"""
from sklearn.model_selection import train_test_split

X_train, X_test, y_train, y_test = train_test_split(
    X_iris, y_iris, test_size=0.3, random_state=SEED, stratify=y_iris
)
print(f"训练集: {X_train.shape[0]} 个样本, 测试集: {X_test.shape[0]} 个样本")
print("训练集中各类别数量:", np.bincount(y_train))
print("测试集中各类别数量:", np.bincount(y_test))
""",
    ),
    (
        "md",
        r"""
## 5. 第一个分类器：K 近邻（KNN）

KNN 的思想非常朴素：**要预测一个新样本，就看离它最近的 $k$ 个训练样本属于哪一类，少数服从多数**。
距离通常用欧氏距离 $d(x, x') = \sqrt{\sum_j (x_j - x'_j)^2}$。

下面只用花瓣长度和宽度两个特征训练 KNN，并画出它的**决策边界**：背景颜色表示模型在该位置的预测类别。
""",
    ),
    (
        "code",
        r"""
from sklearn.neighbors import KNeighborsClassifier

feat = [2, 3]  # 花瓣长度、花瓣宽度
xx, yy = np.meshgrid(np.linspace(0.5, 7.5, 250), np.linspace(-0.2, 2.8, 250))
grid = np.c_[xx.ravel(), yy.ravel()]

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, k in zip(axes, [1, 15, 60]):
    knn = KNeighborsClassifier(n_neighbors=k).fit(X_train[:, feat], y_train)
    acc_tr = knn.score(X_train[:, feat], y_train)
    acc_te = knn.score(X_test[:, feat], y_test)
    ax.contourf(xx, yy, knn.predict(grid).reshape(xx.shape), alpha=0.25, cmap="viridis")
    ax.scatter(X_train[:, 2], X_train[:, 3], c=y_train, s=14, cmap="viridis", edgecolor="k", linewidth=0.3)
    ax.set_title(f"k = {k}：训练准确率 {acc_tr:.2f}，测试准确率 {acc_te:.2f}")
    ax.set_xlabel("花瓣长度 (cm)")
axes[0].set_ylabel("花瓣宽度 (cm)")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
观察：$k=1$ 时训练准确率往往是 1.0（每个训练点的最近邻就是它自己），边界弯弯曲曲；$k$ 很大时边界过于平滑，
连训练集都分不好。这正是下一节的主题。
""",
    ),
    (
        "md",
        r"""
## 6. 过拟合与欠拟合

- **欠拟合（underfitting）**：模型太简单，连训练数据的规律都没学到，训练误差和测试误差都高；
- **过拟合（overfitting）**：模型太复杂，把训练数据中的**噪声**也背了下来，训练误差很低但测试误差很高。

我们用**多项式回归**来演示：只给 12 个带噪声的训练点（真实函数为 $\sin 2\pi x$），用 $d$ 阶多项式 $\hat y = \sum_{j=0}^{d} w_j x^j$ 去拟合，
以**均方误差**衡量：

$$
\mathrm{MSE} = \frac{1}{n} \sum_{i=1}^{n} (y_i - \hat y_i)^2
$$

这背后是**偏差-方差权衡**：期望测试误差 $=$ 偏差$^2$ $+$ 方差 $+$ 不可约噪声。模型越复杂，偏差越小、方差越大。
""",
    ),
    (
        "code",
        r"""
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

# 只有 12 个训练点；测试点另外生成 200 个（来自同一个分布）
g = np.random.default_rng(7)
def truth(x):
    return np.sin(2 * np.pi * x)
xp_train = np.sort(g.uniform(0, 1, 12)).reshape(-1, 1)
yp_train = truth(xp_train[:, 0]) + 0.2 * g.normal(size=12)
xp_test = g.uniform(0, 1, 200).reshape(-1, 1)
yp_test = truth(xp_test[:, 0]) + 0.2 * g.normal(size=200)

def poly_model(degree, alpha=None):
    reg = LinearRegression() if alpha is None else Ridge(alpha=alpha)
    return make_pipeline(PolynomialFeatures(degree), reg)

x_plot = np.linspace(0, 1, 300).reshape(-1, 1)
fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
for ax, d, title in zip(axes, [1, 3, 11], ["欠拟合", "恰到好处", "过拟合"]):
    model = poly_model(d).fit(xp_train, yp_train)
    tr = mean_squared_error(yp_train, model.predict(xp_train))
    te = mean_squared_error(yp_test, model.predict(xp_test))
    ax.scatter(xp_test, yp_test, s=6, color="lightgray", label="测试数据")
    ax.scatter(xp_train, yp_train, s=25, label="训练数据")
    ax.plot(x_plot, truth(x_plot), "k--", lw=1, label="真实函数")
    ax.plot(x_plot, model.predict(x_plot), "r", label=f"{d} 阶多项式")
    ax.set_ylim(-1.8, 1.8)
    ax.set_title(f"{title}（d={d}）\n训练 MSE={tr:.3f}，测试 MSE={te:.3f}")
    ax.set_xlabel("x")
    ax.legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "code",
        r"""
degrees = range(0, 12)
train_err, test_err = [], []
for d in degrees:
    m = poly_model(d).fit(xp_train, yp_train)
    train_err.append(mean_squared_error(yp_train, m.predict(xp_train)))
    test_err.append(mean_squared_error(yp_test, m.predict(xp_test)))

best = list(degrees)[int(np.argmin(test_err))]
plt.figure(figsize=(7, 4))
plt.plot(degrees, train_err, "o-", label="训练误差")
plt.plot(degrees, test_err, "s-", label="测试误差")
plt.axvline(best, color="gray", ls="--", label=f"测试误差最小：d={best}")
plt.yscale("log")
plt.xlabel("模型复杂度（多项式阶数 d）")
plt.ylabel("均方误差 MSE（对数坐标）")
plt.title("训练误差一路下降，测试误差先降后升")
plt.legend()
plt.show()

ridge = poly_model(11, alpha=1e-4).fit(xp_train, yp_train)
print(f"11 阶多项式 + L2 正则 (Ridge, alpha=1e-4): 测试 MSE = "
      f"{mean_squared_error(yp_test, ridge.predict(xp_test)):.3f}  (不加正则: {test_err[-1]:.3f})")
""",
    ),
    (
        "md",
        r"""
**对抗过拟合的常用手段**：更多的数据；更简单的模型；**正则化**（例如 L2 正则，即在损失上加 $\lambda\lVert w\rVert_2^2$，上面的 `Ridge`）；
早停（early stopping）；数据增强；以及神经网络中的 Dropout 等。
""",
    ),
    (
        "md",
        r"""
## 7. 模型评估

### 7.1 分类指标

以二分类为例，把预测结果分成四种情况，组成**混淆矩阵**：

| | 预测为正 | 预测为负 |
|---|---|---|
| **实际为正** | TP（真正例） | FN（假负例） |
| **实际为负** | FP（假正例） | TN（真负例） |

$$
\text{准确率 Accuracy} = \frac{TP+TN}{TP+TN+FP+FN},\qquad
\text{精确率 Precision} = \frac{TP}{TP+FP},\qquad
\text{召回率 Recall} = \frac{TP}{TP+FN}
$$

$$
F_1 = \frac{2 \cdot \text{Precision} \cdot \text{Recall}}{\text{Precision} + \text{Recall}}
$$

在类别不平衡时（比如 99% 的邮件都不是垃圾邮件），只看准确率会误导人：一个"永远预测为负"的模型准确率也有 99%。

下面用乳腺癌数据集（`load_breast_cancer`，569 个样本、30 个特征）训练**逻辑回归**：
$P(y=1\mid x) = \sigma(w^\top x + b)$，其中 $\sigma(z) = \frac{1}{1+e^{-z}}$。
""",
    ),
    (
        "code",
        r"""
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_score,
                             recall_score, roc_auc_score, roc_curve)

cancer = load_breast_cancer()
Xc_train, Xc_test, yc_train, yc_test = train_test_split(
    cancer.data, cancer.target, test_size=0.3, random_state=SEED, stratify=cancer.target
)
# 在该数据集中 1 = 良性(benign)，0 = 恶性(malignant)
clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
clf.fit(Xc_train, yc_train)
pred = clf.predict(Xc_test)
proba = clf.predict_proba(Xc_test)[:, 1]

print(f"准确率  Accuracy : {accuracy_score(yc_test, pred):.3f}")
print(f"精确率  Precision: {precision_score(yc_test, pred):.3f}")
print(f"召回率  Recall   : {recall_score(yc_test, pred):.3f}")
print(f"F1 分数          : {f1_score(yc_test, pred):.3f}")
print(f"ROC 曲线下面积 AUC: {roc_auc_score(yc_test, proba):.3f}")
""",
    ),
    (
        "code",
        r"""
cm = confusion_matrix(yc_test, pred)
labels = ["恶性", "良性"]
fpr, tpr, _ = roc_curve(yc_test, proba)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
axes[0].imshow(cm, cmap="Blues")
for i in range(2):
    for j in range(2):
        axes[0].text(j, i, cm[i, j], ha="center", va="center", fontsize=14,
                     color="white" if cm[i, j] > cm.max() / 2 else "black")
axes[0].set_xticks([0, 1], labels)
axes[0].set_yticks([0, 1], labels)
axes[0].set_xlabel("预测类别")
axes[0].set_ylabel("真实类别")
axes[0].set_title("混淆矩阵（逻辑回归）")

axes[1].plot(fpr, tpr, label=f"逻辑回归 (AUC = {roc_auc_score(yc_test, proba):.3f})")
axes[1].plot([0, 1], [0, 1], "k--", label="随机猜测")
axes[1].set_xlabel("假正例率 FPR")
axes[1].set_ylabel("真正例率 TPR（召回率）")
axes[1].set_title("ROC 曲线")
axes[1].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
### 7.2 交叉验证

一次随机划分的测试结果可能有运气成分。**$k$ 折交叉验证**把训练数据分成 $k$ 份，轮流用其中 1 份做验证、其余 $k-1$ 份训练，
最后取 $k$ 次结果的平均值和标准差。下面在葡萄酒数据集（`load_wine`）上用 5 折交叉验证比较几种模型。
注意特征**标准化**（$x' = (x-\mu)/\sigma$）对 KNN、逻辑回归这类依赖距离或梯度的模型很重要。
""",
    ),
    (
        "code",
        r"""
from sklearn.datasets import load_wine
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.tree import DecisionTreeClassifier
from sklearn.ensemble import RandomForestClassifier

wine = load_wine()
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
models = {
    "KNN（未标准化）": KNeighborsClassifier(5),
    "KNN（标准化）": make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
    "逻辑回归": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "决策树": DecisionTreeClassifier(random_state=SEED),
    "随机森林": RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1),
}
scores = {name: cross_val_score(m, wine.data, wine.target, cv=cv) for name, m in models.items()}
for name, s in scores.items():
    print(f"{name:<12s} 准确率 = {s.mean():.3f} ± {s.std():.3f}")

plt.figure(figsize=(8, 4))
plt.boxplot(list(scores.values()))
plt.xticks(range(1, len(scores) + 1), list(scores.keys()))
plt.ylabel("5 折交叉验证准确率")
plt.title("葡萄酒数据集上的模型比较")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 8. 无监督学习：聚类与降维

无监督学习没有标签。这里演示两种最常见的方法：

- **PCA（主成分分析）**：找到数据方差最大的方向，把高维数据投影到低维，便于可视化与压缩；
- **K-Means 聚类**：把数据分成 $K$ 簇，最小化每个点到其簇中心 $\mu_k$ 的距离平方和：
  $\displaystyle J = \sum_{k=1}^{K} \sum_{x_i \in C_k} \lVert x_i - \mu_k \rVert^2$。

我们把葡萄酒数据（13 维）用 PCA 降到 2 维，再用 K-Means 分成 3 簇，与真实类别对比（真实类别在训练时**没有用到**）。
""",
    ),
    (
        "code",
        r"""
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

Xw = StandardScaler().fit_transform(wine.data)
pca = PCA(n_components=2, random_state=SEED).fit(Xw)
Z = pca.transform(Xw)
km = KMeans(n_clusters=3, n_init=10, random_state=SEED).fit(Xw)
print("前两个主成分解释的方差比例:", np.round(pca.explained_variance_ratio_, 3))
print(f"K-Means 聚类与真实类别的一致性（调整兰德指数 ARI，1 为完全一致）: "
      f"{adjusted_rand_score(wine.target, km.labels_):.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].scatter(Z[:, 0], Z[:, 1], c=wine.target, cmap="viridis", s=15)
axes[0].set_title("真实类别（仅用于对照）")
axes[1].scatter(Z[:, 0], Z[:, 1], c=km.labels_, cmap="viridis", s=15)
centers = pca.transform(km.cluster_centers_)
axes[1].scatter(centers[:, 0], centers[:, 1], marker="*", s=250, c="red", label="簇中心")
axes[1].set_title("K-Means 聚类结果（不使用标签）")
axes[1].legend()
for ax in axes:
    ax.set_xlabel("第一主成分")
    ax.set_ylabel("第二主成分")
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 9. 强化学习初探：多臂老虎机

强化学习中，**智能体**在环境中采取**动作**、获得**奖励**，目标是学会使长期累计奖励最大的策略。
它面临的核心矛盾是**探索（exploration）与利用（exploitation）**：一直选目前看起来最好的动作，可能错过真正更好的动作。

最简单的例子是 $K$ 臂老虎机：每个臂的平均奖励 $q_*(a)$ 未知。**$\varepsilon$-贪心**策略以概率 $\varepsilon$ 随机探索，
否则选择当前估计值最高的臂，并用增量平均更新估计：

$$
Q_{n+1}(a) = Q_n(a) + \frac{1}{n}\big(R_n - Q_n(a)\big)
$$
""",
    ),
    (
        "code",
        r"""
def run_bandit(eps, steps=1000, runs=200, k=10, seed=SEED):
    g = np.random.default_rng(seed)
    q_true = g.normal(size=(runs, k))             # 每次实验各臂的真实平均奖励
    Q = np.zeros((runs, k))
    N = np.zeros((runs, k))
    rewards = np.zeros(steps)
    optimal = np.zeros(steps)
    best = q_true.argmax(axis=1)
    rows = np.arange(runs)
    for t in range(steps):
        greedy = Q.argmax(axis=1)
        explore = g.random(runs) < eps
        a = np.where(explore, g.integers(0, k, runs), greedy)
        r = q_true[rows, a] + g.normal(size=runs)
        N[rows, a] += 1
        Q[rows, a] += (r - Q[rows, a]) / N[rows, a]
        rewards[t] = r.mean()
        optimal[t] = (a == best).mean()
    return rewards, optimal

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for eps in [0.0, 0.01, 0.1]:
    r, opt = run_bandit(eps)
    axes[0].plot(np.convolve(r, np.ones(20) / 20, mode="valid"), label=f"ε = {eps}")
    axes[1].plot(opt * 100, label=f"ε = {eps}")
axes[0].set_title("平均奖励随时间变化")
axes[0].set_xlabel("步数")
axes[0].set_ylabel("平均奖励")
axes[1].set_title("选中最优臂的比例")
axes[1].set_xlabel("步数")
axes[1].set_ylabel("百分比 (%)")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
可以看到纯贪心（$\varepsilon=0$）很快陷入次优的臂；适度探索（$\varepsilon=0.1$）长期表现更好。

## 10. 用 PyTorch 在加速器上做梯度下降

前面的 scikit-learn 模型都在 CPU 上运行。深度学习框架（PyTorch）可以把同样的计算放到 GPU / NPU 上。
下面用**梯度下降**拟合线性回归 $\hat y = w x + b$，损失为 MSE。参数更新规则：

$$
w \leftarrow w - \eta \frac{\partial \mathcal{L}}{\partial w}, \qquad b \leftarrow b - \eta \frac{\partial \mathcal{L}}{\partial b}
$$

其中 $\eta$ 为**学习率**，梯度由 PyTorch 的自动求导（autograd）算出。张量都放在前面选出的 `device` 上。
""",
    ),
    (
        "code",
        r"""
x_t = torch.linspace(-3, 3, 200, device=device).unsqueeze(1)
y_t = 2.5 * x_t - 1.0 + 0.5 * torch.randn(x_t.shape, device=device,
                                          generator=torch.Generator(device=device).manual_seed(SEED))
w = torch.zeros(1, device=device, requires_grad=True)
b = torch.zeros(1, device=device, requires_grad=True)
lr = 0.05
history = []
for step in range(100):
    loss = ((w * x_t + b - y_t) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
        b -= lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
    history.append(loss.item())
print(f"在 {device} 上学到: w = {w.item():.3f}（真实 2.5）, b = {b.item():.3f}（真实 -1.0）")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(history)
axes[0].set_xlabel("迭代次数")
axes[0].set_ylabel("MSE 损失")
axes[0].set_title("梯度下降的损失曲线")
axes[1].scatter(x_t.cpu(), y_t.cpu(), s=8, label="数据")
axes[1].plot(x_t.cpu(), (w * x_t + b).detach().cpu(), "r", label="拟合直线")
axes[1].set_title("线性回归结果")
axes[1].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## 小结

- 机器学习 = 从数据中学习一个在**新数据**上表现良好的函数；按监督信号分为监督、无监督、强化学习；
- 分类预测离散类别，回归预测连续数值；
- 永远在**独立的测试集**上评估；用交叉验证获得更稳定的估计；
- 模型太简单会欠拟合，太复杂会过拟合；正则化、更多数据、选择合适的复杂度可以缓解；
- 分类任务不能只看准确率：还要看精确率、召回率、F1、混淆矩阵和 ROC/AUC。

## 练习

1. 把第 5 节的 KNN 改为使用全部 4 个特征，用 5 折交叉验证选出最好的 $k$（提示：`cross_val_score` 循环 $k=1..30$）。
2. 在第 6 节中把训练点从 12 个增加到 120 个（修改 `xp_train`、`yp_train` 的生成），11 阶多项式的过拟合还严重吗？为什么？
3. 在第 7 节中，把逻辑回归的判定阈值从 0.5 改为 0.9（`pred = proba > 0.9`），精确率和召回率分别怎样变化？
4. 在第 9 节中尝试 $\varepsilon = 0.3$，它为什么长期表现反而不如 $\varepsilon = 0.1$？

## 参考资料

- T. M. Mitchell, *Machine Learning*, McGraw-Hill, 1997.
- 周志华，《机器学习》，清华大学出版社，2016。
- R. S. Sutton, A. G. Barto, *Reinforcement Learning: An Introduction*, 2nd ed., MIT Press, 2018（第 2 章：多臂老虎机）。
- scikit-learn 用户指南：<https://scikit-learn.org/stable/user_guide.html>（数据集：`sklearn.datasets` 自带的 iris、wine、breast cancer）。
""",
    ),
]
