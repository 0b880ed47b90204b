# Adagrad (Duchi et al. 2011); mirrors torch.optim.Adagrad(params, lr=1e-2) with its defaults
# initial_accumulator_value=0, lr_decay=0 and eps=1e-10: `acc += g * g`, then
# `w -= lr * g / (sqrt(acc) + eps)`.
def adagrad(w, g, acc, lr=1e-2, eps=1e-10):
  acc += g * g
  update = lr * g / (sqrt(acc) + eps)
  return update, acc
