# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Seed 000's two-layer example, recomputed exactly
#
# Seed 000 (the tutorial "The Unstable World of Deep Learning") illustrates internal
# covariate shift with a 2-layer network of scalar weights, 4 samples per batch and 3 training steps, once
# without and once with BatchNorm. Its numbers were worked by hand. This notebook recomputes every one of
# them with bnstudy's own layers (`bnstudy.norms.make_norm` with `NormConf(name="batch")`, i.e. PyTorch's
# `nn.BatchNorm1d`) in float64, and says where the seed is off:
#
# 1. Its standard deviations are neither the population (biased, 1/m) one that BatchNorm normalises with
#    nor the sample (unbiased, 1/(m-1)) one, except in step 3; its normalised values follow from its own
#    rounded sigma, so they are off too.
# 2. Its "Layer 2 input" column (with BN) contradicts its own "After ReLU" rows.
# 3. Its summary quotes means that are not in its tables (1.25, 0.55).
# 4. Its running-average formula uses the opposite momentum convention from PyTorch, and the biased
#    variance where PyTorch keeps the unbiased one.
#
# A last section checks the other tutorial's code, the BatchNorm explainer's forward pass, on the same batch:
# it normalises with the unbiased variance where BatchNorm uses the biased one.
#
# Every key number is asserted in the cell that computes it: if bnstudy's layers change, this notebook
# fails (it runs in the test suite, `tests/test_notebooks.py`).

# %%
import numpy as np
import pandas as pd
import torch
from torch import nn

from bnstudy.config import NormConf
from bnstudy.norms import make_norm

torch.set_default_dtype(torch.float64)  # exact enough to tell rounding from error
pd.set_option("display.precision", 4)

# The seed's data: per step the 4 inputs of the batch and the two (given, not learned) weights.
INPUTS = {1: [2.0, 3.0, 1.5, 2.5], 2: [2.2, 3.1, 1.8, 2.7], 3: [2.4, 3.2, 2.0, 2.8]}
W1 = {1: 0.5, 2: 0.3, 3: 0.2}
W2 = {1: 0.8, 2: 0.9, 3: 1.1}
STEPS = list(INPUTS)


def linear(w: float) -> nn.Linear:
    """A 1 -> 1 linear layer without bias holding the scalar weight ``w``."""
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(w)
    return layer


def batch(step: int) -> torch.Tensor:
    return torch.tensor(INPUTS[step]).unsqueeze(1)  # (N=4, C=1): one unit, 4 samples


# %% [markdown]
# ## Table 1: without BatchNorm
#
# Layer 1 is `h = W1 x` (no activation: the seed calls it the "Layer 1 output"), layer 2 is
# `z = W2 h` followed by a ReLU. Every value is positive, so the ReLU never does anything here: the
# seed's "Layer 2 Output (ReLU)" column is the pre-activation column again.

# %%
rows = []
for s in STEPS:
    x = batch(s)
    h = linear(W1[s])(x)
    z = linear(W2[s])(h)
    out = torch.relu(z)
    for i in range(4):
        rows.append(dict(step=s, sample=i + 1, input=x[i, 0].item(), W1=W1[s], layer1_out=h[i, 0].item(),
                         W2=W2[s], layer2_pre=z[i, 0].item(), layer2_out=out[i, 0].item()))
table1 = pd.DataFrame(rows).set_index(["step", "sample"])
table1

# %%
# The seed's printed values (2 decimals), in the same order.
seed_layer1 = {1: [1.0, 1.5, 0.75, 1.25], 2: [0.66, 0.93, 0.54, 0.81], 3: [0.48, 0.64, 0.40, 0.56]}
seed_layer2 = {1: [0.8, 1.2, 0.6, 1.0], 2: [0.59, 0.84, 0.49, 0.73], 3: [0.53, 0.70, 0.44, 0.62]}
for s in STEPS:
    np.testing.assert_allclose(table1.loc[s, "layer1_out"], seed_layer1[s], atol=1e-12)  # exact products
    np.testing.assert_allclose(table1.loc[s, "layer2_pre"], seed_layer2[s], atol=0.005)  # rounded to 2 d.p.
