# SGD with heavy-ball momentum; mirrors torch.optim.SGD(params, lr=1e-3, momentum=0.9) with
# dampening 0: torch's `buf = momentum * buf + g` (its first step sets buf = g, which is the same
# thing from a zero buffer), then `w -= lr * buf`.
def sgd_momentum(w, g, buf, lr=1e-3, momentum=0.9):
  buf = momentum * buf + g
  update = lr * buf
  return update, buf
