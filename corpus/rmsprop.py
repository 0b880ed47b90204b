# RMSprop (Hinton, Coursera lecture 6e); mirrors torch.optim.RMSprop(params, lr=1e-2, alpha=0.99,
# eps=1e-8) (not centered, no momentum): `v = alpha * v + (1 - alpha) * g * g`, then
# `w -= lr * g / (sqrt(v) + eps)`.
def rmsprop(w, g, v, lr=1e-2, alpha=0.99, eps=1e-8):
  v = interp(g * g, v, alpha)
  update = lr * g / (sqrt(v) + eps)
  return update, v
