# AddSign (Bello et al., "Neural Optimizer Search with Reinforcement Learning", ICML 2017),
# with alpha 1 and no decay (as the Lion paper compares it): `m = beta * m + (1 - beta) * g`,
# `update = lr * (alpha + sign(g) * sign(m)) * g`, beta 0.9; lr 0.1, the default of TensorFlow's
# AddSignOptimizer. No torch.optim class: the test compares it with the paper's rule written
# out directly.
def addsign(w, g, m, lr=0.1, beta=0.9, alpha=1):
  m = interp(g, m, beta)
  update = lr * (alpha + sign(g) * sign(m)) * g
  return update, m