assert (table1["layer2_out"] == table1["layer2_pre"]).all()  # the ReLU column repeats the pre-activations
print("Table 1's per-sample values are right (layer 2 rounded to 2 decimals).")

# %% [markdown]
# ### Batch statistics: which standard deviation?
#
# The seed's "Batch Stats" rows describe the **layer-1 outputs** (though printed under "Layer 2 Output").
# BatchNorm normalises with the *population* standard deviation, `sqrt(mean((h - mean)^2))`, the seed's
# own formula `sigma^2_B = (1/m) sum (x_i - mu_B)^2`. The *sample* standard deviation divides by
# `m - 1 = 3` instead.

# %%
seed_stats = pd.DataFrame({"seed_mean": [1.125, 0.735, 0.52], "seed_std": [0.31, 0.16, 0.10]}, index=STEPS)
h_by_step = {s: torch.tensor(seed_layer1[s]) for s in STEPS}
stats = pd.DataFrame({
    "mean": [h_by_step[s].mean().item() for s in STEPS],
    "std_population": [h_by_step[s].std(correction=0).item() for s in STEPS],
    "std_sample": [h_by_step[s].std(correction=1).item() for s in STEPS],
    "min": [h_by_step[s].min().item() for s in STEPS],
    "max": [h_by_step[s].max().item() for s in STEPS],
}, index=pd.Index(STEPS, name="step")).join(seed_stats)


def which_std(row) -> str:
    near = lambda v: abs(round(v, 2) - row.seed_std) < 1e-9
    return "population" if near(row.std_population) else "sample" if near(row.std_sample) else "neither"


stats["seed_std_is"] = stats.apply(which_std, axis=1)
stats

# %%
np.testing.assert_allclose(stats["mean"], [1.125, 0.735, 0.52])
np.testing.assert_allclose(stats["std_population"], [0.279508, 0.147733, 0.089443], atol=1e-6)
np.testing.assert_allclose(stats["std_sample"], [0.322749, 0.170587, 0.103280], atol=1e-6)
assert list(stats["seed_std_is"]) == ["neither", "neither", "sample"]
print("The seed's means are right; its std is neither the population nor the sample one in steps 1-2 "
      "(0.31 vs 0.28 / 0.32; 0.16 vs 0.15 / 0.17) and the sample one in step 3 (0.10).")

# %% [markdown]
# The seed's "Key Observation" under Table 1 also quotes means that are not in its own table: step 1
# "mean: 1.25" (its table, and the data, say 1.125) and step 3 "mean: 0.55" (0.52). Step 2's 0.73 is
# 0.735 rounded down.

# %%
key_observation = {1: 1.25, 2: 0.73, 3: 0.55}
print(pd.DataFrame({"key_observation_says": key_observation, "actual_mean": stats["mean"]}))
assert abs(stats.loc[1, "mean"] - key_observation[1]) > 0.1 and abs(stats.loc[3, "mean"] - key_observation[3]) > 0.02

# %% [markdown]
# ## Table 2: with BatchNorm
#
# BatchNorm on layer 1's output, in training mode (batch statistics), then the ReLU: the seed's
# "Normalized" and "After ReLU" rows and its "Layer 2 Input" column. `make_norm` builds exactly the layer a
# bnstudy model uses for `norm=batch` (gamma = 1, beta = 0 at initialisation, eps = 1e-5,
# momentum = 0.1). One BN layer sees all three steps, so its running averages evolve as in training
# (used in the last section).

# %%
bn = make_norm(NormConf(name="batch"), num_features=1, spatial=False)
print(bn)
bn.train()
running = []  # the BN layer's running statistics after each step
rows = []
for s in STEPS:
    h = linear(W1[s])(batch(s))
    with torch.no_grad():
        y = bn(h)
    running.append((bn.running_mean.item(), bn.running_var.item()))
    for i in range(4):
        rows.append(dict(step=s, sample=i + 1, layer1_pre=h[i, 0].item(), normalized=y[i, 0].item(),
                         after_relu=torch.relu(y)[i, 0].item()))
table2 = pd.DataFrame(rows).set_index(["step", "sample"])

