# Program 3 of Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv 2302.06675,
# NeurIPS 2023): AdamW as the warm start of the search (bias correction and epsilon omitted),
# peak lr 0.001 and weight decay 0.01 as constants; lr is the schedule value. Exact paper text.
def train(w, g, m, v, lr):
  g2 = square(g)
  m = interp(g, m, 0.9)
  v = interp(g2, v, 0.999)
  sqrt_v = sqrt(v)
  update = m / sqrt_v
  wd = w * 0.01
  update = update + wd
  lr = lr * 0.001
  update = update * lr
  return update, m, v
