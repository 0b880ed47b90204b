# Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023) as the official code
# runs it (google/automl lion/, also lucidrains' lion-pytorch): `c = beta1 * m + (1 - beta1) * g`,
# `w = w * (1 - lr * weight_decay) - lr * sign(c)`, `m = beta2 * m + (1 - beta2) * g`, with the
# official defaults lr 1e-4, betas (0.9, 0.99) and weight_decay 0. torch.optim has no Lion: the test
# compares it with the official rule written out directly (and with lion-pytorch).
def lion(w, g, m, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
  c = interp(g, m, beta1)
  update = lr * (sign(c) + weight_decay * w)
  m = interp(g, m, beta2)
  return update, m