seed_normalized = {1: [-0.40, 1.21, -1.21, 0.40], 2: [-0.47, 1.22, -1.22, 0.47], 3: [-0.40, 1.20, -1.20, 0.40]}
seed_after_relu = {1: [0.0, 1.21, 0.0, 0.40], 2: [0.0, 1.22, 0.0, 0.47], 3: [0.0, 1.20, 0.0, 0.40]}
seed_layer2_input = {1: [0.0, 0.71, 0.0, 0.0], 2: [0.0, 1.22, 0.0, 0.29], 3: [0.0, 1.20, 0.0, 0.40]}
for col, seed in (("seed_normalized", seed_normalized), ("seed_after_relu", seed_after_relu),
                  ("seed_layer2_input", seed_layer2_input)):
    table2[col] = [v for s in STEPS for v in seed[s]]
table2

# %%
exact = np.array([-1, 3, -3, 1]) / np.sqrt(5)  # steps 1 and 3: deviations in ratio -1 : 3 : -3 : 1
np.testing.assert_allclose(table2.loc[1, "normalized"], exact, atol=1e-4)  # eps = 1e-5 shifts the 5th digit
np.testing.assert_allclose(table2.loc[3, "normalized"], exact, atol=1e-3)
np.testing.assert_allclose(table2.loc[1, "normalized"], [-0.4472, 1.3416, -1.3416, 0.4472], atol=1e-4)
np.testing.assert_allclose(table2.loc[2, "normalized"], [-0.5076, 1.3196, -1.3196, 0.5076], atol=1e-4)
np.testing.assert_allclose(table2.loc[3, "normalized"], [-0.4469, 1.3408, -1.3408, 0.4469], atol=1e-4)
for s in STEPS:  # normalised to mean 0 and population variance 1 (up to eps), whatever the step
    v = torch.tensor(table2.loc[s, "normalized"].to_numpy())
    assert abs(v.mean().item()) < 1e-12 and abs(v.var(correction=0).item() - 1) < 2e-3
print("BN's normalised values: [-0.45, +1.34, -1.34, +0.45] in steps 1 and 3, [-0.51, +1.32, -1.32, +0.51] "
      "in step 2; the seed prints [-0.40, +1.21, ...], [-0.47, +1.22, ...], [-0.40, +1.20, ...].")

# %% [markdown]
# ### Where the seed's normalised values come from
#
# They are the deviations divided by the seed's own (rounded, and in steps 1-2 wrong) sigma. With the
# population sigma, as BatchNorm computes it, every entry is larger by 11 % (step 1), 8 % (step 2) and
# 12 % (step 3).

# %%
dev = {s: h_by_step[s] - h_by_step[s].mean() for s in STEPS}
with_seed_sigma = {s: (dev[s] / seed_stats.loc[s, "seed_std"]).numpy() for s in STEPS}
for s in STEPS:
    np.testing.assert_allclose(with_seed_sigma[s], seed_normalized[s], atol=0.006)
    print(f"step {s}: deviations / seed sigma {seed_stats.loc[s, 'seed_std']} =", np.round(with_seed_sigma[s], 3))

# %% [markdown]
# ### The ReLU column contradicts the "After ReLU" rows
#
# The seed's per-sample "Layer 2 Input" column should equal its "After ReLU" row. It does in step 3 only:
# in step 1 it prints 0.71 for sample 2 (its row says 1.21) and 0.0 for sample 4 (a positive normalised
# value, 0.40 in its row, which the ReLU keeps); in step 2 it prints 0.29 for sample 4 (its row: 0.47).
# Exactly, the ReLU keeps samples 2 and 4: [0, 1.34, 0, 0.45] (steps 1, 3) and [0, 1.32, 0, 0.51] (step 2).

# %%
contradictions = table2[(table2["seed_layer2_input"] - table2["seed_after_relu"]).abs() > 1e-9]
contradictions[["seed_after_relu", "seed_layer2_input", "after_relu"]]

# %%
assert list(contradictions.index) == [(1, 2), (1, 4), (2, 4)]
np.testing.assert_allclose(table2["after_relu"], np.maximum(table2["normalized"], 0))
assert (table2.xs(4, level="sample")["after_relu"] > 0.44).all()  # sample 4 is never zeroed

