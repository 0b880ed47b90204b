# Program 4 of Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv 2302.06675,
# NeurIPS 2023): the discovered program after search and selection, redundant statements removed.
# Exact paper text. With `math` semantics it is Lion with beta1 = 0.899, beta2 = 0.996991,
# weight decay 0.4602 and peak lr 2e-4 (see docs/language.md, "Worked meaning").
def train(w, g, m, v, lr):
  g = clip(g, lr)
  g = arcsin(g)
  m = interp(g, v, 0.899)
  m2 = m * m
  v = interp(g, m, 1.109)
  abs_m = sqrt(m2)
  update = m / abs_m
  wd = w * 0.4602
  update = update + wd
  lr = lr * 0.0002
  m = cosh(update)
  update = update * lr
  return update, m, v
