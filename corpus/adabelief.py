# AdaBelief (Zhuang et al., NeurIPS 2020, Algorithm 2): Adam whose second moment tracks the
# "belief" (g - m)^2, with eps added to s every step (the official adabelief-pytorch does the
# same in place) and again to the root; bias correction as in Adam, default eps 1e-16 as in
# adabelief-pytorch >= 0.1, and its lr 1e-3. No weight decay. torch.optim has no AdaBelief:
# the test compares it with the paper's rule written out directly.
def adabelief(w, g, m, s, lr=1e-3, step, beta1=0.9, beta2=0.999, eps=1e-16):
  m = interp(g, m, beta1)
  s = interp(square(g - m), s, beta2) + eps
  m_hat = m / (1 - beta1 ** step)
  s_hat = s / (1 - beta2 ** step)
  update = lr * m_hat / (sqrt(s_hat) + eps)
  return update, m, s