# %% [markdown]
# ### What BatchNorm actually removes here
#
# Layer 1 multiplies by a positive scalar, and BatchNorm undoes any positive scale and any shift:
# `BN(W1 x) = BN(x)` for `W1 > 0`. The weight history (0.5, 0.3, 0.2) therefore has no effect at all on
# the BN output; only the shape of each batch does. Step 3's inputs are an affine image of step 1's
# (`x3 = 0.8 x1 + 0.8`), so both steps give the same normalised values, while step 2's batch has another
# shape and gives others. "Normalized values consistently follow standard normal distribution" is also
# too strong: with 4 samples they have mean 0 and variance 1 by construction, not a normal shape, and
# after the ReLU (what layer 2 sees) the mean is 0.45 and the standard deviation 0.55, not 0 and 1.

# %%
x1, x3 = batch(1), batch(3)
np.testing.assert_allclose(x3.numpy(), 0.8 * x1.numpy() + 0.8)
probe = make_norm(NormConf(name="batch"), 1, False).train()
with torch.no_grad():
    for w in (0.5, 0.3, 0.2, 7.0):
        np.testing.assert_allclose(probe(w * x1).numpy(), probe(x1).numpy(), atol=1e-3)  # up to eps
relu_out = torch.tensor(table2.loc[1, "after_relu"].to_numpy())
print("after ReLU: mean %.4f, population std %.4f" % (relu_out.mean(), relu_out.std(correction=0)))
np.testing.assert_allclose([relu_out.mean().item(), relu_out.std(correction=0).item()], [0.4472, 0.5477], atol=1e-4)

# %% [markdown]
# ## Training vs evaluation: running averages
#
# In training mode BN normalises with the batch's statistics; in eval mode with running averages that
# training kept. The seed writes
#
# ```python
# running_mean = momentum * running_mean + (1 - momentum) * batch_mean
# running_var  = momentum * running_var  + (1 - momentum) * batch_var      # batch_var: its 1/m variance
# ```
#
# which is the Keras/TensorFlow convention (momentum ~ 0.99 weighs the *old* value). PyTorch, and so
# bnstudy (`NormConf.momentum = 0.1`), weighs the *new* batch:
#
# ```python
# running_mean = (1 - momentum) * running_mean + momentum * batch_mean
# running_var  = (1 - momentum) * running_var  + momentum * batch_var_unbiased   # 1/(m-1)
# ```
#
# starting from mean 0 and variance 1. So PyTorch's 0.1 is the seed's 0.9, and putting PyTorch's 0.1 into
# the seed's formula tracks the last batch almost entirely (0.9 of it). PyTorch also stores the
# *unbiased* variance (m/(m-1) = 4/3 times the one it normalises with, with m = 4) while normalising
# with the biased one in training.

# %%
def seed_running(momentum: float) -> list[tuple[float, float]]:
    mean, var, out = 0.0, 1.0, []
    for s in STEPS:
        h = h_by_step[s]
        mean = momentum * mean + (1 - momentum) * h.mean().item()
        var = momentum * var + (1 - momentum) * h.var(correction=0).item()
        out.append((mean, var))
    return out


def torch_formula(momentum: float) -> list[tuple[float, float]]:
    mean, var, out = 0.0, 1.0, []
    for s in STEPS:
        h = h_by_step[s]
        mean = (1 - momentum) * mean + momentum * h.mean().item()
        var = (1 - momentum) * var + momentum * h.var(correction=1).item()
        out.append((mean, var))
    return out


running_table = pd.DataFrame({
    "batch_mean": stats["mean"].to_numpy(),
    "batch_var_biased": [h_by_step[s].var(correction=0).item() for s in STEPS],
    "batch_var_unbiased": [h_by_step[s].var(correction=1).item() for s in STEPS],
    "torch_running_mean": [m for m, _ in running],
    "torch_running_var": [v for _, v in running],
    "seed_formula_m0.1_mean": [m for m, _ in seed_running(0.1)],
    "seed_formula_m0.1_var": [v for _, v in seed_running(0.1)],
    "seed_formula_m0.9_mean": [m for m, _ in seed_running(0.9)],
    "seed_formula_m0.9_var": [v for _, v in seed_running(0.9)],
}, index=pd.Index(STEPS, name="after step"))
running_table.T

