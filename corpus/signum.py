# Signum (Bernstein et al., "signSGD", ICML 2018): sign of the momentum,
# `m = beta * m + (1 - beta) * g`, `w -= lr * sign(m)`, beta 0.9. No torch.optim class: the
# test compares it with the paper's rule written out directly.
def signum(w, g, m, lr, beta=0.9):
  m = interp(g, m, beta)
  update = lr * sign(m)
  return update, m