# %%
np.testing.assert_allclose(running, torch_formula(0.1), rtol=1e-12)  # PyTorch's layer = PyTorch's formula
np.testing.assert_allclose(running_table["torch_running_mean"], [0.1125, 0.17475, 0.209275], rtol=1e-9)
np.testing.assert_allclose(running_table["torch_running_var"], [0.9104167, 0.822285, 0.7411232], rtol=1e-6)
# the seed's formula with momentum 0.9 gives PyTorch's mean, but a smaller variance (biased batch variance)
np.testing.assert_allclose(running_table["seed_formula_m0.9_mean"], running_table["torch_running_mean"])
assert (running_table["seed_formula_m0.9_var"] < running_table["torch_running_var"]).all()
# the seed's formula with PyTorch's number (0.1) follows the last batch
np.testing.assert_allclose(running_table["seed_formula_m0.1_mean"], [1.0125, 0.76275, 0.544275], rtol=1e-9)

# %% [markdown]
# ### The same batch, train mode vs eval mode
#
# After 3 steps the running averages are still far from any batch's statistics (momentum 0.1 needs tens
# of steps to forget the initial 0 / 1), so in eval mode step 3's batch comes out nowhere near mean 0,
# variance 1. This is the train/eval discrepancy the seed lists under "Limitations"; it is also why bnstudy
# measures the loss landscape in training mode (batch statistics) and evaluates accuracy in eval mode.

# %%
with torch.no_grad():
    h3 = linear(W1[3])(batch(3))
    bn.train()
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    train_out = bn(h3).squeeze(1)
    bn.running_mean.copy_(before[0]); bn.running_var.copy_(before[1]); bn.num_batches_tracked.copy_(before[2])
    bn.eval()
    eval_out = bn(h3).squeeze(1)
    manual_eval = (h3.squeeze(1) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
compare = pd.DataFrame({"layer1_pre": h3.squeeze(1).numpy(), "train_mode": train_out.numpy(),
                        "eval_mode": eval_out.numpy(), "eval_by_hand": manual_eval.numpy()},
                       index=pd.Index(range(1, 5), name="sample"))
compare

# %%
np.testing.assert_allclose(compare["eval_mode"], compare["eval_by_hand"], rtol=1e-12)
np.testing.assert_allclose(compare["eval_mode"], [0.3145, 0.5003, 0.2215, 0.4074], atol=1e-4)
np.testing.assert_allclose(compare["train_mode"], table2.loc[3, "normalized"], rtol=1e-12)
assert compare["eval_mode"].min() > 0  # in eval mode the ReLU would keep all four samples

# %% [markdown]
# ## The BatchNorm explainer's forward pass: `x.var(dim=0)` is the unbiased variance
#
# The BatchNorm explainer gives this forward pass (verbatim):
#
# ```python
# def batch_norm(x, gamma, beta, eps=1e-5):
#     # x shape: (batch_size, features)
#     mu = x.mean(dim=0)
#     var = x.var(dim=0)
#     x_norm = (x - mu) / torch.sqrt(var + eps)
#     return gamma * x_norm + beta
# ```
#
# `torch.Tensor.var` divides by `m - 1` by default (the unbiased, sample variance). BatchNorm in training
# normalises with the biased `1/m` variance, as both tutorials' own formulas say and as `nn.BatchNorm1d`
# does. So the explainer's outputs are smaller by `sqrt((m - 1) / m)` (up to eps): with seed 000's batch of
# m = 4 they have variance 3/4, not 1. The gap fades with the batch: 0.866 at m = 4, 0.996 at m = 128.
# (The *running* variance PyTorch keeps for eval mode is the unbiased one; see the section above.)

# %%
def explainer_batch_norm(x, gamma, beta, eps=1e-5):
    """The BatchNorm explainer's forward pass, verbatim."""
    mu = x.mean(dim=0)
    var = x.var(dim=0)
    x_norm = (x - mu) / torch.sqrt(var + eps)
    return gamma * x_norm + beta


h1 = linear(W1[1])(batch(1)).detach()  # seed 000's step-1 layer-1 outputs [1.0, 1.5, 0.75, 1.25]
torch_bn = make_norm(NormConf(name="batch"), 1, False).train()
with torch.no_grad():
    bn_out = torch_bn(h1).squeeze(1)
explainer_out = explainer_batch_norm(h1, 1.0, 0.0).squeeze(1)
variance = pd.DataFrame({"batchnorm": bn_out.numpy(), "explainer": explainer_out.numpy(),
                         "ratio": (explainer_out / bn_out).numpy()}, index=pd.Index(range(1, 5), name="sample"))
variance

# %%
np.testing.assert_allclose(variance["explainer"], [-0.3873, 1.1619, -1.1619, 0.3873], atol=1e-4)
np.testing.assert_allclose(variance["ratio"], np.sqrt(3 / 4), rtol=1e-3)  # sqrt((m - 1) / m), m = 4, up to eps
assert abs(explainer_out.var(correction=0).item() - 0.75) < 1e-3  # variance 3/4 instead of 1
fixed = lambda x: (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, correction=0) + 1e-5)  # the biased variance
np.testing.assert_allclose(fixed(h1).squeeze(1).numpy(), bn_out.numpy(), rtol=1e-12)
ratios = {}
for m in (2, 4, 8, 32, 128):  # the same comparison on Gaussian batches of m samples, 16 features
    x = torch.randn(m, 16, generator=torch.Generator().manual_seed(m))
    with torch.no_grad():
        ref = make_norm(NormConf(name="batch"), 16, False).train()(x)
    ratios[m] = (explainer_batch_norm(x, 1.0, 0.0) / ref).median().item()
ratio_table = pd.DataFrame({"explainer / batchnorm": ratios, "sqrt((m-1)/m)": {m: np.sqrt((m - 1) / m) for m in ratios}})
ratio_table.index.name = "batch size m"
np.testing.assert_allclose(ratio_table.iloc[:, 0], ratio_table.iloc[:, 1], rtol=1e-3)
ratio_table

# %% [markdown]
# ## Errata (seed 000, and the BatchNorm explainer's forward pass)
#
# | Where | Seed says | Exact (float64, bnstudy's BatchNorm) |
# |---|---|---|
# | Table 1 batch std, step 1 / 2 / 3 | 0.31 / 0.16 / 0.10 | population (what BN uses) 0.280 / 0.148 / 0.089; sample 0.323 / 0.171 / 0.103 |
# | Table 1 stats row | printed under "Layer 2 Output" | they are layer 1's outputs; layer 2's mean is 0.90 / 0.66 / 0.57 |
# | Key observation means, steps 1 / 3 | 1.25 / 0.55 | 1.125 / 0.52 |
# | Table 2 normalised, step 1 (and 3) | [-0.40, +1.21, -1.21, +0.40] | [-0.447, +1.342, -1.342, +0.447] |
# | Table 2 normalised, step 2 | [-0.47, +1.22, -1.22, +0.47] | [-0.508, +1.320, -1.320, +0.508] |
# | Table 2 "Layer 2 Input", step 1 | 0.0, 0.71, 0.0, 0.0 | 0, 1.342, 0, 0.447 (its own "After ReLU" row: 0, 1.21, 0, 0.40) |
# | Table 2 "Layer 2 Input", step 2 sample 4 | 0.29 | 0.508 (its own row: 0.47) |
# | "normalized values follow a standard normal" | | mean 0, variance 1 by construction (4 values, no normal shape); after the ReLU mean 0.45, std 0.55 |
# | Running averages | `running = m * running + (1 - m) * batch`, biased variance | PyTorch: `running = (1 - m) * running + m * batch`, m = 0.1, unbiased variance |
# | Table 1's ReLU column | | identical to the pre-activations: every value is positive, the network is linear here |
# | The BatchNorm explainer's `var = x.var(dim=0)` | (the explainer's forward pass) | unbiased variance: outputs x sqrt((m-1)/m), variance 3/4 at m = 4; BatchNorm uses `x.var(dim=0, correction=0)` |

# %%
layer2_means = table1.groupby(level="step")["layer2_pre"].mean()
np.testing.assert_allclose(layer2_means, [0.9, 0.6615, 0.572], atol=1e-12)
